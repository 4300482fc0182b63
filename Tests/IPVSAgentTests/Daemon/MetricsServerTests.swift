import AgentStatus
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import XCTest
@testable import IPVSAgent

/// What the agent's HTTP server answers on which address: `/status` lists every backend, so it is served on
/// loopback only unless the operator exposes it.
final class MetricsServerTests: XCTestCase {
    func testStatusIsServedOnLoopbackOnlyUnlessExposed() async throws {
        let port = Int.random(in: 20_000..<40_000)
        let onLoopback = try await answers(address: "127.0.0.1:\(port)", expose: false)
        XCTAssertTrue(onLoopback.status.hasPrefix("HTTP/1.1 200"), onLoopback.status)
        XCTAssertTrue(onLoopback.metrics.hasPrefix("HTTP/1.1 200"), onLoopback.metrics)

        let everywhere = try await answers(address: "0.0.0.0:\(port + 1)", expose: false)
        XCTAssertTrue(everywhere.status.hasPrefix("HTTP/1.1 404"), everywhere.status)
        XCTAssertTrue(everywhere.status.contains("--expose-status"), everywhere.status)
        XCTAssertTrue(everywhere.metrics.hasPrefix("HTTP/1.1 200"), "metrics stay served: \(everywhere.metrics)")

        let exposed = try await answers(address: "0.0.0.0:\(port + 2)", expose: true)
        XCTAssertTrue(exposed.status.hasPrefix("HTTP/1.1 200"), exposed.status)
    }

    func testLoopbackHosts() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] { XCTAssertTrue(MetricsServer.isLoopback(host), host) }
        for host in ["0.0.0.0", "::", "10.0.0.1", "fd00::1", "example.com"] { XCTAssertFalse(MetricsServer.isLoopback(host), host) }
    }

    /// `/healthz` and `/livez` answer with kube-proxy's headers (`proxy_health.go`): JSON, and `nosniff`.
    func testHealthAnswersHaveKubeProxysHeaders() async throws {
        let port = Int.random(in: 20_000..<40_000)
        let server = try MetricsServer(address: "127.0.0.1:\(port)", registry: PrometheusCollectorRegistry(), status: StatusBox(),
                                       endpoints: .health, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        for _ in 0..<100 where (try? Self.get("/livez", port: UInt16(port))) == nil { try await Task.sleep(for: .milliseconds(50)) }
        for path in ["/healthz", "/livez"] {
            let answer = try Self.get(path, port: UInt16(port))
            XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), answer)
            XCTAssertTrue(answer.lowercased().contains("content-type: application/json\r\n"), answer)
            XCTAssertTrue(answer.lowercased().contains("x-content-type-options: nosniff\r\n"), answer)
        }
        await group.triggerGracefulShutdown()
    }

    /// kube-proxy's `bindAddressHardFail` (`--bind-address-hard-fail`): a port another program holds
    /// stops the agent with it, naming the server and the address; without it (kube-proxy's default)
    /// the error is logged and the agent runs on without that server until it is stopped.
    func testAPortInUseStopsTheAgentOnlyWithBindAddressHardFail() async throws {
        let port = Int.random(in: 20_000..<40_000)
        let holder = try MetricsServer(address: "127.0.0.1:\(port)", registry: PrometheusCollectorRegistry(), status: StatusBox(),
                                       logger: Logger(label: "test"))
        let holding = ServiceGroup(services: [holder], logger: Logger(label: "test"))
        let held = Task { try await holding.run() }
        defer { held.cancel() }
        for _ in 0..<100 where (try? Self.get("/livez", port: UInt16(port))) == nil { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertTrue(try Self.get("/livez", port: UInt16(port)).hasPrefix("HTTP/1.1 200"), "the port is held")

        let hard = try MetricsServer(address: "127.0.0.1:\(port)", registry: PrometheusCollectorRegistry(), status: StatusBox(),
                                     endpoints: .health, hardFail: true, logger: Logger(label: "test"))
        let hardGroup = ServiceGroup(services: [hard], logger: Logger(label: "test"))
        let ended = LogRecorder(), endedLogger = Logger(label: "test") { _ in ended }
        let hardRun = Task {
            do { try await hardGroup.run() } catch { endedLogger.error("\(error)") }
        }
        for _ in 0..<100 where ended.messages.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        await hardGroup.triggerGracefulShutdown() // In case it runs on: the test then fails, it does not hang.
        await hardRun.value
        let error = try XCTUnwrap(ended.messages.first, "a port in use did not stop the agent with --bind-address-hard-fail")
        XCTAssertTrue(error.hasPrefix("cannot serve /healthz and /livez (--healthz-bind-address) on 127.0.0.1:\(port): "), error)
        XCTAssertTrue(error.hasSuffix("free the port or choose another"), error)

        let log = LogRecorder()
        log.logLevel = .info
        let soft = try MetricsServer(address: "127.0.0.1:\(port)", registry: PrometheusCollectorRegistry(), status: StatusBox(),
                                     hardFail: false, logger: Logger(label: "test") { _ in log })
        let group = ServiceGroup(services: [soft], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        for _ in 0..<100 where log.messages.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertEqual(log.messages, ["cannot serve /metrics (--metrics-address); running without it (--bind-address-hard-fail makes this fatal)"])
        await group.triggerGracefulShutdown()
        try await running.value // Ran on until stopped: no error.
        await holding.triggerGracefulShutdown()
    }

    /// `/status` and `/metrics` as a server on `address` answers them over 127.0.0.1.
    private func answers(address: String, expose: Bool) async throws -> (status: String, metrics: String) {
        let status = StatusBox()
        status.setProvider { AgentStatus(services: [], addresses: ["10.96.0.10"]) }
        let server = try MetricsServer(address: address, registry: PrometheusCollectorRegistry(), status: status,
                                       exposeStatus: expose, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        let port = UInt16(MetricsServer.parse(address)!.1)
        var result: (String, String) = ("", "")
        for _ in 0..<100 {
            if let answer = try? Self.get("/status", port: port) {
                result = (answer, try Self.get("/metrics", port: port))
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        await group.triggerGracefulShutdown()
        return result
    }

    /// One HTTP/1.1 GET to 127.0.0.1:`port`; the whole answer.
    static func get(_ path: String, port: UInt16) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { throw POSIXError(.EIO) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
