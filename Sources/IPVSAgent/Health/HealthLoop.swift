import Foundation
import HealthCheck
import IPVS
import Logging
import ServiceLifecycle
import Synchronization

/// Connects the health checker to the reconciler: the desired state's endpoints become check
/// targets, and every verdict becomes the reconciler's `HealthOverlay` (a backend that is not up
/// is quiesced to weight 0 or removed, as its Service's `health-on-failure` says; it gets its
/// configured weight back once it is up again).
public final class HealthLink: Sendable {
    let checker: HealthChecker
    private let actions = Mutex<[BackendID: FailureAction]>([:])

    init(checker: HealthChecker) {
        self.checker = checker
    }

    /// The check targets of `state`: every real server of every Service with a health check.
    static func targets(of state: DesiredState) -> [HealthTarget] {
        state.services.flatMap { key, desired -> [HealthTarget] in
            guard let configuration = desired.health else { return [] }
            return desired.realServers.keys.map {
                HealthTarget(id: BackendID(service: key, server: $0), serviceName: desired.displayName, configuration: configuration)
            }
        }
    }

    /// Points the checker at the endpoints of `state`.
    func update(_ state: DesiredState, logger: Logger) {
        let targets = Self.targets(of: state)
        do {
            try checker.update(targets: targets)
            actions.withLock { actions in
                actions = Dictionary(targets.map { ($0.id, $0.configuration.failureAction) }, uniquingKeysWith: { first, _ in first })
            }
        } catch {
            logger.error("health checks not updated", metadata: ["error": "\(error)"])
        }
    }

    /// Whether any backend is checked.
    var isChecking: Bool { !actions.withLock { $0.isEmpty } }

    /// Every checked backend's verdict, for `/status`.
    func status() -> [BackendHealthStatus] {
        checker.status().map { entry in
            let latency = entry.state.lastLatency.map { Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15 }
            return BackendHealthStatus(
                service: entry.backend.service.description, kubernetesService: entry.serviceName,
                backend: entry.backend.server.description, check: entry.checkKind, state: entry.state.status.rawValue,
                since: entry.state.since, lastReason: entry.state.lastReason, lastLatencyMilliseconds: latency,
                consecutiveSuccesses: entry.state.consecutiveSuccesses, consecutiveFailures: entry.state.consecutiveFailures)
        }
    }

    /// The overlay for the checker's current verdicts.
    func overlay() -> HealthOverlay {
        Self.overlay(states: checker.healthStates(), actions: actions.withLock { $0 })
    }

    /// Pure: a backend that is not serving is adjusted by its Service's failure action; when
    /// several Services check the same endpoint, removal wins over quiescing.
    static func overlay(states: [BackendID: HealthState], actions: [BackendID: FailureAction]) -> HealthOverlay {
        var adjustments: [RealServerID: HealthAdjustment] = [:]
        for (backend, state) in states where !state.status.isServing {
            guard let action = actions[backend] else { continue }
            let adjustment: HealthAdjustment = action == .remove ? .remove : .quiesce
            if adjustments[backend.server] != .remove { adjustments[backend.server] = adjustment }
        }
        return HealthOverlay(adjustments: adjustments)
    }
}

/// Applies health verdicts to the kernel as they arrive.
struct HealthLoop: Service {
    let link: HealthLink
    let reconciler: Reconciler
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await transition in link.checker.transitions {
                let report = await reconciler.setHealth(link.overlay())
                logger.info("applied health verdict", metadata: [
                    "backend": "\(transition.backend)", "to": "\(transition.to)", "reason": "\(transition.reason)",
                    "operations": "\(report.applied)", "failures": "\(report.failures.count)",
                ])
            }
        }
    }
}
