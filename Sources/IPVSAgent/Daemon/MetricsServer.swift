import Foundation
import IPVS
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// Serves `/metrics` (Prometheus text format), `/healthz`, `/livez` and `/status` (JSON) over HTTP/1.1,
/// or only `/healthz` and `/livez` (kube-proxy's `--healthz-bind-address` server).
/// `/status` names every backend and its check results, so it is served on a loopback address only,
/// unless the operator exposes it.
public struct MetricsServer: Service {
    /// What one server answers.
    public enum Endpoints: Sendable {
        /// `/metrics`, `/status` (where allowed), `/healthz` and `/livez`: the `--metrics-address` server.
        case all
        /// `/healthz` and `/livez` only: the `--healthz-bind-address` server, as kube-proxy's.
        case health
    }

    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let status: StatusBox
    let servesStatus: Bool
    let endpoints: Endpoints
    let health: ProxyHealth
    /// Whether a port that cannot be bound stops the agent (`--bind-address-hard-fail`), rather than being logged.
    let hardFail: Bool
    /// Runs before each `/metrics` answer (the `process_*` gauges are read then).
    let beforeScrape: (@Sendable () -> Void)?
    let logger: Logger

    public init(address: String, registry: PrometheusCollectorRegistry, status: StatusBox, exposeStatus: Bool = false,
                endpoints: Endpoints = .all, health: ProxyHealth = ProxyHealth(syncPeriod: .seconds(30)), hardFail: Bool = true,
                beforeScrape: (@Sendable () -> Void)? = nil, logger: Logger) throws {
        guard let (host, port) = Self.parse(address) else { throw AgentError("invalid metrics address \(address); use host:port") }
        self.host = host
        self.port = port
        self.registry = registry
        self.status = status
        self.servesStatus = endpoints == .all && (exposeStatus || Self.isLoopback(host))
        self.endpoints = endpoints
        self.health = health
        self.hardFail = hardFail
        self.beforeScrape = beforeScrape
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
        let routes = HTTPHandler.Routes(registry: registry, status: status, servesStatus: servesStatus, endpoints: endpoints,
                                        health: health, beforeScrape: beforeScrape)
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(HTTPHandler(routes: routes))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            let what = endpoints == .health ? "/healthz and /livez (--healthz-bind-address)" : "/metrics (--metrics-address)"
            guard !hardFail else { throw AgentError("cannot serve \(what) on \(host):\(port): \(error); free the port or choose another") }
            // kube-proxy's default (bindAddressHardFail false): log it and run on without this server.
            logger.error("cannot serve \(what); running without it (--bind-address-hard-fail makes this fatal)",
                         metadata: ["address": "\(host):\(port)", "error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        logger.info(endpoints == .health ? "serving /healthz and /livez"
                    : servesStatus ? "serving /metrics, /healthz, /livez and /status" : "serving /metrics, /healthz and /livez (/status only on loopback, or with --expose-status)",
                    metadata: ["address": "\(host):\(port)"])
        try? await gracefulShutdown()
        try await channel.close()
    }
}

/// Answers one request per `end` part; tiny on purpose.
private final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// What the server answers, shared by its connections.
    struct Routes: Sendable {
        let registry: PrometheusCollectorRegistry
        let status: StatusBox
        let servesStatus: Bool
        let endpoints: MetricsServer.Endpoints
        let health: ProxyHealth
        let beforeScrape: (@Sendable () -> Void)?
    }

    let routes: Routes
    private var path = "/"
    private var keepAlive = false

    init(routes: Routes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = String(head.uri.split(separator: "?").first ?? "/")
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            if path == "/status", routes.servesStatus {
                // Made off the event loop: the document waits for the reconciler. The connection is
                // closed after it, so no request behind it on the same connection can be answered first.
                let status = routes.status
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
        let all = routes.endpoints == .all
        switch path {
        case "/metrics" where all:
            routes.beforeScrape?()
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", routes.registry.emitToBuffer())
        case "/healthz", "/livez":
            // kube-proxy's rule and answer (ProxyHealth); /healthz also judges this node's Node, when the agent follows it.
            let (healthy, body) = routes.health.answer(path == "/healthz" ? .healthz : .livez)
            return (healthy ? .ok : .serviceUnavailable, "application/json", Array(body.utf8))
        case "/status" where all:
            return (.notFound, "text/plain",
                    Array("not served here: /status lists every backend, so it is served on a loopback --metrics-address, or with --expose-status\n".utf8))
        default:
            return (.notFound, "text/plain", Array((all ? "not found; try /metrics, /healthz, /livez or /status\n" : "not found; try /healthz or /livez\n").utf8))
        }
    }
}
