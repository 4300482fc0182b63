import IPVS

/// Which connection tracking entries to delete: those of one transport protocol whose original
/// destination is `destination:port` (a Service's frontend) and, when `replySource` is set, whose
/// reply comes from that address (the endpoint the entry was translated to). The `conntrack`
/// tool's `--proto`, `--orig-dst`, `--orig-port-dst` and `--reply-src`.
public struct ConntrackFilter: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The entries' transport protocol (`--proto`).
    public var transport: TransportProtocol
    /// The original direction's destination address (`--orig-dst`).
    public var destination: IPAddress
    /// The original direction's destination port (`--orig-port-dst`).
    public var port: UInt16
    /// The reply direction's source address (`--reply-src`), or `nil` for any.
    public var replySource: IPAddress?

    public init(transport: TransportProtocol, destination: IPAddress, port: UInt16, replySource: IPAddress? = nil) {
        self.transport = transport
        self.destination = destination
        self.port = port
        self.replySource = replySource
    }

    /// The address family of the entries it matches.
    public var family: AddressFamily { destination.family }

    /// Whether `entry` is one to delete.
    public func matches(_ entry: ConntrackEntry) -> Bool {
        entry.protocolNumber == UInt8(transport.rawValue) && entry.destination == destination && entry.port == port
            && (replySource == nil || entry.replySource == replySource)
    }

    /// The `conntrack -D` arguments that delete the same entries: `-p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.5`.
    public var description: String {
        var text = "-p \(transport.description.lowercased()) --orig-dst \(destination) --orig-port-dst \(port)"
        if let replySource { text += " --reply-src \(replySource)" }
        return text
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.transport, lhs.destination, lhs.port) != (rhs.transport, rhs.destination, rhs.port)
            ? (lhs.transport, lhs.destination, lhs.port) < (rhs.transport, rhs.destination, rhs.port)
            : (lhs.replySource.map { [$0] } ?? []).lexicographicallyPrecedes(rhs.replySource.map { [$0] } ?? [])
    }
}

/// The parts of a connection tracking entry a `ConntrackFilter` looks at.
public struct ConntrackEntry: Hashable, Sendable {
    /// The IANA protocol number of the original direction (`IPPROTO_UDP` is 17).
    public var protocolNumber: UInt8
    /// The original direction's destination address.
    public var destination: IPAddress
    /// The original direction's destination port (0 for protocols without ports).
    public var port: UInt16
    /// The reply direction's source address.
    public var replySource: IPAddress

    public init(protocolNumber: UInt8, destination: IPAddress, port: UInt16, replySource: IPAddress) {
        self.protocolNumber = protocolNumber
        self.destination = destination
        self.port = port
        self.replySource = replySource
    }
}
