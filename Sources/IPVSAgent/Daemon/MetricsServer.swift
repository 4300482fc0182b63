import Foundation
import IPVS
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// Serves `/metrics` (Prometheus text format), `/healthz` and `/status` (JSON) over HTTP/1.1.
/// `/status` names every backend and its check results, so it is served on a loopback address only,
/// unless the operator exposes it.
public struct MetricsServer: Service {
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let status: StatusBox
    let servesStatus: Bool
    let logger: Logger

    public init(address: String, registry: PrometheusCollectorRegistry, status: StatusBox, exposeStatus: Bool = false,
                logger: Logger) throws {
        guard let (host, port) = Self.parse(address) else { throw AgentError("invalid metrics address \(address); use host:port") }
        self.host = host
        self.port = port
        self.registry = registry
        self.status = status
        self.servesStatus = exposeStatus || Self.isLoopback(host)
        self.logger = logger
    }

    /// Whether `host` is a loopback address or `localhost`: only this node's processes reach it.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || IPAddress(host)?.specialPurpose == .loopback
    }

    /// Splits `host:port` or `[v6]:port`.
    public static func parse(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    public func run() async throws {
        let registry = registry, status = status, servesStatus = servesStatus
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(registry: registry, status: status, servesStatus: servesStatus))
                }
            }
            .bind(host: host, port: port).get()
        logger.info(servesStatus ? "serving /metrics, /healthz and /status" : "serving /metrics and /healthz (/status only on loopback, or with --expose-status)",
                    metadata: ["address": "\(host):\(port)"])
        try? await gracefulShutdown()
        try await channel.close()
    }
}

/// Answers one request per `end` part; tiny on purpose.
private final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    let status: StatusBox
    let servesStatus: Bool
    private var path = "/"
    private var keepAlive = false

    init(registry: PrometheusCollectorRegistry, status: StatusBox, servesStatus: Bool) {
        self.registry = registry
        self.status = status
        self.servesStatus = servesStatus
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = String(head.uri.split(separator: "?").first ?? "/")
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            if path == "/status", servesStatus {
                // Made off the event loop: the document waits for the reconciler. The connection is
                // closed after it, so no request behind it on the same connection can be answered first.
                let status = status
                let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                let eventLoop = context.eventLoop
                Task {
                    let body = Array(await status.document())
                    eventLoop.execute {
                        handler.value.respond(context: bound.value, code: .ok, type: "application/json", body: body, keepAlive: false)
                    }
                }
                return
            }
            let (code, type, body) = response()
            respond(context: context, code: code, type: type, body: body, keepAlive: keepAlive)
        }
    }

    private func respond(context: ChannelHandlerContext, code: HTTPResponseStatus, type: String, body: [UInt8], keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.count)")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: code, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        if !keepAlive {
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func response() -> (HTTPResponseStatus, String, [UInt8]) {
        switch path {
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        case "/healthz":
            let healthy = status.isHealthy
            return (healthy ? .ok : .serviceUnavailable, "text/plain", Array((healthy ? "ok\n" : "kernel operations failing\n").utf8))
        case "/status":
            return (.notFound, "text/plain",
                    Array("not served here: /status lists every backend, so it is served on a loopback --metrics-address, or with --expose-status\n".utf8))
        default:
            return (.notFound, "text/plain", Array("not found; try /metrics, /healthz or /status\n".utf8))
        }
    }
}
