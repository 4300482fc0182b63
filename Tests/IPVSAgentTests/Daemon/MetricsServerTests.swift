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
