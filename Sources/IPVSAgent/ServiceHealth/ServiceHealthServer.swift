import IPVS
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// kube-proxy's service health server (`pkg/proxy/healthcheck/service_health.go`): an HTTP listener
/// on the healthCheckNodePort of each Service that wants one (`HealthCheckNodePort`), answering
/// every path with 200 while this node has ready endpoints of the Service and the agent keeps up
/// (`ProxyHealth`), 503 otherwise, in kube-proxy's JSON. The listeners follow the desired state at
/// each sync (`sync`): opened, closed, moved to a changed port. A port that cannot be listened on
/// is a problem of that Service, logged, and tried again at every later sync; a port below 1024
/// is never listened on.
actor ServiceHealthServer: Service {
    /// One Service's listening sockets.
    private struct Listener {
        var port: UInt16
        var channels: [any Channel]
    }

    /// The addresses to listen on (`--nodeport-addresses`, `--node-ip`); `nil` for every address,
    /// also when none is known (as kube-proxy does when it cannot list the node's addresses).
    let addresses: [IPAddress]?
    let health: ProxyHealth
    let logger: Logger
    /// What each Service's listener answers, read by its connections.
    private nonisolated let answers = Mutex<[ObjectName: HealthCheckNodePort]>([:])
    private var listeners: [ObjectName: Listener] = [:]
    /// The last wanted listeners, tried again by `retry()`.
    private(set) var wanted: [ObjectName: HealthCheckNodePort] = [:]
    /// The problem last logged for each Service, so that a retry that fails alike is not logged again.
    private var failing: [ObjectName: String] = [:]

    /// The lowest port listened on: a Service (tenant input) must not take a privileged port, the
    /// node's own services' (the API server never allocates one from its default range).
    static let lowestPort: UInt16 = 1024

    init(addresses: [IPAddress]?, health: ProxyHealth, logger: Logger) {
        self.addresses = addresses?.isEmpty == true ? nil : addresses
        self.health = health
        self.logger = logger
    }

    /// Brings the listeners to `wanted`: the Services that no longer want one, or want another port,
    /// are closed first; then the missing ones are opened, in name order. Returns each Service's
    /// problem (a port that cannot be listened on), which is logged once until it changes.
    @discardableResult
    func sync(_ wanted: [ObjectName: HealthCheckNodePort]) async -> [ObjectName: String] {
        self.wanted = wanted
        answers.withLock { $0 = wanted }
        for (name, listener) in listeners where wanted[name]?.port != listener.port {
            listeners[name] = nil
            await close(listener)
            logger.info("healthCheckNodePort closed", metadata: ["service": "\(name)", "port": "\(listener.port)"])
        }
        var holders = Dictionary(listeners.map { ($0.value.port, $0.key) }, uniquingKeysWith: { first, _ in first })
        var problems: [ObjectName: String] = [:]
        for name in wanted.keys.sorted() where listeners[name] == nil {
            let port = wanted[name]!.port
            if port < Self.lowestPort {
                problems[name] = "not serving the healthCheckNodePort of Service \(name): port \(port) is below \(Self.lowestPort), the node's "
                    + "system services' ports (the API server allocates it from its NodePort range, 30000-32767 by default); give the Service another"
                continue
            }
            if let holder = holders[port] {
                problems[name] = "cannot serve the healthCheckNodePort of Service \(name): port \(port) is already the healthCheckNodePort of Service \(holder); "
                    + "give each Service its own (tried again at every sync)"
                continue
            }
            do {
                listeners[name] = Listener(port: port, channels: try await open(name, port: port))
                holders[port] = name
                logger.info("serving healthCheckNodePort", metadata: ["service": "\(name)", "port": "\(port)",
                                                                      "addresses": "\(addresses.map { "\($0.map(\.description))" } ?? "all")"])
            } catch {
                problems[name] = "cannot serve the healthCheckNodePort of Service \(name) on port \(port): \(error); "
                    + "free the port, or give the Service another healthCheckNodePort (tried again at every sync)"
            }
        }
        for (name, problem) in problems where failing[name] != problem { logger.error("\(problem)", metadata: ["service": "\(name)"]) }
        failing = problems
        return problems
    }

    /// Tries again to open the listeners the last `sync` could not (every sync period).
    @discardableResult
    func retry() async -> [ObjectName: String] {
        await sync(wanted)
    }

    /// The ports listened on now, by Service.
    var ports: [ObjectName: UInt16] { listeners.mapValues(\.port) }

    /// Until the graceful shutdown, then closes every listener.
    func run() async throws {
        try? await gracefulShutdown()
        for listener in listeners.values { await close(listener) }
        listeners = [:]
    }

    /// Listens on `port` at every address (or on all addresses: `::`, which takes IPv4 too, else
    /// `0.0.0.0` on a kernel without IPv6); on a failure, closes what it opened and throws.
    private func open(_ name: ObjectName, port: UInt16) async throws -> [any Channel] {
        let route: HTTPAnswerHandler.Route = { [self, health] _ in
            .now(Self.answer(name, self.answers.withLock { $0[name]?.localEndpoints } ?? 0, proxyHealthy: health.isHealthy()))
        }
        guard let addresses else {
            do {
                return [try await HTTPAnswerHandler.bind(host: "::", port: Int(port), route: route)]
            } catch {
                return [try await HTTPAnswerHandler.bind(host: "0.0.0.0", port: Int(port), route: route)]
            }
        }
        var channels: [any Channel] = []
        do {
            for address in addresses { channels.append(try await HTTPAnswerHandler.bind(host: address.description, port: Int(port), route: route)) }
        } catch {
            await close(Listener(port: port, channels: channels))
            throw error
        }
        return channels
    }

    private func close(_ listener: Listener) async {
        for channel in listener.channels { try? await channel.close() }
    }

    /// kube-proxy's answer (`hcHandler.ServeHTTP`): 200 when the node has ready endpoints of the
    /// Service and the proxy is healthy, else 503; its JSON, indented with tabs, without a final newline.
    static func answer(_ name: ObjectName, _ localEndpoints: Int, proxyHealthy: Bool) -> HTTPAnswer {
        let body = "{\n\t\"service\": {\n\t\t\"namespace\": \"\(name.namespace)\",\n\t\t\"name\": \"\(name.name)\"\n\t},\n"
            + "\t\"localEndpoints\": \(localEndpoints),\n\t\"serviceProxyHealthy\": \(proxyHealthy)\n}"
        return HTTPAnswer(status: localEndpoints > 0 && proxyHealthy ? .ok : .serviceUnavailable, contentType: "application/json",
                          body: Array(body.utf8), headers: [("X-Content-Type-Options", "nosniff")])
    }
}
