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

/// One Service's health quorum in `/status`.
public struct ServiceQuorumStatus: Codable, Sendable, Equatable {
    /// The virtual service (`TCP 10.96.0.10:80`).
    public var service: String
    /// The Kubernetes Service and port (`default/web:http`).
    public var kubernetesService: String
    /// Backends configured (endpoints).
    public var configured: Int
    /// Backends healthy with a weight above 0.
    public var healthy: Int
    /// The quorum (`health-quorum`).
    public var minimumHealthy: Int
    /// `keep-all` or `fallback`.
    public var policy: String
    /// The fallback server (`address:port`) when the policy is `fallback`.
    public var fallback: String?
    /// Whether fewer than `minimumHealthy` backends are healthy, so the policy applies.
    public var quorumLost: Bool
}
