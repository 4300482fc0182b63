import AgentStatus
import Foundation
import HealthCheck
import IPVS
import Logging
import ServiceLifecycle

/// Applies health verdicts to the kernel as they arrive.
struct HealthLoop: Service {
    let link: HealthLink
    let reconciler: Reconciler
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await transition in link.checker.transitions {
                let overlay = link.overlay(logger: logger)
                let report = await reconciler.setHealth(overlay)
                logger.info("applied health verdict", metadata: Self.metadata(transition, overlay: overlay, report: report))
            }
        }
    }

    /// What the verdict log line says: which backend of which Service, the transition and the
    /// check that caused it (reason, latency), the weight it now has, and what the kernel was told.
    static func metadata(_ transition: HealthTransition, overlay: HealthOverlay, report: ReconcileReport) -> Logger.Metadata {
        let (seconds, attoseconds) = transition.latency.components
        let milliseconds = Double(seconds) * 1_000 + Double(attoseconds) / 1e15
        let weight: String
        let override = overlay.quorum[transition.backend.service]
        switch (override, overlay.adjustments[transition.backend]) {
        case (.fallback?, _): weight = "quorum policy"
        case (.keepAll?, .quiesce?), (.keepAll?, .remove?): weight = "configured (quorum policy keep-all)"
        case (_, .quiesce?): weight = "0"
        case (_, .remove?): weight = "removed"
        case (_, .weight(let dynamic)?): weight = "\(dynamic)"
        case (_, nil): weight = "configured"
        }
        return [
            "backend": "\(transition.backend.server)", "service": "\(transition.backend.service)",
            "kubernetes_service": "\(transition.serviceName)", "from": "\(transition.from)", "to": "\(transition.to)",
            "reason": "\(transition.reason)", "latency_ms": "\(String(format: "%.1f", milliseconds))", "weight": "\(weight)",
            "operations": "\(report.applied)", "failures": "\(report.failures.count)",
        ]
    }
}
