/// Connection timeouts of IPVS, in seconds. A value of 0 when setting means "leave unchanged".
public struct Timeouts: Hashable, Sendable {
    /// Established TCP connections. Kernel attribute `IPVS_CMD_ATTR_TIMEOUT_TCP`.
    public var tcp: UInt32
    /// TCP connections after a FIN. Kernel attribute `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN`.
    public var tcpFin: UInt32
    /// UDP. Kernel attribute `IPVS_CMD_ATTR_TIMEOUT_UDP`.
    public var udp: UInt32

    public init(tcp: UInt32 = 0, tcpFin: UInt32 = 0, udp: UInt32 = 0) {
        self.tcp = tcp
        self.tcpFin = tcpFin
        self.udp = udp
    }
}

/// General facts about the kernel's IPVS.
public struct IPVSInfo: Hashable, Sendable {
    /// The IPVS version as the kernel encodes it (`0x010201` is 1.2.1).
    public var version: UInt32
    /// The size of the connection hash table.
    public var connectionTableSize: UInt32

    public init(version: UInt32, connectionTableSize: UInt32) {
        self.version = version
        self.connectionTableSize = connectionTableSize
    }

    /// `1.2.1`.
    public var versionString: String {
        "\((version >> 16) & 0xFF).\((version >> 8) & 0xFF).\(version & 0xFF)"
    }
}

/// A connection synchronisation daemon's state.
public struct SyncDaemon: Hashable, Sendable {
    /// Which side the daemon runs as.
    public enum Role: UInt32, Hashable, Sendable, CustomStringConvertible {
        /// The corresponding kernel constant is `IP_VS_STATE_MASTER`.
        case master = 1
        /// The corresponding kernel constant is `IP_VS_STATE_BACKUP`.
        case backup = 2

        public var description: String { self == .master ? "master" : "backup" }
    }

    public var role: Role
    public var interface: String
    public var syncID: UInt32
    /// The UDP payload size, or `nil` when the kernel chooses.
    public var maximumLength: UInt16?
    public var multicastGroup: IPAddress?
    public var multicastPort: UInt16?
    public var multicastTTL: UInt8?

    public init(role: Role, interface: String, syncID: UInt32, maximumLength: UInt16? = nil,
                multicastGroup: IPAddress? = nil, multicastPort: UInt16? = nil, multicastTTL: UInt8? = nil) {
        self.role = role
        self.interface = interface
        self.syncID = syncID
        self.maximumLength = maximumLength
        self.multicastGroup = multicastGroup
        self.multicastPort = multicastPort
        self.multicastTTL = multicastTTL
    }
}
