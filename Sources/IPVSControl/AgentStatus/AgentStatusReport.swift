/// ipvs-agent's `/status` document, read field by field (ipvsctl keeps no dependency on the agent).
struct AgentStatusReport: Equatable, Sendable {
    /// A real server the agent programmed.
    struct RealServer: Equatable, Sendable {
        var address: String
        var weight: Int
        var draining: Bool
    }

    /// A virtual service the agent programmed.
    struct Service: Equatable, Sendable {
        var service: String
        var scheduler: String
        var kubernetesService: String?
        var realServers: [RealServer]
    }

    /// One checked backend's verdict.
    struct Backend: Equatable, Sendable {
        var service: String
        var kubernetesService: String
        var backend: String
        var check: String
        var state: String
        var since: String
        var lastReason: String?
        var lastLatencyMilliseconds: Double?
        var consecutiveSuccesses: Int
        var consecutiveFailures: Int
    }

    /// One Service's health quorum.
    struct Quorum: Equatable, Sendable {
        var service: String
        var kubernetesService: String
        var configured: Int
        var healthy: Int
        var minimumHealthy: Int
        var policy: String
        var fallback: String?
        var quorumLost: Bool
    }

    var services: [Service]
    var health: [Backend]
    var quorum: [Quorum]
    var addresses: [String]

    /// Reads the document; a missing required field is an error naming it.
    init(json: JSONValue) throws(AgentFetchError) {
        func list(_ key: String, in value: JSONValue) throws(AgentFetchError) -> [JSONValue] {
            guard let member = value[key] else { return [] }
            guard let array = member.array else { throw missing(key, "an array") }
            return array
        }
        func text(_ key: String, in value: JSONValue) throws(AgentFetchError) -> String {
            guard let text = value[key]?.string else { throw missing(key, "a string") }
            return text
        }
        func integer(_ key: String, in value: JSONValue) throws(AgentFetchError) -> Int {
            guard let number = value[key]?.number, let integer = Int(exactly: number) else { throw missing(key, "a whole number") }
            return integer
        }
        func missing(_ key: String, _ kind: String) -> AgentFetchError {
            AgentFetchError(message: "the agent's /status has no \"\(key)\" (\(kind)); is ipvsctl older than the agent?")
        }
        guard case .object = json else { throw AgentFetchError(message: "the agent's /status is not a JSON object") }
        services = []
        for entry in try list("services", in: json) {
            var servers: [RealServer] = []
            for server in try list("realServers", in: entry) {
                servers.append(RealServer(address: try text("address", in: server), weight: try integer("weight", in: server),
                                          draining: server["draining"]?.bool ?? false))
            }
            services.append(Service(service: try text("service", in: entry), scheduler: entry["scheduler"]?.string ?? "",
                                    kubernetesService: entry["kubernetesService"]?.string, realServers: servers))
        }
        health = []
        for entry in try list("health", in: json) {
            health.append(Backend(
                service: try text("service", in: entry), kubernetesService: entry["kubernetesService"]?.string ?? "",
                backend: try text("backend", in: entry), check: entry["check"]?.string ?? "", state: try text("state", in: entry),
                since: entry["since"]?.string ?? "", lastReason: entry["lastReason"]?.string,
                lastLatencyMilliseconds: entry["lastLatencyMilliseconds"]?.number,
                consecutiveSuccesses: entry["consecutiveSuccesses"]?.number.map { Int($0) } ?? 0,
                consecutiveFailures: entry["consecutiveFailures"]?.number.map { Int($0) } ?? 0))
        }
        quorum = []
        for entry in try list("quorum", in: json) {
            quorum.append(Quorum(
                service: try text("service", in: entry), kubernetesService: entry["kubernetesService"]?.string ?? "",
                configured: try integer("configured", in: entry), healthy: try integer("healthy", in: entry),
                minimumHealthy: try integer("minimumHealthy", in: entry), policy: entry["policy"]?.string ?? "",
                fallback: entry["fallback"]?.string, quorumLost: entry["quorumLost"]?.bool ?? false))
        }
        addresses = try list("addresses", in: json).compactMap(\.string)
    }
}
