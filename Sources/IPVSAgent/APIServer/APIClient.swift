import Foundation
import IPVS
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// GET requests to the Kubernetes API server over HTTP/1.1 and TLS (the server's certificate
/// verified against the configured CA, its name or IP address checked), authenticated with the
/// configuration's client certificate and bearer token. One connection per request: a list page
/// or a watch stream.
final class APIClient: Sendable {
    let configuration: APIServerConfiguration
    private let tls: NIOSSLContext?
    private let group: any EventLoopGroup
    /// How long a connection (TCP and TLS) may take.
    static let connectTimeout = TimeAmount.seconds(10)
    /// The largest body read whole (a list page); a page of 500 objects is far below.
    static let bodyLimit = 64 << 20

    init(configuration: APIServerConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws(APIServerError) {
        self.configuration = configuration
        self.group = group
        guard configuration.useTLS else {
            tls = nil
            return
        }
        var settings = TLSConfiguration.makeClientConfiguration()
        do {
            if let authority = configuration.certificateAuthority {
                settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(authority))
            }
            if let certificate = configuration.clientCertificate, let key = configuration.clientKey {
                settings.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                settings.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch {
            throw APIServerError("\(configuration.origin): a certificate or key is not valid PEM: \(error)")
        }
        if configuration.insecureSkipTLSVerify { settings.certificateVerification = .none }
        do {
            tls = try NIOSSLContext(configuration: settings)
        } catch {
            throw APIServerError("\(configuration.origin): cannot set up TLS: \(error)")
        }
    }

    /// The server as `host:port`, for messages.
    var server: String { "\(configuration.host):\(configuration.port)" }

    /// Sends `GET target` (a path with its query) and returns the response as it arrives.
    func get(_ target: String) async throws -> APIResponse {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target)
        head.headers.add(name: "Host", value: configuration.port == 443 ? configuration.host : server)
        head.headers.add(name: "User-Agent", value: "ipvs-agent")
        head.headers.add(name: "Accept", value: "application/json")
        if let token = try configuration.bearerToken() { head.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let (parts, continuation) = AsyncThrowingStream.makeStream(of: APIResponseHandler.Part.self)
        // SNI only for a host name: for an IP address NIOSSL checks the certificate's IP addresses.
        let serverName = IPAddress(configuration.host) == nil ? configuration.host : nil
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(Self.connectTimeout)
                .channelInitializer { [tls, head] channel in
                    do {
                        let sync = channel.pipeline.syncOperations
                        if let tls { try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(APIResponseHandler(head: head, continuation: continuation))
                        return channel.eventLoop.makeSucceededVoidFuture()
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                }
                .connect(host: configuration.host, port: configuration.port).get()
        } catch {
            continuation.finish(throwing: error)
            throw APIServerError("cannot connect to the API server \(server) (\(configuration.origin)): \(error)")
        }
        var iterator = parts.makeAsyncIterator()
        do {
            guard case .head(let response)? = try await iterator.next() else {
                throw APIServerError("the API server \(server) closed the connection before answering")
            }
            return APIResponse(status: Int(response.status.code), length: response.headers.first(name: "Content-Length").flatMap { Int($0) },
                               parts: iterator, channel: channel, server: server)
        } catch {
            channel.close(promise: nil)
            throw Self.describe(error, server: server)
        }
    }

    /// An error of a request in words: TLS problems say what to check.
    static func describe(_ error: any Error, server: String) -> APIServerError {
        if let error = error as? APIServerError { return error }
        // The connection ended without TLS's closing message: the server (or something between) went
        // away, which says nothing about the CA or the certificate.
        if let error = error as? NIOSSLError, case .uncleanShutdown = error {
            return APIServerError("the API server \(server) closed the connection abruptly (stopped, restarted, or cut off on the way)")
        }
        if error is NIOSSLError || error is BoringSSLError {
            return APIServerError("TLS with the API server \(server) failed (check the cluster CA and the server's name "
                                  + "or address in its certificate): \(error)")
        }
        return APIServerError("the request to the API server \(server) failed: \(error)")
    }
}

/// A response being received: its status, then its body in pieces, whole or line by line.
struct APIResponse {
    let status: Int
    /// The body's length as the head announced it (`Content-Length`), `nil` when chunked.
    let length: Int?
    fileprivate var parts: AsyncThrowingStream<APIResponseHandler.Part, any Error>.Iterator
    let channel: any Channel
    let server: String

    /// Closes the connection (a watch that is given up).
    func close() { channel.close(promise: nil) }

    /// The whole body, at most `APIClient.bodyLimit` bytes.
    mutating func body() async throws -> [UInt8] {
        defer { close() }
        var bytes: [UInt8] = []
        // Room for the announced length at once, not grown piece by piece (a page is megabytes).
        if let length, length > 0 { bytes.reserveCapacity(min(length, APIClient.bodyLimit)) }
        do {
            while case .body(let buffer)? = try await parts.next() {
                guard bytes.count + buffer.readableBytes <= APIClient.bodyLimit else {
                    throw APIServerError("the API server \(server) sent an answer over \(APIClient.bodyLimit >> 20) MiB")
                }
                buffer.withUnsafeReadableBytes { bytes.append(contentsOf: $0) }
            }
        } catch {
            throw APIClient.describe(error, server: server)
        }
        return bytes
    }

    /// The body's lines (a watch stream sends one JSON event per line), as they arrive; ends
    /// when the server ends the response, throws when the connection fails.
    mutating func nextLine(_ pending: inout [UInt8]) async throws -> [UInt8]? {
        while true {
            if let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<end])
                pending.removeSubrange(...end)
                return line
            }
            let part: APIResponseHandler.Part?
            do {
                part = try await parts.next()
            } catch {
                throw APIClient.describe(error, server: server)
            }
            guard case .body(let buffer)? = part else {
                defer { pending = [] }
                return pending.isEmpty ? nil : pending
            }
            guard pending.count + buffer.readableBytes <= APIClient.bodyLimit else {
                throw APIServerError("the API server \(server) sent a watch event over \(APIClient.bodyLimit >> 20) MiB")
            }
            buffer.withUnsafeReadableBytes { pending.append(contentsOf: $0) }
        }
    }
}

/// Sends the request once connected and passes the response's head and body pieces on.
final class APIResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    enum Part: Sendable {
        case head(HTTPResponseHead)
        case body(ByteBuffer)
    }

    private let head: HTTPRequestHead
    private let continuation: AsyncThrowingStream<Part, any Error>.Continuation
    private var finished = false

    init(head: HTTPRequestHead, continuation: AsyncThrowingStream<Part, any Error>.Continuation) {
        self.head = head
        self.continuation = continuation
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        switch unwrapInboundIn(data) {
        case .head(let response): continuation.yield(.head(response))
        case .body(let buffer): continuation.yield(.body(buffer))
        case .end:
            finished = true
            continuation.finish()
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !finished {
            finished = true
            continuation.finish(throwing: error)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            continuation.finish(throwing: APIServerError("the API server closed the connection in the middle of an answer"))
        }
        context.fireChannelInactive()
    }
}
