import IPVS

/// An address, transport protocol and port that the filter matches on: a virtual service's
/// address and port, or an endpoint's (for hairpin traffic).
public struct Frontend: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var transport: TransportProtocol
    public var port: UInt16

    public init(_ address: IPAddress, _ transport: TransportProtocol, _ port: UInt16) {
        self.address = address
        self.transport = transport
        self.port = port
    }

    /// `TCP 10.96.0.10:80`, as the agent's logs name a virtual service.
    public var description: String { "\(transport) \(address.withPort(port))" }

    public static func < (lhs: Frontend, rhs: Frontend) -> Bool {
        (lhs.address, lhs.transport, lhs.port) < (rhs.address, rhs.transport, rhs.port)
    }
}
