import HealthCheck
import IPVS

/// What a Service below its health quorum serves instead of its health-adjusted real servers;
/// ``HealthOverlay/adjusted(_:key:)`` applies it to whatever the endpoints map to at the time.
public enum QuorumOverride: Hashable, Sendable {
    /// Policy `keep-all`: the verdicts of failed checks are set aside, so every backend serves: a
    /// failed one at its configured weight, a serving one at the weight its check asked for.
    case keepAll
    /// Policy `fallback`: the fallback ("sorry") server is the only one with a weight; the
    /// backends are quiesced (weight 0) or removed, as the Service's failure action says.
    case fallback(RealServer, others: HealthAdjustment)
}

/// How many of one Service's backends are healthy, against its quorum.
struct QuorumCount: Hashable, Sendable {
    /// Backends serving with a weight above 0: the configured one, or the dynamic one their check
    /// asked for. A backend with no verdict yet counts by its configured weight.
    var healthy: Int
    /// Backends configured (endpoints).
    var configured: Int
    /// Whether fewer than the quorum are healthy, so the quorum policy applies.
    var lost: Bool

    /// The count of `desired` (mapped under `key`) given the checker's `states`.
    init(_ key: ServiceKey, _ desired: DesiredService, states: [BackendID: HealthState]) {
        let healthy = desired.realServers.values.count { server in
            guard let state = states[BackendID(service: key, server: server.id)] else { return server.weight > 0 }
            return state.status.isServing && (state.dynamicWeight ?? server.weight) > 0
        }
        self.healthy = healthy
        configured = desired.realServers.count
        lost = desired.health?.quorum.map { healthy < $0.minimumHealthy } ?? false
    }
}
