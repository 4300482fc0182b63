import AgentStatus

/// Reads ipvs-agent's `/status` document into the agent's own type (`AgentStatus`), by the keys that
/// type encodes: ipvsctl reads JSON without Foundation's decoder, and a field the document lacks is
/// an error naming it.
enum AgentStatusReader {
    /// Reads the document; a missing required field is an error naming it.
    static func read(_ json: JSONValue) throws(AgentFetchError) -> AgentStatus {
        guard case .object = json else { throw AgentFetchError(message: "the agent's /status is not a JSON object") }
        typealias Keys = AgentStatus.CodingKeys
        typealias ServiceKeys = AgentStatus.Service.CodingKeys
        typealias ServerKeys = AgentStatus.RealServer.CodingKeys
        typealias BackendKeys = BackendHealthStatus.CodingKeys
        typealias QuorumKeys = ServiceQuorumStatus.CodingKeys

        var services: [AgentStatus.Service] = []
        for entry in try list(Keys.services, in: json) {
            var servers: [AgentStatus.RealServer] = []
            for server in try list(ServiceKeys.realServers, in: entry) {
                servers.append(AgentStatus.RealServer(address: try text(ServerKeys.address, in: server),
                                                      weight: try weight(ServerKeys.weight, in: server),
                                                      draining: server[ServerKeys.draining.rawValue]?.bool ?? false))
            }
            services.append(AgentStatus.Service(service: try text(ServiceKeys.service, in: entry),
                                                scheduler: entry[ServiceKeys.scheduler.rawValue]?.string ?? "",
                                                kubernetesService: entry[ServiceKeys.kubernetesService.rawValue]?.string,
                                                realServers: servers))
        }
        var health: [BackendHealthStatus] = []
        for entry in try list(Keys.health, in: json) {
            health.append(BackendHealthStatus(
                service: try text(BackendKeys.service, in: entry),
                kubernetesService: entry[BackendKeys.kubernetesService.rawValue]?.string ?? "",
                backend: try text(BackendKeys.backend, in: entry), check: entry[BackendKeys.check.rawValue]?.string ?? "",
                state: try text(BackendKeys.state, in: entry), since: entry[BackendKeys.since.rawValue]?.string ?? "",
                lastReason: entry[BackendKeys.lastReason.rawValue]?.string,
                lastLatencyMilliseconds: entry[BackendKeys.lastLatencyMilliseconds.rawValue]?.number,
                consecutiveSuccesses: entry[BackendKeys.consecutiveSuccesses.rawValue]?.number.map { Int($0) } ?? 0,
                consecutiveFailures: entry[BackendKeys.consecutiveFailures.rawValue]?.number.map { Int($0) } ?? 0))
        }
        var quorum: [ServiceQuorumStatus] = []
        for entry in try list(Keys.quorum, in: json) {
            quorum.append(ServiceQuorumStatus(
                service: try text(QuorumKeys.service, in: entry),
                kubernetesService: entry[QuorumKeys.kubernetesService.rawValue]?.string ?? "",
                configured: try integer(QuorumKeys.configured, in: entry), healthy: try integer(QuorumKeys.healthy, in: entry),
                minimumHealthy: try integer(QuorumKeys.minimumHealthy, in: entry),
                policy: entry[QuorumKeys.policy.rawValue]?.string ?? "", fallback: entry[QuorumKeys.fallback.rawValue]?.string,
                quorumLost: entry[QuorumKeys.quorumLost.rawValue]?.bool ?? false))
        }
        return AgentStatus(services: services, addresses: try list(Keys.addresses, in: json).compactMap(\.string),
                           health: health, quorum: quorum, packetFilter: try packetFilter(json[Keys.packetFilter.rawValue]))
    }

    /// The nftables table's part (`nil` when the agent keeps no table).
    private static func packetFilter(_ value: JSONValue?) throws(AgentFetchError) -> PacketFilterStatus? {
        guard let value, value.members != nil else { return nil }
        typealias FilterKeys = PacketFilterStatus.CodingKeys
        var elements: [String: Int] = [:]
        for (name, count) in value[FilterKeys.elements.rawValue]?.members ?? [:] {
            guard let number = count.number, let integer = Int(exactly: number) else { throw missing(FilterKeys.elements, "whole numbers") }
            elements[name] = integer
        }
        return PacketFilterStatus(table: try text(FilterKeys.table, in: value), synced: value[FilterKeys.synced.rawValue]?.bool ?? false,
                                  elements: elements, replacements: try integer(FilterKeys.replacements, in: value),
                                  updates: try integer(FilterKeys.updates, in: value), failures: try integer(FilterKeys.failures, in: value))
    }

    private static func list(_ key: some CodingKey, in value: JSONValue) throws(AgentFetchError) -> [JSONValue] {
        guard let member = value[key.stringValue] else { return [] }
        guard let array = member.array else { throw missing(key, "an array") }
        return array
    }

    private static func text(_ key: some CodingKey, in value: JSONValue) throws(AgentFetchError) -> String {
        guard let text = value[key.stringValue]?.string else { throw missing(key, "a string") }
        return text
    }

    private static func integer(_ key: some CodingKey, in value: JSONValue) throws(AgentFetchError) -> Int {
        guard let number = value[key.stringValue]?.number, let integer = Int(exactly: number) else { throw missing(key, "a whole number") }
        return integer
    }

    private static func weight(_ key: some CodingKey, in value: JSONValue) throws(AgentFetchError) -> Int32 {
        guard let number = value[key.stringValue]?.number, let weight = Int32(exactly: number) else {
            throw missing(key, "a whole number")
        }
        return weight
    }

    private static func missing(_ key: some CodingKey, _ kind: String) -> AgentFetchError {
        AgentFetchError(message: "the agent's /status has no \"\(key.stringValue)\" (\(kind)); is ipvsctl older than the agent?")
    }
}
