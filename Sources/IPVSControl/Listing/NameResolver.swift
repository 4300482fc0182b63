#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// Host and service names, looked up with the same C library calls ipvsadm makes
/// (`gethostbyaddr`, `getservbyport`, `gethostbyname`, `getservbyname`) so that listings without
/// `-n` and names in arguments resolve exactly as with ipvsadm: `/etc/hosts`, DNS, `/etc/services`.
///
/// Answers are cached: a listing asks for the same addresses and ports many times.
final class NameResolver {
    private var hosts: [IPAddress: String?] = [:]
    private var services: [UInt32: String?] = [:]

    init() {}

    /// The host name of `address`, or `nil` when it has none.
    func hostName(_ address: IPAddress) -> String? {
        if let cached = hosts[address] { return cached }
        let bytes = address.bytes
        let family = address.family == .inet ? AF_INET : AF_INET6
        let entry = bytes.withUnsafeBytes { gethostbyaddr($0.baseAddress, socklen_t(bytes.count), family) }
        let name = entry.flatMap { $0.pointee.h_name.map { String(cString: $0) } }
        hosts[address] = name
        return name
    }

    /// The service name of `port` for `proto` (`http` for TCP 80), or `nil`.
    func serviceName(_ port: UInt16, _ proto: TransportProtocol?) -> String? {
        guard let proto else { return nil }
        let key = UInt32(proto.rawValue) << 16 | UInt32(port)
        if let cached = services[key] { return cached }
        let entry = getservbyport(Int32(port.bigEndian), Self.protocolName(proto))
        let name = entry.flatMap { $0.pointee.s_name.map { String(cString: $0) } }
        services[key] = name
        return name
    }

    /// The port of service `name` for `proto`, or `nil`.
    static func port(ofService name: String, _ proto: TransportProtocol?) -> UInt16? {
        guard let proto, let entry = getservbyname(name, protocolName(proto)) else { return nil }
        return UInt16(bigEndian: UInt16(truncatingIfNeeded: entry.pointee.s_port))
    }

    /// Parses an IPv4 address the way ipvsadm does: `inet_aton` (which also accepts `10.1`), then
    /// a host name through `gethostbyname` (IPv4 only).
    static func ipv4Address(_ text: String) -> IPAddress? {
        var raw = in_addr()
        if inet_aton(text, &raw) != 0 {
            return withUnsafeBytes(of: raw) { IPAddress(bytes: $0) }
        }
        guard let entry = gethostbyname(text), entry.pointee.h_addrtype == AF_INET,
              entry.pointee.h_length == 4, let list = entry.pointee.h_addr_list, let first = list[0] else {
            return nil
        }
        return IPAddress(bytes: UnsafeRawBufferPointer(start: first, count: 4))
    }

    private static func protocolName(_ proto: TransportProtocol) -> String {
        switch proto {
        case .tcp: "tcp"
        case .udp: "udp"
        case .sctp: "sctp"
        }
    }
}
