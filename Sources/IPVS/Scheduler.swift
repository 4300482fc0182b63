/// An IPVS scheduling algorithm, by the name of its kernel module (`ip_vs_<name>`).
///
/// Every scheduler of the mainline kernel has a static member; `allKnown` lists them. The kernel
/// loads a scheduler's module on first use, and answers "not found" when it has no such module;
/// the client reports that as `IPVSError.Kind.schedulerUnavailable`.
public struct Scheduler: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    /// Round robin. Kernel module `ip_vs_rr`.
    public static let roundRobin: Scheduler = "rr"
    /// Weighted round robin. Kernel module `ip_vs_wrr`.
    public static let weightedRoundRobin: Scheduler = "wrr"
    /// Least connections. Kernel module `ip_vs_lc`.
    public static let leastConnection: Scheduler = "lc"
    /// Weighted least connections, the kernel's default. Kernel module `ip_vs_wlc`.
    public static let weightedLeastConnection: Scheduler = "wlc"
    /// Locality-based least connections. Kernel module `ip_vs_lblc`.
    public static let localityBasedLeastConnection: Scheduler = "lblc"
    /// Locality-based least connections with replication. Kernel module `ip_vs_lblcr`.
    public static let localityBasedLeastConnectionWithReplication: Scheduler = "lblcr"
    /// Destination hashing. Kernel module `ip_vs_dh`.
    public static let destinationHashing: Scheduler = "dh"
    /// Source hashing. Kernel module `ip_vs_sh`.
    public static let sourceHashing: Scheduler = "sh"
    /// Shortest expected delay. Kernel module `ip_vs_sed`.
    public static let shortestExpectedDelay: Scheduler = "sed"
    /// Never queue. Kernel module `ip_vs_nq`.
    public static let neverQueue: Scheduler = "nq"
    /// Weighted failover. Kernel module `ip_vs_fo`.
    public static let weightedFailover: Scheduler = "fo"
    /// Weighted overflow. Kernel module `ip_vs_ovf`.
    public static let weightedOverflow: Scheduler = "ovf"
    /// Maglev hashing. Kernel module `ip_vs_mh`.
    public static let maglevHashing: Scheduler = "mh"
    /// Weighted random twos choice (Linux 6.8 and later). Kernel module `ip_vs_twos`.
    public static let randomTwos: Scheduler = "twos"

    /// Every scheduler of the mainline kernel, in ipvsadm's documentation order.
    public static let allKnown: [Scheduler] = [
        .roundRobin, .weightedRoundRobin, .leastConnection, .weightedLeastConnection,
        .localityBasedLeastConnection, .localityBasedLeastConnectionWithReplication,
        .destinationHashing, .sourceHashing, .shortestExpectedDelay, .neverQueue,
        .weightedFailover, .weightedOverflow, .maglevHashing, .randomTwos,
    ]

    /// Whether this is one of `allKnown`.
    public var isKnown: Bool { Self.allKnown.contains(self) }

    /// The scheduler's name in words.
    public var summary: String {
        switch rawValue {
        case "rr": "round robin"
        case "wrr": "weighted round robin"
        case "lc": "least connections"
        case "wlc": "weighted least connections"
        case "lblc": "locality-based least connections"
        case "lblcr": "locality-based least connections with replication"
        case "dh": "destination hashing"
        case "sh": "source hashing"
        case "sed": "shortest expected delay"
        case "nq": "never queue"
        case "fo": "weighted failover"
        case "ovf": "weighted overflow"
        case "mh": "maglev hashing"
        case "twos": "weighted random twos choice"
        default: "third-party scheduler"
        }
    }

    /// The scheduler flags that mean something to this scheduler (sh and mh take two each): those
    /// of its names in `ServiceFlags.schedulerFlagNames`.
    public var supportedFlags: ServiceFlags {
        ServiceFlags(ServiceFlags.schedulerFlagNames.filter { $0.scheduler == self }.map(\.flag))
    }

    /// The names of `allKnown`, for messages: `rr, wrr, …`.
    public static var knownNames: String { allKnown.map(\.rawValue).joined(separator: ", ") }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
