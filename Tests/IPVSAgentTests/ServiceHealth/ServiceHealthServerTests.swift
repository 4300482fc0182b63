import Foundation
import IPVS
import Logging
import NIOCore
import XCTest
@testable import IPVSAgent

/// kube-proxy's healthCheckNodePort answers, and the listeners following each sync, on loopback.
final class ServiceHealthServerTests: XCTestCase {
    let web = ObjectName(namespace: "shop", name: "web")
    let api = ObjectName(namespace: "shop", name: "api")

    func testTheAnswerIsKubeProxys() {
        let healthy = ServiceHealthServer.answer(web, 2, proxyHealthy: true)
        XCTAssertEqual(healthy.status, .ok)
        XCTAssertEqual(healthy.contentType, "application/json")
        XCTAssertEqual(healthy.headers.map(\.name), ["X-Content-Type-Options"])
        XCTAssertEqual(healthy.headers.map(\.value), ["nosniff"])
        // service_health.go's template, dedented and trimmed of its newlines.
        XCTAssertEqual(String(decoding: healthy.body, as: UTF8.self), """
            {
            \t"service": {
            \t\t"namespace": "shop",
            \t\t"name": "web"
            \t},
            \t"localEndpoints": 2,
            \t"serviceProxyHealthy": true
            }
            """)
        let decoded = try? JSONSerialization.jsonObject(with: Data(healthy.body)) as? [String: Any]
        XCTAssertEqual(decoded?["localEndpoints"] as? Int, 2)
        XCTAssertEqual(ServiceHealthServer.answer(web, 0, proxyHealthy: true).status, .serviceUnavailable)
        let stuck = ServiceHealthServer.answer(web, 3, proxyHealthy: false)
        XCTAssertEqual(stuck.status, .serviceUnavailable, "kube-proxy's rule: endpoints and a healthy proxy")
        XCTAssertTrue(String(decoding: stuck.body, as: UTF8.self).contains("\"serviceProxyHealthy\": false"))
    }

    func testListenersFollowEachSync() async throws {
        let server = ServiceHealthServer(addresses: [IPAddress("127.0.0.1")!], health: ProxyHealth(syncPeriod: .seconds(30)), logger: Logger(label: "test"))
        let port = UInt16.random(in: 20_000..<40_000)
        var problems = await server.sync([web: HealthCheckNodePort(port: port, localEndpoints: 2)])
        XCTAssertEqual(problems, [:])
        var answer = try MetricsServerTests.get("/any/path?x=1", port: port)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), answer)
        XCTAssertTrue(answer.contains("\"localEndpoints\": 2"), answer)
        XCTAssertTrue(answer.contains("X-Content-Type-Options: nosniff"), answer)

        // The count follows the endpoints; the listener stays.
        await server.sync([web: HealthCheckNodePort(port: port, localEndpoints: 0)])
        answer = try MetricsServerTests.get("/", port: port)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 503"), answer)
        XCTAssertTrue(answer.contains("\"localEndpoints\": 0"), answer)

        // A changed port moves the listener; a second Service gets its own.
        problems = await server.sync([web: HealthCheckNodePort(port: port + 1, localEndpoints: 1),
                                      api: HealthCheckNodePort(port: port, localEndpoints: 1)])
        XCTAssertEqual(problems, [:])
        XCTAssertTrue(try MetricsServerTests.get("/", port: port + 1).contains("\"name\": \"web\""))
        XCTAssertTrue(try MetricsServerTests.get("/", port: port).contains("\"name\": \"api\""))
        let ports = await server.ports
        XCTAssertEqual(ports, [web: port + 1, api: port])

        // Gone from the desired state: closed.
        await server.sync([api: HealthCheckNodePort(port: port, localEndpoints: 1)])
        XCTAssertThrowsError(try MetricsServerTests.get("/", port: port + 1))
        await server.sync([:])
        XCTAssertThrowsError(try MetricsServerTests.get("/", port: port))
    }

    func testAPortInUseIsTheServicesProblemAndRetried() async throws {
        let server = ServiceHealthServer(addresses: [IPAddress("127.0.0.1")!], health: ProxyHealth(syncPeriod: .seconds(30)), logger: Logger(label: "test"))
        let port = UInt16.random(in: 20_000..<40_000)
        let other = try await HTTPAnswerHandler.bind(host: "127.0.0.1", port: Int(port)) { _ in
            .now(HTTPAnswer(status: .ok, contentType: "text/plain", body: Array("someone else\n".utf8)))
        }
        var problems = await server.sync([web: HealthCheckNodePort(port: port, localEndpoints: 1),
                                          api: HealthCheckNodePort(port: port + 1, localEndpoints: 1)])
        XCTAssertEqual(problems.keys.sorted(), [web])
        XCTAssertTrue(problems[web]?.contains("Service shop/web on port \(port)") == true, problems[web] ?? "")
        XCTAssertTrue(try MetricsServerTests.get("/", port: port + 1).hasPrefix("HTTP/1.1 200"), "the other Service is served")

        // Freed: the next sync period's retry takes it.
        try await other.close()
        problems = await server.retry()
        XCTAssertEqual(problems, [:])
        XCTAssertTrue(try MetricsServerTests.get("/", port: port).contains("\"name\": \"web\""))

        // Two Services on one port: the one listening keeps it, the other is told which Service holds it.
        problems = await server.sync([web: HealthCheckNodePort(port: port, localEndpoints: 1),
                                      api: HealthCheckNodePort(port: port + 1, localEndpoints: 1),
                                      ObjectName(namespace: "a", name: "copy"): HealthCheckNodePort(port: port, localEndpoints: 1)])
        XCTAssertEqual(problems.count, 1)
        XCTAssertTrue(problems.values.first?.contains("port \(port) is already the healthCheckNodePort of Service shop/web") == true, "\(problems)")

        // A privileged port is never listened on.
        problems = await server.sync([web: HealthCheckNodePort(port: 22, localEndpoints: 1)])
        XCTAssertTrue(problems[web]?.contains("port 22 is below 1024") == true, "\(problems)")
        await server.sync([:])
    }

    /// Without addresses (none given, or none known) it listens on every address, as kube-proxy: IPv4 loopback too.
    func testWithoutAddressesItListensEverywhere() async throws {
        let server = ServiceHealthServer(addresses: [], health: ProxyHealth(syncPeriod: .seconds(30)), logger: Logger(label: "test"))
        let addresses = await server.addresses
        XCTAssertNil(addresses)
        let port = UInt16.random(in: 20_000..<40_000)
        let problems = await server.sync([web: HealthCheckNodePort(port: port, localEndpoints: 1)])
        XCTAssertEqual(problems, [:])
        XCTAssertTrue(try MetricsServerTests.get("/", port: port).hasPrefix("HTTP/1.1 200"))
        await server.sync([:])
    }

    func testAStuckProxyAnswers503() async throws {
        let health = ProxyHealth(syncPeriod: .seconds(30))
        health.updated(.changes) // Started: a change then waits longer than twice the sync period.
        health.queued(.changes, at: .now - .seconds(61))
        let server = ServiceHealthServer(addresses: [IPAddress("127.0.0.1")!], health: health, logger: Logger(label: "test"))
        let port = UInt16.random(in: 20_000..<40_000)
        await server.sync([web: HealthCheckNodePort(port: port, localEndpoints: 1)])
        let answer = try MetricsServerTests.get("/healthz", port: port)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 503"), answer)
        XCTAssertTrue(answer.contains("\"serviceProxyHealthy\": false"), answer)
        await server.sync([:])
    }
}
