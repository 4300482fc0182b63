/// What identifies a virtual service: protocol, address and port, or a firewall mark.
public enum ServiceKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// A service on `address:port` for one transport protocol.
    case address(TransportProtocol, IPAddress, port: UInt16)
    /// A service matching packets with firewall mark `mark`, for one address family.
    case firewallMark(UInt32, family: AddressFamily)

    /// The address family of the service.
    public var family: AddressFamily {
        switch self {
        case .address(_, let address, _): address.family
        case .firewallMark(_, let family): family
        }
    }

    /// `TCP 10.0.0.1:80`, `UDP [fd00::1]:53`, `FWM 7` (`FWM 7 IPv6`): the form ipvsadm prints,
    /// used in errors and logs.
    public var description: String {
        switch self {
        case .address(let proto, let address, let port):
            "\(proto) \(address.withPort(port))"
        case .firewallMark(let mark, let family):
            family == .inet ? "FWM \(mark)" : "FWM \(mark) IPv6"
        }
    }

    /// Orders like `ipvsadm --sort`: firewall-mark services after address services, then by
    /// protocol, address and port.
    public static func < (lhs: ServiceKey, rhs: ServiceKey) -> Bool {
        switch (lhs, rhs) {
        case (.address(let p1, let a1, let port1), .address(let p2, let a2, let port2)):
            if p1 != p2 { return p1 < p2 }
            if a1 != a2 { return a1 < a2 }
            return port1 < port2
        case (.firewallMark(let m1, let f1), .firewallMark(let m2, let f2)):
            return m1 != m2 ? m1 < m2 : f1.rawValue < f2.rawValue
        case (.address, .firewallMark): return true
        case (.firewallMark, .address): return false
        }
    }
}

/// An IPVS virtual service.
public struct VirtualService: Hashable, Sendable {
    /// What identifies the service.
    public var key: ServiceKey
    /// The scheduling algorithm.
    public var scheduler: Scheduler
    /// Service flags other than `persistent` (which `persistence` controls) and `hashed`.
    public var flags: ServiceFlags
    /// Persistence, or `nil` for none.
    public var persistence: Persistence?
    /// The persistence engine (`sip`), or `nil` for none.
    public var persistenceEngine: String?
    /// Counters and rates, as read from the kernel; ignored when writing.
    public var statistics: Statistics? {
        get { statisticsBox?.statistics }
        set { statisticsBox = newValue.map(StatisticsBox.init) }
    }
    private var statisticsBox: StatisticsBox?

    public init(
        key: ServiceKey,
        scheduler: Scheduler = .weightedLeastConnection,
        flags: ServiceFlags = [],
        persistence: Persistence? = nil,
        persistenceEngine: String? = nil,
        statistics: Statistics? = nil
    ) {
        self.key = key
        self.scheduler = scheduler
        self.flags = flags.subtracting([.persistent, .hashed])
        self.persistence = persistence
        self.persistenceEngine = persistenceEngine
        self.statisticsBox = statistics.map(StatisticsBox.init)
    }

    /// The flags as the kernel stores them: `flags` plus `persistent` when `persistence` is set.
    public var kernelFlags: ServiceFlags {
        persistence == nil ? flags : flags.union(.persistent)
    }

    /// The persistence prefix length, defaulted to the full address length.
    public var persistencePrefixLength: Int {
        persistence?.prefixLength ?? key.family.maxPrefixLength
    }

    /// The service's configuration without statistics, for comparisons of desired and actual state.
    public var configuration: VirtualService {
        var copy = self
        copy.statistics = nil
        return copy
    }
}
