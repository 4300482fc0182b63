/// Client persistence ("sticky sessions"): connections from one client (or client network) go to
/// the same real server while they keep coming within `timeout` seconds.
public struct Persistence: Hashable, Sendable {
    /// Seconds a persistence template lives after the client's last connection.
    public var timeout: UInt32
    /// Clients whose addresses share this many leading bits count as one client
    /// (32 or 128 means each address on its own).
    public var prefixLength: Int?

    public init(timeout: UInt32 = 300, prefixLength: Int? = nil) {
        self.timeout = timeout
        self.prefixLength = prefixLength
    }
}

// MARK: - Netmask

extension Persistence {
    /// The netmask the kernel and ipvsadm give a prefix length: for IPv4 the mask with `prefixLength`
    /// leading one bits, in host order (24: `0xFFFFFF00`, 255.255.255.0); for IPv6 the length itself.
    public static func netmask(prefixLength: Int, family: AddressFamily) -> UInt32 {
        let length = max(0, min(family.maxPrefixLength, prefixLength))
        switch family {
        case .inet: return length == 0 ? 0 : UInt32.max << UInt32(32 - length)
        case .inet6: return UInt32(length)
        }
    }

    /// The prefix length of a netmask in host order: the leading one bits of an IPv4 mask (a mask
    /// that is not contiguous is not the round trip of its length), the value itself for IPv6.
    public static func prefixLength(netmask: UInt32, family: AddressFamily) -> Int {
        family == .inet ? (~netmask).leadingZeroBitCount : Int(netmask)
    }

    /// The `-M` value ipvsadm prints for a prefix length: `255.255.255.0`, or `64` for IPv6.
    public static func netmaskText(prefixLength: Int, family: AddressFamily) -> String {
        let mask = netmask(prefixLength: prefixLength, family: family)
        return family == .inet ? IPAddress.v4(mask).description : String(mask)
    }
}
