#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// The order of ipvsadm's sorted listings.
///
/// ipvsadm sorts with the C library's `qsort` and comparisons that subtract unsigned numbers
/// into an `int`, so marks and addresses more than 2^31 apart compare "backwards" (a mark above
/// 2^31 sorts before every address service, 10.0.0.1 after 192.168.0.1 when they are compared
/// directly). Such comparisons are not a total order, so the result depends on the sorting
/// algorithm too. To list byte for byte like ipvsadm, this sorts with the same `qsort` and
/// the same arithmetic.
enum ListingOrder {
    private struct ServiceKey {
        var fwmark: UInt32
        var family: UInt16
        var proto: UInt16
        var words: (UInt32, UInt32, UInt32, UInt32)
        var port: UInt16
        var index: Int32
    }

    private struct ServerKey {
        var isIPv6: Bool
        var words: (UInt32, UInt32, UInt32, UInt32)
        var port: UInt16
        var index: Int32
    }

    /// `services` in ipvsadm's sorted order.
    static func services(_ services: [VirtualService]) -> [VirtualService] {
        var keys = services.enumerated().map { index, service -> ServiceKey in
            switch service.key {
            case .address(let proto, let address, let port):
                ServiceKey(fwmark: 0, family: address.family.rawValue, proto: proto.rawValue,
                           words: words(address), port: port, index: Int32(index))
            case .firewallMark(let mark, let family):
                ServiceKey(fwmark: mark, family: family.rawValue, proto: 0, words: (0, 0, 0, 0), port: 0, index: Int32(index))
            }
        }
        keys.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            qsort(base, buffer.count, MemoryLayout<ServiceKey>.stride) { left, right in
                let a = left!.load(as: ServiceKey.self), b = right!.load(as: ServiceKey.self)
                var r = Int32(bitPattern: a.fwmark &- b.fwmark)
                if r != 0 { return r }
                r = Int32(a.family) - Int32(b.family)
                if r != 0 { return r }
                r = Int32(a.proto) - Int32(b.proto)
                if r != 0 { return r }
                r = compareAddressWords(a.words, b.words, ipv6: a.family == 10 /* AF_INET6 */)
                if r != 0 { return r }
                return Int32(a.port) - Int32(b.port)
            }
        }
        return keys.map { services[Int($0.index)] }
    }

    /// `servers` in ipvsadm's sorted order.
    static func realServers(_ servers: [RealServer]) -> [RealServer] {
        var keys = servers.enumerated().map { index, server in
            ServerKey(isIPv6: server.address.family == .inet6, words: words(server.address), port: server.port, index: Int32(index))
        }
        keys.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            qsort(base, buffer.count, MemoryLayout<ServerKey>.stride) { left, right in
                let a = left!.load(as: ServerKey.self), b = right!.load(as: ServerKey.self)
                let r = compareAddressWords(a.words, b.words, ipv6: a.isIPv6)
                if r != 0 { return r }
                return Int32(a.port) - Int32(b.port)
            }
        }
        return keys.map { servers[Int($0.index)] }
    }

    /// The address as the four host-order words of the kernel's 16-byte address union.
    private static func words(_ address: IPAddress) -> (UInt32, UInt32, UInt32, UInt32) {
        switch address {
        case .v4(let value): (value, 0, 0, 0)
        case .v6(let high, let low):
            (UInt32(truncatingIfNeeded: high >> 32), UInt32(truncatingIfNeeded: high),
             UInt32(truncatingIfNeeded: low >> 32), UInt32(truncatingIfNeeded: low))
        }
    }
}

/// ipvsadm's address comparison: the first word only for IPv4 (of the left operand), the
/// four words until one differs for IPv6; each a wrapping unsigned difference read as `int`.
private func compareAddressWords(_ a: (UInt32, UInt32, UInt32, UInt32), _ b: (UInt32, UInt32, UInt32, UInt32), ipv6: Bool) -> Int32 {
    var r = Int32(bitPattern: a.0 &- b.0)
    guard ipv6 else { return r }
    if r == 0 { r = Int32(bitPattern: a.1 &- b.1) }
    if r == 0 { r = Int32(bitPattern: a.2 &- b.2) }
    if r == 0 { r = Int32(bitPattern: a.3 &- b.3) }
    return r
}
