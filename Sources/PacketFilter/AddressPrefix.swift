import IPVS

/// An address block in CIDR notation (`10.244.0.0/16`, `fd00::/8`), its host bits cleared as Go's
/// `net.ParseCIDR` does (kube-proxy reads `--cluster-cidr` and `loadBalancerSourceRanges` with it).
public struct AddressPrefix: Hashable, Sendable, Comparable, LosslessStringConvertible {
    /// The first address of the block.
    public let address: IPAddress
    /// The number of leading bits that name the block: 0 to 32 for IPv4, 0 to 128 for IPv6.
    public let length: Int

    /// The block of `length` bits holding `address`, or `nil` when `length` is out of range.
    public init?(_ address: IPAddress, length: Int) {
        guard (0...address.family.maxPrefixLength).contains(length) else { return nil }
        let bytes = address.bytes.enumerated().map { index, byte -> UInt8 in
            let kept = min(max(length - index * 8, 0), 8)
            return kept == 8 ? byte : byte & ~(UInt8(0xFF) >> kept)
        }
        self.address = IPAddress(bytes: bytes)!
        self.length = length
    }

    /// Parses `address/length` (a bare address is refused, as by `net.ParseCIDR`).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])) else { return nil }
        guard let length = Int(parts[1]), parts[1].allSatisfy(\.isASCII), parts[1].first != "+" else { return nil }
        self.init(address, length: length)
    }

    /// `10.244.0.0/16`.
    public var description: String { "\(address)/\(length)" }

    /// Whether `other` lies inside this block (same family, at least as long, same leading bits).
    public func contains(_ other: AddressPrefix) -> Bool {
        other.address.family == address.family && other.length >= length
            && AddressPrefix(other.address, length: length)?.address == address
    }

    /// Whether `address` lies inside this block.
    public func contains(_ address: IPAddress) -> Bool {
        contains(AddressPrefix(address, length: address.family.maxPrefixLength)!)
    }

    public static func < (lhs: AddressPrefix, rhs: AddressPrefix) -> Bool {
        (lhs.address, lhs.length) < (rhs.address, rhs.length)
    }

    /// `prefixes` without those inside another one: nftables refuses overlapping intervals in a set.
    public static func outermost(_ prefixes: some Sequence<AddressPrefix>) -> Set<AddressPrefix> {
        let sorted = Set(prefixes).sorted { ($0.length, $0) < ($1.length, $1) }
        var kept: [AddressPrefix] = []
        for prefix in sorted where !kept.contains(where: { $0.contains(prefix) }) { kept.append(prefix) }
        return Set(kept)
    }
}
