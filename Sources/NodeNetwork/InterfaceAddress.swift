import NetworkAddress

/// An address bound on a network interface, with its prefix length: `10.96.0.1/32`.
public struct InterfaceAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The interface's own address (`IFA_LOCAL`).
    public var address: IPAddress
    /// The prefix length: 0...32 for IPv4, 0...128 for IPv6.
    public var prefixLength: Int

    public init(address: IPAddress, prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    /// The host-prefix binding of `address`: /32 for IPv4, /128 for IPv6, as VIPs are bound.
    public init(host address: IPAddress) {
        self.init(address: address, prefixLength: address.family.maxPrefixLength)
    }

    /// Whether the prefix covers only this address (/32 or /128), the way VIPs are bound.
    public var isHostPrefix: Bool { prefixLength == address.family.maxPrefixLength }

    /// `10.96.0.1/32`, `fd00::1/128`.
    public var description: String { "\(address)/\(prefixLength)" }

    /// Orders by address, then by prefix length.
    public static func < (lhs: InterfaceAddress, rhs: InterfaceAddress) -> Bool {
        (lhs.address, lhs.prefixLength) < (rhs.address, rhs.prefixLength)
    }
}

// MARK: - Address classes the node address listing skips

extension IPAddress {
    /// `127.0.0.0/8` or `::1`.
    var isLoopback: Bool {
        switch self {
        case .v4(let value): value >> 24 == 127
        case .v6(let high, let low): high == 0 && low == 1
        }
    }

    /// `169.254.0.0/16` or `fe80::/10`: valid on one link only, never a service address.
    var isLinkLocal: Bool {
        switch self {
        case .v4(let value): value >> 16 == 0xA9FE
        case .v6(let high, _): high >> 54 == 0x3FA
        }
    }
}
