import IPVS

/// Parses `HOST[:PORT]`, `[IPv6]:PORT` and bare IPv6 addresses as ipvsadm does: numeric
/// addresses first, then IPv4 host names (`gethostbyname`); numeric ports first, then service
/// names of the protocol (`/etc/services`).
enum EndpointParser {
    struct Endpoint: Equatable {
        var address: IPAddress
        /// `nil` when the text had no port.
        var port: UInt16?
    }

    static func parse(_ text: String, proto: TransportProtocol) -> Endpoint? {
        guard let (host, portText) = split(text) else { return nil }
        let address: IPAddress
        if text.utf8.first == 0x5B || (portText == nil && host.utf8.contains(0x3A)) {
            guard let v6 = IPAddress(host), v6.family == .inet6 else { return nil }
            address = v6
        } else if let v4 = NameResolver.ipv4Address(host) {
            address = v4
        } else {
            return nil
        }
        guard let portText else { return Endpoint(address: address, port: nil) }
        if let number = InvocationParser.integer(portText), (0...65535).contains(number) {
            return Endpoint(address: address, port: UInt16(number))
        }
        guard let port = NameResolver.port(ofService: portText, proto) else { return nil }
        return Endpoint(address: address, port: port)
    }

    /// Splits into host and port text; a bare IPv6 address has no port.
    private static func split(_ text: String) -> (host: String, port: String?)? {
        if text.isEmpty || text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return nil }
        if text.utf8.first == 0x5B {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            guard after.first == ":" else { return nil }
            return (host, String(after.dropFirst()))
        }
        let bytes = text.utf8
        guard let colon = bytes.lastIndex(of: 0x3A) else { return (text, nil) }
        if bytes[..<colon].contains(0x3A), let v6 = IPAddress(text), v6.family == .inet6 { return (text, nil) }
        return (String(Substring(bytes[..<colon])), String(Substring(bytes[bytes.index(after: colon)...])))
    }

    /// Why `text` did not parse, in words.
    static func problem(_ text: String, proto: TransportProtocol, what: String) -> String {
        let example = what == "real server" ? "10.1.0.5:8080 or [fd00::5]:8080" : "10.0.0.1:80 or [fd00::1]:80"
        guard let (host, portText) = split(text) else {
            if text.hasPrefix("[") { return "\"\(text)\" is not a valid \(what): write IPv6 as [ADDRESS]:PORT, e.g. \(example)" }
            return "\"\(text)\" is not a valid \(what) address: expected HOST[:PORT], e.g. \(example)"
        }
        if text.hasPrefix("["), IPAddress(host)?.family != .inet6 {
            return "\"\(host)\" in \"\(text)\" is not an IPv6 address (brackets are for IPv6)"
        }
        if IPAddress(host)?.family != .inet6, NameResolver.ipv4Address(host) == nil {
            return "\"\(host)\" is neither an IP address nor a resolvable IPv4 host name (in \"\(text)\")"
        }
        if let portText {
            return "\"\(portText)\" is neither a port 0..65535 nor a known \(proto.description.lowercased()) service name (in \"\(text)\")"
        }
        return "\"\(text)\" is not a valid \(what) address"
    }
}
