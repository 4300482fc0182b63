#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An IPv4 or IPv6 address.
///
/// Parsed and printed with the C library's `inet_pton`/`inet_ntop`, so the text form is exactly the
/// one `ipvsadm` and `ip` print (`::ffff:10.0.0.1`, `fd00::1`).
public enum IPAddress: Hashable, Sendable, Comparable, LosslessStringConvertible {
    /// An IPv4 address; the value's most significant byte is the first octet.
    case v4(UInt32)
    /// An IPv6 address as two 64-bit halves, most significant first.
    case v6(UInt64, UInt64)

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text. Returns `nil` for anything else
    /// (no brackets, no zone, no port).
    public init?(_ text: String) {
        // On the hot path of a cold start (every endpoint of every manifest): no arrays made.
        if text.utf8.contains(UInt8(ascii: ":")) {
            var raw = in6_addr()
            guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
            self = withUnsafeBytes(of: raw) { bytes in
                .v6(UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)),
                    UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
        } else {
            var raw = in_addr()
            guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
            self = .v4(UInt32(bigEndian: raw.s_addr))
        }
    }

    /// Builds an address from 4 (IPv4) or 16 (IPv6) bytes in network order.
    public init?(bytes: some Collection<UInt8>) {
        let bytes = Array(bytes)
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high, low)
        default:
            return nil
        }
    }

    /// The address family.
    public var family: AddressFamily {
        switch self {
        case .v4: .inet
        case .v6: .inet6
        }
    }

    /// The address in network byte order: 4 or 16 bytes.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let value):
            return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    /// The address padded to the 16 bytes of the kernel's `union nf_inet_addr`.
    public var kernelBytes: [UInt8] {
        let raw = bytes
        return raw + [UInt8](repeating: 0, count: 16 - raw.count)
    }

    /// The all-zero address of `family`.
    public static func any(_ family: AddressFamily) -> IPAddress {
        family == .inet ? .v4(0) : .v6(0, 0)
    }

    public var description: String {
        var output = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let raw = bytes
        let family = self.family == .inet ? AF_INET : AF_INET6
        let ok = raw.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &output, socklen_t(output.count)) }
        guard ok != nil else { return "?" }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// What the address is reserved for when it names no single remote host (RFC 6890), or `nil`
    /// for an ordinary unicast address. An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is
    /// classified as the IPv4 address it maps.
    public var specialPurpose: SpecialPurpose? {
        switch self {
        case .v4(let value):
            if value == 0 { return .unspecified }
            if value == 0xFFFF_FFFF { return .broadcast }
            if value >> 24 == 127 { return .loopback }
            if value >> 16 == 0xA9FE { return .linkLocal } // 169.254.0.0/16
            if value >> 28 == 0xE { return .multicast } // 224.0.0.0/4
            return nil
        case .v6(let high, let low):
            if high == 0, low >> 32 == 0xFFFF { return IPAddress.v4(UInt32(truncatingIfNeeded: low)).specialPurpose }
            if high == 0, low == 0 { return .unspecified }
            if high == 0, low == 1 { return .loopback }
            if high >> 54 == 0x3FA { return .linkLocal } // fe80::/10
            if high >> 56 == 0xFF { return .multicast } // ff00::/8
            return nil
        }
    }

    /// A kind of address that names no single remote host: such an address cannot be a service's
    /// virtual address or a destination on the network.
    public enum SpecialPurpose: String, Hashable, Sendable, CustomStringConvertible {
        /// `0.0.0.0` or `::`.
        case unspecified
        /// `127.0.0.0/8` or `::1`: this host only.
        case loopback
        /// `169.254.0.0/16` or `fe80::/10`: valid on one link only.
        case linkLocal = "link-local"
        /// `224.0.0.0/4` or `ff00::/8`.
        case multicast
        /// `255.255.255.255`, the limited broadcast address.
        case broadcast

        public var description: String { rawValue }
    }

    /// The address in the `host:port` form ipvsadm uses: `[fd00::1]:80` for IPv6.
    public func withPort(_ port: UInt16) -> String {
        switch self {
        case .v4: "\(self):\(port)"
        case .v6: "[\(self)]:\(port)"
        }
    }

    /// Orders IPv4 before IPv6, then by numeric value (as memcmp of network bytes would).
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): a < b
        case (.v6(let a1, let a2), .v6(let b1, let b2)): (a1, a2) < (b1, b2)
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }
}

/// An address family.
public enum AddressFamily: UInt16, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// IPv4. The corresponding kernel constant is `AF_INET`.
    case inet = 2
    /// IPv6. The corresponding kernel constant is `AF_INET6`.
    case inet6 = 10

    public var description: String { self == .inet ? "IPv4" : "IPv6" }

    /// The longest prefix length of the family: 32 or 128.
    public var maxPrefixLength: Int { self == .inet ? 32 : 128 }
}
