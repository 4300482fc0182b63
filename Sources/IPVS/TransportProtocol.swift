/// The transport protocol of a virtual service.
public enum TransportProtocol: UInt16, Hashable, Sendable, CaseIterable, CustomStringConvertible, Comparable {
    /// The corresponding kernel constant is `IPPROTO_TCP`.
    case tcp = 6
    /// The corresponding kernel constant is `IPPROTO_UDP`.
    case udp = 17
    /// The corresponding kernel constant is `IPPROTO_SCTP`.
    case sctp = 132

    /// The name ipvsadm prints: `TCP`, `UDP`, `SCTP`.
    public var description: String {
        switch self {
        case .tcp: "TCP"
        case .udp: "UDP"
        case .sctp: "SCTP"
        }
    }

    /// Parses `tcp`, `udp` or `sctp` in any case.
    public init?(name: String) {
        switch name.lowercased() {
        case "tcp": self = .tcp
        case "udp": self = .udp
        case "sctp": self = .sctp
        default: return nil
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
