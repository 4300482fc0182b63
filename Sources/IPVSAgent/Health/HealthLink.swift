import AgentStatus
import Foundation
import HealthCheck
import IPVS
import Logging
import ServiceLifecycle
import Synchronization

/// Connects the health checker to the reconciler: the desired state's endpoints become check
/// targets, and every verdict becomes the reconciler's `HealthOverlay` (a backend that is not up
/// is quiesced to weight 0 or deleted at once, as its Service's `health-on-failure` says; it gets
/// its configured weight back once it is up again; an up backend whose exec check asks for a
/// dynamic weight gets that weight).
public final class HealthLink: Sendable {
    let checker: HealthChecker
    private let actions = Mutex<[BackendID: FailureAction]>([:])
    /// The Services with a health quorum, as last mapped.
    private let quorumServices = Mutex<[ServiceKey: DesiredService]>([:])
    /// The quorum overrides last handed out, to log each switch once.
    private let lastQuorum = Mutex<[ServiceKey: QuorumOverride]>([:])

    init(checker: HealthChecker) {
        self.checker = checker
    }

    /// The check targets of `state`: every real server of every Service with a health check.
    static func targets(of state: DesiredState) -> [HealthTarget] {
        state.services.flatMap { key, desired in targets(of: key, desired) }
    }

    /// The check targets of one Service: none without a health check.
    static func targets(of key: ServiceKey, _ desired: DesiredService) -> [HealthTarget] {
        guard let configuration = desired.health else { return [] }
        return desired.realServers.keys.map {
            HealthTarget(id: BackendID(service: key, server: $0), serviceName: desired.displayName, configuration: configuration)
        }
    }

    /// The targets last handed to the checker, by Service (Services without a check are absent).
    private let targetsByService = Mutex<[ServiceKey: [HealthTarget]]>([:])

    /// Points the checker at the endpoints of `state`. Only the Services `changed` (every one when
    /// `nil`) are looked at, and the checker is told only when their targets changed: a pass after
    /// one endpoint change does not walk every Service.
    func update(_ state: DesiredState, changed: Set<ServiceKey>? = nil, logger: Logger) {
        var byService = targetsByService.withLock { $0 }
        var quorum = quorumServices.withLock { $0 }
        if let changed {
            var same = true
            for key in changed {
                let desired = state.services[key]
                let targets = desired.map { Self.targets(of: key, $0) } ?? []
                if Set(targets) != Set(byService[key] ?? []) {
                    same = false
                    byService[key] = targets.isEmpty ? nil : targets
                }
                quorum[key] = desired?.health?.quorum != nil ? desired : nil
            }
            if same { return quorumServices.withLock { $0 = quorum } }
        } else {
            byService = [:]
            for (key, desired) in state.services {
                let targets = Self.targets(of: key, desired)
                if !targets.isEmpty { byService[key] = targets }
            }
            quorum = state.services.filter { $0.value.health?.quorum != nil }
        }
        let targets = byService.values.flatMap { $0 }
        do {
            try checker.update(targets: targets)
            targetsByService.withLock { $0 = byService }
            quorumServices.withLock { $0 = quorum }
            actions.withLock { actions in
                actions = Dictionary(targets.map { ($0.id, $0.configuration.failureAction) }, uniquingKeysWith: { first, _ in first })
            }
        } catch {
            logger.error("health checks not updated", metadata: ["error": "\(error)"])
        }
    }

    /// Every checked backend's verdict, for `/status`.
    func status() -> [BackendHealthStatus] {
        checker.status().map { entry in
            let latency = entry.state.lastLatency.map { Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15 }
            return BackendHealthStatus(
                service: entry.backend.service.description, kubernetesService: entry.serviceName,
                backend: entry.backend.server.description, check: entry.checkKind, state: entry.state.status.rawValue,
                since: entry.state.since.formatted(.iso8601), lastReason: entry.state.lastReason, lastLatencyMilliseconds: latency,
                consecutiveSuccesses: entry.state.consecutiveSuccesses, consecutiveFailures: entry.state.consecutiveFailures)
        }
    }

    /// The overlay for the checker's current verdicts; logs each Service that loses or regains
    /// its health quorum.
    func overlay(logger: Logger) -> HealthOverlay {
        let states = checker.healthStates()
        let services = quorumServices.withLock { $0 }
        var overlay = Self.overlay(states: states, actions: actions.withLock { $0 })
        overlay.quorum = Self.quorum(states: states, services: services)
        let previous = lastQuorum.withLock { last in
            defer { last = overlay.quorum }
            return last
        }
        for key in Set(previous.keys).union(overlay.quorum.keys).sorted() where previous[key] != overlay.quorum[key] {
            guard let desired = services[key], let configuration = desired.health else { continue }
            let count = QuorumCount(key, desired, states: states)
            var metadata: Logger.Metadata = [
                "service": "\(key)", "kubernetes_service": "\(desired.displayName)",
                "healthy": "\(count.healthy)", "configured": "\(count.configured)",
                "minimum_healthy": "\(configuration.quorum?.minimumHealthy ?? 0)",
                "reason": "\(Self.quorumReason(count, configuration))",
            ]
            switch overlay.quorum[key] {
            case .keepAll?:
                metadata["action"] = "keeping every backend, failed ones at their configured weight (policy keep-all)"
                logger.warning("health quorum lost", metadata: metadata)
            case .fallback(let sorry, _)?:
                metadata["action"] = "serving from fallback \(sorry.id) only (policy fallback)"
                logger.warning("health quorum lost", metadata: metadata)
            case nil:
                metadata["action"] = previous[key].map {
                    if case .fallback(let sorry, _) = $0 { return "backends restored; fallback \(sorry.id) removed" }
                    return "health verdicts apply again"
                } ?? ""
                logger.info("health quorum regained", metadata: metadata)
            }
        }
        return overlay
    }

    /// The quorum of every Service that has one, for `/status`.
    func quorumStatus() -> [ServiceQuorumStatus] {
        let states = checker.healthStates()
        return quorumServices.withLock { $0 }.sorted { $0.key < $1.key }.compactMap { key, desired in
            guard let configuration = desired.health, let quorum = configuration.quorum else { return nil }
            let count = QuorumCount(key, desired, states: states)
            var fallback: String?
            if case .fallback(let sorry) = quorum.policy { fallback = sorry.id.description }
            return ServiceQuorumStatus(
                service: key.description, kubernetesService: desired.displayName, configured: count.configured,
                healthy: count.healthy, minimumHealthy: quorum.minimumHealthy,
                policy: fallback == nil ? "keep-all" : "fallback", fallback: fallback, quorumLost: count.lost)
        }
    }

    /// Pure: the quorum override of each Service with a quorum that fewer backends than it meet.
    static func quorum(states: [BackendID: HealthState], services: [ServiceKey: DesiredService]) -> [ServiceKey: QuorumOverride] {
        var overrides: [ServiceKey: QuorumOverride] = [:]
        for (key, desired) in services {
            guard let configuration = desired.health, let quorum = configuration.quorum,
                  QuorumCount(key, desired, states: states).lost else { continue }
            switch quorum.policy {
            case .keepAll:
                overrides[key] = .keepAll
            case .fallback(let sorry):
                overrides[key] = .fallback(fallbackServer(sorry, configured: desired.realServers),
                                           others: configuration.failureAction == .remove ? .remove : .quiesce)
            }
        }
        return overrides
    }

    /// The real server of a fallback: forwarded as the Service's backends are; when it is one of
    /// them, that real server with the fallback's weight.
    static func fallbackServer(_ sorry: FallbackServer, configured: [RealServerID: RealServer]) -> RealServer {
        if var same = configured[sorry.id] {
            same.weight = sorry.weight
            return same
        }
        let forwarding = configured.values.min { $0.id < $1.id }?.forwarding ?? .masquerade
        return RealServer(address: sorry.address, port: sorry.port, forwarding: forwarding, weight: sorry.weight)
    }

    /// `1 of 3 backends healthy, quorum 2`.
    static func quorumReason(_ count: QuorumCount, _ configuration: HealthCheckConfiguration) -> String {
        let minimum = configuration.quorum?.minimumHealthy ?? 0
        return "\(count.healthy) of \(count.configured) backends healthy, "
            + (count.lost ? "fewer than the quorum of \(minimum)" : "quorum \(minimum) met")
    }

    /// Pure: a backend that is not serving is adjusted by its virtual service's failure action,
    /// in that virtual service only (the same endpoint behind another one follows that one's
    /// checks, or none). A serving backend whose last check asked for a dynamic weight (exec with
    /// `health-exec-dynamic-weight`) gets that weight; once its check reports none (exit status
    /// 0), it has its configured weight again.
    static func overlay(states: [BackendID: HealthState], actions: [BackendID: FailureAction]) -> HealthOverlay {
        var adjustments: [BackendID: HealthAdjustment] = [:]
        for (backend, state) in states {
            guard let action = actions[backend] else { continue }
            if !state.status.isServing {
                adjustments[backend] = action == .remove ? .remove : .quiesce
            } else if let weight = state.dynamicWeight {
                adjustments[backend] = .weight(weight)
            }
        }
        return HealthOverlay(adjustments: adjustments)
    }
}
