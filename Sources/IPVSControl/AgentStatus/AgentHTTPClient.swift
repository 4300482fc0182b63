#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why the agent's `/status` could not be fetched, in words an operator can act on.
struct AgentFetchError: Error, Equatable, Sendable, CustomStringConvertible {
    var message: String
    var description: String { message }
}

extension ControlEnvironment {
    /// The body of `GET /status` from ipvs-agent at `HOST:PORT` (5 s timeouts).
    public static func fetchAgentStatusOverHTTP(_ address: String) throws -> [UInt8] {
        try AgentHTTPClient.get("/status", from: address)
    }
}

/// A one-shot HTTP/1.0 GET over a plain socket: all `ipvsctl status` needs, without Foundation.
enum AgentHTTPClient {
    /// Splits `host:port` or `[v6]:port`; `nil` when malformed.
    static func split(_ address: String) -> (host: String, port: UInt16)? {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]), port != 0 else {
            return nil
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]") else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        return host.isEmpty ? nil : (host, port)
    }

    /// The body of `GET path` at `address`, when the answer is `200 OK`.
    static func get(_ path: String, from address: String, timeoutSeconds: Int = 5) throws(AgentFetchError) -> [UInt8] {
        guard let (host, port) = split(address) else {
            throw AgentFetchError(message: "\(address) is not an address; use HOST:PORT, e.g. 127.0.0.1:10249 or [::1]:10249")
        }
        let descriptor = try openConnection(host: host, port: port, address: address, timeoutSeconds: timeoutSeconds)
        defer { close(descriptor) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(address)\r\nAccept: application/json\r\nConnection: close\r\n\r\n".utf8)
        SystemIO.writeAll(descriptor: descriptor, request)
        let answer: [UInt8]
        do {
            answer = try SystemIO.readAll(descriptor: descriptor, what: "the answer of \(address)")
        } catch {
            throw AgentFetchError(message: "no answer from \(address) to GET \(path) within \(timeoutSeconds) s: \(error)")
        }
        return try body(of: answer, path: path, address: address)
    }

    /// The body of a whole HTTP response, when its status is 200.
    static func body(of answer: [UInt8], path: String, address: String) throws(AgentFetchError) -> [UInt8] {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, answer.count - 3)).first(where: { Array(answer[$0..<$0 + 4]) == separator }) else {
            throw AgentFetchError(message: "\(address) did not answer GET \(path) with HTTP; is it ipvs-agent's --metrics-address?")
        }
        let head = String(decoding: answer[..<end], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
        let words = statusLine.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[0].hasPrefix("HTTP/") else {
            throw AgentFetchError(message: "\(address) did not answer GET \(path) with HTTP; is it ipvs-agent's --metrics-address?")
        }
        guard words[1] == "200" else {
            throw AgentFetchError(message: "\(address) answered GET \(path) with \"\(statusLine)\"; is it ipvs-agent's --metrics-address (an agent older than /status)?")
        }
        return Array(answer[(end + 4)...])
    }

    private static func openConnection(host: String, port: UInt16, address: String, timeoutSeconds: Int) throws(AgentFetchError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else {
            throw AgentFetchError(message: "cannot resolve \(host) (from \(address)): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(first) }
        var lastError: Int32 = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let descriptor = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard descriptor >= 0 else { lastError = errno; continue }
            var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            // SO_SNDTIMEO also bounds a blocking connect on Linux.
            if connect(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return descriptor }
            lastError = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno
            close(descriptor)
        }
        throw AgentFetchError(message: "cannot reach ipvs-agent at \(address): \(String(cString: strerror(lastError))). "
            + "Is ipvs-agent running, with --metrics-address \(address)? Give its address with --agent-address HOST:PORT.")
    }
}
