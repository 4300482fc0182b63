import HealthCheck
import IPVS

/// What a Service below its health quorum serves instead of its health-adjusted real servers
/// (the agent's form of HealthCheck's ``EffectiveBackends`` decision, applied to whatever the
/// endpoints map to at the time).
public enum QuorumOverride: Hashable, Sendable {
    /// Policy `keep-all`: every configured real server at its configured weight, healthy or not.
    case keepAll
    /// Policy `fallback`: the fallback ("sorry") server is the only one with a weight; the
    /// backends are quiesced (weight 0) or removed, as the Service's failure action says.
    case fallback(RealServer, others: HealthAdjustment)

    /// The real servers of one Service whose configured (mapped) real servers are `configured`.
    func servers(configured: [RealServerID: RealServer]) -> [RealServerID: RealServer] {
        switch self {
        case .keepAll:
            return configured
        case .fallback(let sorry, let others):
            var servers: [RealServerID: RealServer] = [:]
            if others == .quiesce {
                for (id, server) in configured where id != sorry.id {
                    var quiesced = server
                    quiesced.weight = 0
                    servers[id] = quiesced
                }
            }
            servers[sorry.id] = sorry
            return servers
        }
    }
}
