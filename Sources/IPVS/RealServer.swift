/// How IPVS forwards packets to a real server.
public enum ForwardingMethod: UInt32, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// NAT. The corresponding kernel constant is `IP_VS_CONN_F_MASQ`.
    case masquerade = 0
    /// The real server is this host. The corresponding kernel constant is `IP_VS_CONN_F_LOCALNODE`.
    case local = 1
    /// IP-in-IP (or GUE/GRE) tunnelling. The corresponding kernel constant is `IP_VS_CONN_F_TUNNEL`.
    case tunnel = 2
    /// Direct routing ("gatewaying"). The corresponding kernel constant is `IP_VS_CONN_F_DROUTE`.
    case directRouting = 3

    /// The name ipvsadm prints: `Masq`, `Local`, `Tunnel`, `Route`.
    public var description: String {
        switch self {
        case .masquerade: "Masq"
        case .local: "Local"
        case .tunnel: "Tunnel"
        case .directRouting: "Route"
        }
    }
}

/// The encapsulation of the tunnel forwarding method.
public enum TunnelType: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// The corresponding kernel constant is `IP_VS_CONN_F_TUNNEL_TYPE_IPIP`.
    case ipip = 0
    /// The corresponding kernel constant is `IP_VS_CONN_F_TUNNEL_TYPE_GUE`.
    case gue = 1
    /// The corresponding kernel constant is `IP_VS_CONN_F_TUNNEL_TYPE_GRE`.
    case gre = 2

    /// The name ipvsadm uses: `ipip`, `gue`, `gre`.
    public var description: String {
        switch self {
        case .ipip: "ipip"
        case .gue: "gue"
        case .gre: "gre"
        }
    }
}

/// Checksum options of GUE and GRE tunnels.
public struct TunnelFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Compute checksums. The corresponding kernel constant is `IP_VS_TUNNEL_ENCAP_FLAG_CSUM`.
    public static let checksum = TunnelFlags(rawValue: 1 << 0)
    /// Remote checksum offload. The corresponding kernel constant is `IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM`.
    public static let remoteChecksum = TunnelFlags(rawValue: 1 << 1)
}

/// Tunnel encapsulation settings of a real server.
public struct Tunnel: Hashable, Sendable {
    public var type: TunnelType
    /// The destination UDP port (GUE only).
    public var port: UInt16
    public var flags: TunnelFlags

    public init(type: TunnelType = .ipip, port: UInt16 = 0, flags: TunnelFlags = []) {
        self.type = type
        self.port = port
        self.flags = flags
    }
}

/// A real server ("destination") of a virtual service.
public struct RealServer: Hashable, Sendable {
    public var address: IPAddress
    public var port: UInt16
    public var forwarding: ForwardingMethod
    /// The weight; 0 quiesces the server (no new connections, existing ones continue).
    public var weight: Int32
    /// Stop sending new connections above this many (0: no limit).
    public var upperThreshold: UInt32
    /// Resume sending new connections below this many (0: no limit).
    public var lowerThreshold: UInt32
    /// Tunnel settings, used when `forwarding` is `.tunnel`.
    public var tunnel: Tunnel

    /// Connections, as read from the kernel; ignored when writing.
    public var connections: ConnectionCounts?
    /// Counters and rates, as read from the kernel; ignored when writing.
    public var statistics: Statistics? {
        get { statisticsBox?.statistics }
        set { statisticsBox = newValue.map(StatisticsBox.init) }
    }
    private var statisticsBox: StatisticsBox?

    public init(
        address: IPAddress,
        port: UInt16,
        forwarding: ForwardingMethod = .masquerade,
        weight: Int32 = 1,
        upperThreshold: UInt32 = 0,
        lowerThreshold: UInt32 = 0,
        tunnel: Tunnel = Tunnel(),
        connections: ConnectionCounts? = nil,
        statistics: Statistics? = nil
    ) {
        self.address = address
        self.port = port
        self.forwarding = forwarding
        self.weight = weight
        self.upperThreshold = upperThreshold
        self.lowerThreshold = lowerThreshold
        self.tunnel = tunnel
        self.connections = connections
        self.statisticsBox = statistics.map(StatisticsBox.init)
    }

    /// What identifies the real server within its service.
    public var id: RealServerID { RealServerID(address: address, port: port) }

    /// The configuration without counters, for comparisons of desired and actual state.
    public var configuration: RealServer {
        var copy = self
        copy.connections = nil
        copy.statistics = nil
        if forwarding != .tunnel { copy.tunnel = Tunnel() }
        return copy
    }
}

/// What identifies a real server within a virtual service: its address and port.
public struct RealServerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String { address.withPort(port) }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.address != rhs.address ? lhs.address < rhs.address : lhs.port < rhs.port
    }
}

/// Connection counts of a real server.
public struct ConnectionCounts: Hashable, Sendable {
    /// Established connections. Kernel attribute `IPVS_DEST_ATTR_ACTIVE_CONNS`.
    public var active: UInt32
    /// Connections in other states. Kernel attribute `IPVS_DEST_ATTR_INACT_CONNS`.
    public var inactive: UInt32
    /// Persistence templates. Kernel attribute `IPVS_DEST_ATTR_PERSIST_CONNS`.
    public var persistent: UInt32

    public init(active: UInt32 = 0, inactive: UInt32 = 0, persistent: UInt32 = 0) {
        self.active = active
        self.inactive = inactive
        self.persistent = persistent
    }
}
