/// ipvs-agent's `/status` document: what the agent programmed and what its health checks decided.
/// The agent writes it (JSON, keys sorted) and `ipvsctl status` reads it, both through these types,
/// so the two cannot disagree on a field. This module depends on nothing, so ipvsctl stays free of
/// the agent's dependencies (Foundation included).
public struct AgentStatus: Codable, Sendable, Equatable {
    /// A real server of a virtual service the agent programmed.
    public struct RealServer: Codable, Sendable, Equatable {
        /// `10.244.1.5:8080`.
        public var address: String
        /// The weight in the kernel.
        public var weight: Int32
        /// Whether the endpoint was removed and the real server waits for its connections to end.
        public var draining: Bool

        public init(address: String, weight: Int32, draining: Bool) {
            self.address = address
            self.weight = weight
            self.draining = draining
        }

        public enum CodingKeys: String, CodingKey, Sendable {
            case address, weight, draining
        }
    }

    /// A virtual service the agent programmed.
    public struct Service: Codable, Sendable, Equatable {
        /// The virtual service (`TCP 10.96.0.10:80`).
        public var service: String
        /// The scheduler's kernel name (`rr`).
        public var scheduler: String
        /// The Kubernetes Service it came from (`default/web`).
        public var kubernetesService: String?
        /// Its real servers, sorted.
        public var realServers: [RealServer]

        public init(service: String, scheduler: String, kubernetesService: String?, realServers: [RealServer]) {
            self.service = service
            self.scheduler = scheduler
            self.kubernetesService = kubernetesService
            self.realServers = realServers
        }

        public enum CodingKeys: String, CodingKey, Sendable {
            case service, scheduler, kubernetesService, realServers
        }
    }

    /// Every owned virtual service with its real servers, sorted.
    public var services: [Service]
    /// Every owned VIP, sorted.
    public var addresses: [String]
    /// Health of every checked backend (empty without health checks).
    public var health: [BackendHealthStatus]
    /// Health quorum of every Service that has one (`health-quorum`).
    public var quorum: [ServiceQuorumStatus]
    /// The agent's nftables table (`nil` when the agent keeps none).
    public var packetFilter: PacketFilterStatus?

    public init(services: [Service], addresses: [String], health: [BackendHealthStatus] = [], quorum: [ServiceQuorumStatus] = [],
                packetFilter: PacketFilterStatus? = nil) {
        self.services = services
        self.addresses = addresses
        self.health = health
        self.quorum = quorum
        self.packetFilter = packetFilter
    }

    public enum CodingKeys: String, CodingKey, Sendable {
        case services, addresses, health, quorum, packetFilter
    }
}

/// The agent's nftables table in `/status`: whether it holds the desired state, its sets' sizes and
/// its transactions so far.
public struct PacketFilterStatus: Codable, Sendable, Equatable {
    /// The table (`inet ipvs-agent`).
    public var table: String
    /// Whether the table holds the desired state: false before the first sync and after nftables
    /// refused one (the next sync writes it whole).
    public var synced: Bool
    /// Elements per set (`vips-v4`), sets without elements left out.
    public var elements: [String: Int]
    /// Transactions that wrote the whole table, that changed set elements only, and that nftables refused.
    public var replacements: Int
    public var updates: Int
    public var failures: Int

    public init(table: String, synced: Bool, elements: [String: Int], replacements: Int, updates: Int, failures: Int) {
        self.table = table
        self.synced = synced
        self.elements = elements
        self.replacements = replacements
        self.updates = updates
        self.failures = failures
    }

    public enum CodingKeys: String, CodingKey, Sendable {
        case table, synced, elements, replacements, updates, failures
    }
}

/// One checked backend in `/status`: its verdict and since when.
public struct BackendHealthStatus: Codable, Sendable, Equatable {
    /// The virtual service (`TCP 10.96.0.10:80`).
    public var service: String
    /// The Kubernetes Service and port (`default/web:http`).
    public var kubernetesService: String
    /// The backend (`10.244.1.5:8080`).
    public var backend: String
    /// The kind of check (`tcp`, `http`, `https`, `udp`, `exec`).
    public var check: String
    /// The verdict (`up`, `down`, `unknown`).
    public var state: String
    /// When the verdict was reached, in ISO 8601 UTC (`2026-11-30T23:10:15Z`).
    public var since: String
    /// Why the last check ended as it did.
    public var lastReason: String?
    /// How long the last check took.
    public var lastLatencyMilliseconds: Double?
    public var consecutiveSuccesses: Int
    public var consecutiveFailures: Int

    public init(service: String, kubernetesService: String, backend: String, check: String, state: String, since: String,
                lastReason: String?, lastLatencyMilliseconds: Double?, consecutiveSuccesses: Int, consecutiveFailures: Int) {
        self.service = service
        self.kubernetesService = kubernetesService
        self.backend = backend
        self.check = check
        self.state = state
        self.since = since
        self.lastReason = lastReason
        self.lastLatencyMilliseconds = lastLatencyMilliseconds
        self.consecutiveSuccesses = consecutiveSuccesses
        self.consecutiveFailures = consecutiveFailures
    }

    public enum CodingKeys: String, CodingKey, Sendable {
        case service, kubernetesService, backend, check, state, since, lastReason, lastLatencyMilliseconds
        case consecutiveSuccesses, consecutiveFailures
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

    public init(service: String, kubernetesService: String, configured: Int, healthy: Int, minimumHealthy: Int, policy: String,
                fallback: String?, quorumLost: Bool) {
        self.service = service
        self.kubernetesService = kubernetesService
        self.configured = configured
        self.healthy = healthy
        self.minimumHealthy = minimumHealthy
        self.policy = policy
        self.fallback = fallback
        self.quorumLost = quorumLost
    }

    public enum CodingKeys: String, CodingKey, Sendable {
        case service, kubernetesService, configured, healthy, minimumHealthy, policy, fallback, quorumLost
    }
}
