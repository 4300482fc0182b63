import Foundation
import IPVS
import Logging
import NIOCore
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
        let routes = Routes(registry: registry, status: status, servesStatus: servesStatus, endpoints: endpoints,
                            health: health, beforeScrape: beforeScrape)
        let channel: any Channel
        do {
            channel = try await HTTPAnswerHandler.bind(host: host, port: port, route: routes.reply(to:))
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

    /// What the server answers, shared by its connections.
    struct Routes: Sendable {
        let registry: PrometheusCollectorRegistry
        let status: StatusBox
        let servesStatus: Bool
        let endpoints: MetricsServer.Endpoints
        let health: ProxyHealth
        let beforeScrape: (@Sendable () -> Void)?

        func reply(to path: String) -> HTTPReply {
            let all = endpoints == .all
            switch path {
            case "/status" where servesStatus:
                // Made off the event loop: the document waits for the reconciler.
                return .later { [status] in HTTPAnswer(status: .ok, contentType: "application/json", body: Array(await status.document())) }
            case "/metrics" where all:
                beforeScrape?()
                return .now(HTTPAnswer(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.emitToBuffer()))
            case "/healthz", "/livez":
                // kube-proxy's rule, answer and headers (ProxyHealth); /healthz also judges this node's Node, when the agent follows it.
                let (healthy, body) = health.answer(path == "/healthz" ? .healthz : .livez)
                return .now(HTTPAnswer(status: healthy ? .ok : .serviceUnavailable, contentType: "application/json", body: Array(body.utf8),
                                       headers: [("X-Content-Type-Options", "nosniff")]))
            case "/status" where all:
                return .now(HTTPAnswer(status: .notFound, contentType: "text/plain",
                                       body: Array("not served here: /status lists every backend, so it is served on a loopback --metrics-address, or with --expose-status\n".utf8)))
            default:
                return .now(HTTPAnswer(status: .notFound, contentType: "text/plain",
                                       body: Array((all ? "not found; try /metrics, /healthz, /livez or /status\n" : "not found; try /healthz or /livez\n").utf8)))
            }
        }
    }
}
