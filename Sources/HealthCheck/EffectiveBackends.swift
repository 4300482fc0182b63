import IPVS

// MARK: - EffectiveBackends

/// The real servers a service should have in the kernel given its backends' health: the pure function the
/// agent's reconciler applies (diffing it against the kernel gives the minimal operations).
///
/// - A healthy backend keeps its configured weight, or the dynamic weight its check asked for.
/// - An unhealthy one gets weight 0 (``FailureAction/quiesce``) or is left out (``FailureAction/remove``).
/// - A backend with no entry in `health` (not checked, or check ``HealthCheckKind/disabled``) counts as healthy.
/// - With a ``Quorum``, when fewer than `minimumHealthy` backends are healthy (with a weight above 0):
///   ``QuorumPolicy/keepAll`` keeps every backend at its configured weight; ``QuorumPolicy/fallback(_:)``
///   quiesces or removes every backend and adds the fallback server.
public struct EffectiveBackends: Hashable, Sendable {
    /// The desired real servers of the service, in the order given, the fallback (when in use) last.
    public var servers: [RealServer]
    /// Backends healthy with a weight above 0.
    public var healthy: Int
    /// Backends configured.
    public var configured: Int
    /// Whether the service is below its quorum (and the quorum policy applies).
    public var quorumLost: Bool
    /// The fallback server when it is in use (it is also in ``servers``).
    public var fallback: RealServer?

    /// Computes the desired real servers of `service`.
    ///
    /// - Parameters:
    ///   - service: The virtual service.
    ///   - configured: Its real servers as configured (from the endpoints), with their configured weights.
    ///   - health: Health states by backend, as from ``HealthChecker/healthStates(of:)``; other services' entries
    ///     are ignored.
    ///   - configuration: The service's health check configuration (failure action, quorum).
    public init(
        service: ServiceKey,
        configured: [RealServer],
        health: [BackendID: HealthState],
        configuration: HealthCheckConfiguration
    ) {
        let states = configured.map { server -> (server: RealServer, serving: Bool, weight: Int32) in
            guard configuration.kind != .disabled,
                  let state = health[BackendID(service: service, server: server.id)]
            else { return (server, true, server.weight) }
            return (server, state.status.isServing, state.dynamicWeight ?? server.weight)
        }
        let healthy = states.count { $0.serving && $0.weight > 0 }
        let quorum = configuration.kind == .disabled ? nil : configuration.quorum
        let quorumLost = quorum.map { healthy < $0.minimumHealthy } ?? false
        self.configured = configured.count
        self.healthy = healthy
        self.quorumLost = quorumLost
        self.fallback = nil

        let quiesce = configuration.failureAction == .quiesce
        switch (quorumLost, quorum?.policy) {
        case (true, .keepAll?):
            servers = states.map { entry in
                var server = entry.server
                server.weight = entry.serving ? entry.weight : entry.server.weight
                return server
            }
        case (true, .fallback(let sorry)?):
            var fallbackServer = RealServer(
                address: sorry.address, port: sorry.port,
                forwarding: configured.first?.forwarding ?? .masquerade, weight: sorry.weight)
            if let same = configured.first(where: { $0.id == sorry.id }) {
                fallbackServer = same
                fallbackServer.weight = sorry.weight
            }
            let others = configured.filter { $0.id != sorry.id }
            servers = quiesce ? others.map { server in
                var server = server
                server.weight = 0
                return server
            } : []
            servers.append(fallbackServer)
            fallback = fallbackServer
        default:
            servers = states.compactMap { entry in
                var server = entry.server
                if entry.serving {
                    server.weight = entry.weight
                } else if quiesce {
                    server.weight = 0
                } else {
                    return nil
                }
                return server
            }
        }
    }
}
