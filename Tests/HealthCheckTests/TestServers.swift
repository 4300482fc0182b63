#if canImport(Glibc)
import Glibc
#endif
import CEpoll
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

// MARK: - Loopback test servers (127.0.0.1, ephemeral ports only)

/// What the test HTTP server answers; changed by tests while it runs.
struct HTTPAnswer: Sendable {
    var status: Int
    var body: String
    /// When set, a request for another path (request-target) gets `404` instead.
    var path: String?
    /// When set, a request with another `Host` header (or none) gets `400` instead.
    var host: String?

    init(status: Int, body: String, path: String? = nil, host: String? = nil) {
        self.status = status
        self.body = body
        self.path = path
        self.host = host
    }

    /// The status and body for a request head (request line and header lines, CRLF-separated).
    func response(to head: String) -> (status: Int, body: String) {
        let lines = head.components(separatedBy: "\r\n")
        let target = lines.first?.split(separator: " ").dropFirst().first.map(String.init)
        let hostHeader = lines.dropFirst().first { $0.lowercased().hasPrefix("host:") }
            .map { String($0.dropFirst("host:".count)).trimmingCharacters(in: .whitespaces) }
        if let path, target != path { return (404, "no such path: \(target ?? "none")") }
        if let host, hostHeader != host { return (400, "wrong host: \(hostHeader ?? "none")") }
        return (status, body)
    }
}

enum TestServers {
    /// A TCP server that accepts and closes nothing in particular (connections just stay until the client closes).
    static func tcp(group: any EventLoopGroup, port: Int = 0) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: port)
            .get()
    }

    /// An HTTP/1.1 server answering every request with `answer` and closing; TLS when `tls` is given.
    static func http(group: any EventLoopGroup, answer: NIOLockedValueBox<HTTPAnswer>, tls: NIOSSLContext? = nil) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(RawHTTPResponder(answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    /// A UDP server that echoes every datagram, prefixed with `prefix`.
    static func udpEcho(group: any EventLoopGroup, prefix: String = "") async throws -> any Channel {
        try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPEcho(prefix: prefix))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    /// A loopback port with nothing listening, for UDP: bound, read, closed. TCP tests use ``RefusingPort``,
    /// which keeps its port.
    static func closedUDPPort(group: any EventLoopGroup) async throws -> Int {
        let channel = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    static func serverContext() throws -> NIOSSLContext {
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(TestCertificate.certificatePEM.utf8), format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(TestCertificate.privateKeyPEM.utf8), format: .pem)))
        return try NIOSSLContext(configuration: configuration)
    }
}

// MARK: - RefusingPort

/// A TCP port on 127.0.0.1 bound by a socket that never listens, held until ``close()``. Connects to it are
/// refused, and while it is held no other socket takes the port, nor does a connect pick it as its own source
/// port: a port merely bound and closed again can be, and a connect to it then connects to itself.
struct RefusingPort {
    let port: Int
    private let fd: CInt

    init() throws {
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        guard let address = LoopbackSocket.bind(fd) else {
            Glibc.close(fd)
            throw POSIXError(.EADDRNOTAVAIL)
        }
        self.fd = fd
        self.port = LoopbackSocket.port(of: address)
    }

    func close() { Glibc.close(fd) }
}

// MARK: - LoopbackSocket

/// Plain sockets on 127.0.0.1, for what NIO does not do: hold a port without listening, fill a backlog,
/// connect a socket to itself.
enum LoopbackSocket {
    /// 127.0.0.1 and `port` (0: any).
    static func address(port: Int = 0) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    static func port(of address: sockaddr_in) -> Int { Int(UInt16(bigEndian: address.sin_port)) }

    /// Binds `fd` to 127.0.0.1 on a port the kernel picks (one of the ephemeral range) and returns that
    /// address; `nil` when it fails (`errno` says why).
    static func bind(_ fd: CInt) -> sockaddr_in? {
        var address = address()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return bound ? address : nil
    }

    /// `connect(2)` of `fd` to `address`.
    static func connect(_ fd: CInt, to address: sockaddr_in) -> CInt {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}

// MARK: - Handlers

/// Reads until the end of the request head, writes the answer (404 or 400 when the answer names a path or
/// Host that the request does not ask for) and closes.
final class RawHTTPResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answer: NIOLockedValueBox<HTTPAnswer>
    private var received = ""
    private var answered = false

    init(answer: NIOLockedValueBox<HTTPAnswer>) {
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readString(length: buffer.readableBytes) ?? ""
        guard !answered, received.contains("\r\n\r\n") else { return }
        answered = true
        let answer = answer.withLockedValue { $0 }.response(to: received)
        let body = Array(answer.body.utf8)
        let head = "HTTP/1.1 \(answer.status) Test\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let response = context.channel.allocator.buffer(bytes: Array(head.utf8) + body)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(response)).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

final class UDPEcho: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let prefix: String

    init(prefix: String) {
        self.prefix = prefix
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        var reply = context.channel.allocator.buffer(string: prefix)
        var payload = request.data
        reply.writeBuffer(&payload)
        context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: request.remoteAddress, data: reply)), promise: nil)
    }
}

// MARK: - Test-only certificate

/// TEST ONLY: a self-signed P-256 certificate (CN health-check-test, SAN localhost and 127.0.0.1, valid 100
/// years) and its private key, made for these tests with `openssl req -x509`. Not a secret; never use it
/// outside tests.
enum TestCertificate {
    static let certificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBrDCCAVGgAwIBAgIUCzYyNWkP/eNWzTiwgjaNe3jMb+8wCgYIKoZIzj0EAwIw
        HDEaMBgGA1UEAwwRaGVhbHRoLWNoZWNrLXRlc3QwIBcNMjYxMTI1MTUzNDEyWhgP
        MjEyNjExMDExNTM0MTJaMBwxGjAYBgNVBAMMEWhlYWx0aC1jaGVjay10ZXN0MFkw
        EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELVx+8h7hqFuFBo8+PcQzWZyYy1EvX09I
        KliCn9+uM6v+CGYfforJ9eChcbn1arPCswi7Qp9WAts8pSq9KetjeaNvMG0wHQYD
        VR0OBBYEFNi9NQuhw+7ojBmF9SXfEysM3eHOMB8GA1UdIwQYMBaAFNi9NQuhw+7o
        jBmF9SXfEysM3eHOMA8GA1UdEwEB/wQFMAMBAf8wGgYDVR0RBBMwEYIJbG9jYWxo
        b3N0hwR/AAABMAoGCCqGSM49BAMCA0kAMEYCIQCqGZIi6z1scPcX+aLNdBh4DO2y
        hx81H/SRhQcALhN3qgIhAOaiIEtdpINXhOjaDi5QUOFaNxrjUEg8W+XnQKsMGcYx
        -----END CERTIFICATE-----
        """

    static let privateKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkokHbDEUzuKcqkFM
        3d2Knu3bTE5f14sZ3bwVsRYVKjqhRANCAAQtXH7yHuGoW4UGjz49xDNZnJjLUS9f
        T0gqWIKf364zq/4IZh9+isn14KFxufVqs8KzCLtCn1YC2zylKr0p62N5
        -----END PRIVATE KEY-----
        """
}
