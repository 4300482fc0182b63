#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// Plain-socket TCP helpers for kernel tests that need real connections through IPVS, without
/// depending on any program being installed in the test environment.
enum LocalTraffic {
    /// A listening IPv4 TCP socket on `address:port`.
    static func listen(address: String, port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXFailure("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = try socketAddress(address, port)
        let bound = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { close(fd); throw POSIXFailure("bind \(address):\(port)", errno) }
        guard Glibc.listen(fd, 128) == 0 else { close(fd); throw POSIXFailure("listen", errno) }
        return fd
    }

    /// Connects to `address:port` with a timeout and returns the connected socket.
    static func connect(address: String, port: UInt16, timeoutSeconds: Int = 5) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXFailure("socket", errno) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sin = try socketAddress(address, port)
        let status = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard status == 0 else { close(fd); throw POSIXFailure("connect \(address):\(port)", errno) }
        return fd
    }

    private static func socketAddress(_ address: String, _ port: UInt16) throws -> sockaddr_in {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { throw POSIXFailure("parse \(address)", EINVAL) }
        return sin
    }

    struct POSIXFailure: Error, CustomStringConvertible {
        var what: String
        var code: Int32
        init(_ what: String, _ code: Int32) { self.what = what; self.code = code }
        var description: String { "\(what): \(String(cString: strerror(code)))" }
    }
}
