import Foundation
import HealthCheck
import IPVS
import Logging
import NIOPosix
import Prometheus
import ServiceLifecycle
import TestSupport
import XCTest
@testable import IPVSAgent

/// `/healthz` and `/livez` by kube-proxy's rule: unhealthy only while a change waits longer than twice
/// the sync period, never because the kernel refuses one Service (a liveness probe would restart the
/// agent in a loop).
final class ProxyHealthTests: XCTestCase {
    func testUnhealthyOnlyWhileWorkWaitsLongerThanTwiceTheSyncPeriod() {
        let health = ProxyHealth(syncPeriod: .seconds(30))
        let start = ContinuousClock.now
        XCTAssertTrue(health.isHealthy(at: start + .seconds(3600)), "healthy while starting, with nothing queued")
        health.updated(.changes) // The first load is applied: the rule applies from now on.
        health.queued(.changes, at: start)
        health.queued(.changes, at: start + .seconds(50)) // A later change keeps the oldest time.
        XCTAssertTrue(health.isHealthy(at: start + .seconds(59)))
        XCTAssertFalse(health.isHealthy(at: start + .seconds(60)))
        health.queued(.verification, at: start + .seconds(59))
        health.updated(.changes)
        XCTAssertTrue(health.isHealthy(at: start + .seconds(100)), "each kind of work is tracked apart")
        XCTAssertFalse(health.isHealthy(at: start + .seconds(119)))
        health.updated(.verification)
        XCTAssertTrue(health.isHealthy(at: start + .seconds(3600)))
    }

    /// As kube-proxy's proxier, the agent is healthy while it starts, until its first load is applied,
    /// whatever waits meanwhile: a first list the API server refuses in part (an EndpointSlice list
    /// forbidden while the Service list came through and queued a change), or a first programming of
    /// many Services, must not make a liveness probe restart it in a loop. A verification ending
    /// before the first load (the API server's loop verifies on its own schedule) does not end the start.
    func testHealthyWhileStartingUntilTheFirstLoadIsApplied() {
        let health = ProxyHealth(syncPeriod: .seconds(30))
        let start = ContinuousClock.now
        health.queued(.changes, at: start)
        XCTAssertTrue(health.isHealthy(at: start + .seconds(3600)), "a change queued before the first load is applied")
        health.queued(.verification, at: start + .seconds(30))
        health.updated(.verification)
        XCTAssertTrue(health.isHealthy(at: start + .seconds(3600)), "a verification is not the first load")
        health.updated(.changes)
        health.queued(.changes, at: start + .seconds(100))
        XCTAssertTrue(health.isHealthy(at: start + .seconds(159)))
        XCTAssertFalse(health.isHealthy(at: start + .seconds(160)), "after the first load, kube-proxy's rule")
    }

    /// With the API server, `/healthz` reports the source beside kube-proxy's fields: each resource's
    /// last list, whether its watch is connected and since when; the source never changes the status.
    func testHealthzReportsTheAPISource() throws {
        let health = ProxyHealth(syncPeriod: .seconds(30))
        XCTAssertFalse(health.answer().body.contains("source"), "no source member without a reporting source")
        let status = APISourceStatus()
        status.follow(["Service", "Node"])
        let service = APIResource(kind: "Service", apiVersion: "v1", path: "/api/v1/services")
        let listed = Date(timeIntervalSince1970: 1_800_000_000), connected = listed.addingTimeInterval(1)
        status.record(service, .listed(objects: 3), at: listed)
        status.record(service, .watchConnected, at: connected)
        let eligible = Flag(true)
        health.reportSource({ status.json() }, nodeEligible: { eligible.value })
        let (healthy, body) = health.answer()
        XCTAssertTrue(healthy)
        XCTAssertTrue(body.contains("\"nodeEligible\": true"), body)
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], body)
        XCTAssertNotNil(root["lastUpdated"])
        let source = try XCTUnwrap(root["source"] as? [String: Any], body)
        XCTAssertEqual(source["kind"] as? String, "apiserver")
        let resources = try XCTUnwrap(source["resources"] as? [String: [String: Any]], body)
        XCTAssertEqual(resources["Service"]?["lastList"] as? String, "2027-01-15T08:00:00.000Z")
        XCTAssertEqual(resources["Service"]?["watchConnected"] as? Bool, true)
        XCTAssertEqual(resources["Service"]?["since"] as? String, "2027-01-15T08:00:01.000Z")
        XCTAssertTrue(resources["Node"]?["lastList"] is NSNull, "never listed: null")
        XCTAssertEqual(resources["Node"]?["watchConnected"] as? Bool, false)
        status.record(service, .watchEnded, at: connected.addingTimeInterval(5))
        let ended = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(health.answer().body.utf8)) as? [String: Any])
        let endedService = (ended["source"] as? [String: Any])?["resources"] as? [String: [String: Any]]
        XCTAssertEqual(endedService?["Service"]?["watchConnected"] as? Bool, false)
        XCTAssertEqual(endedService?["Service"]?["since"] as? String, "2027-01-15T08:00:06.000Z")

        // A Node being deleted or tainted ToBeDeletedByClusterAutoscaler: /healthz answers 503 (a load
        // balancer drains the node), /livez 200 (the agent keeps up: no restart), as kube-proxy's.
        eligible.value = false
        let (ineligible, ineligibleBody) = health.answer(.healthz)
        XCTAssertFalse(ineligible)
        XCTAssertTrue(ineligibleBody.contains("\"nodeEligible\": false"), ineligibleBody)
        let (live, liveBody) = health.answer(.livez)
        XCTAssertTrue(live)
        XCTAssertFalse(liveBody.contains("nodeEligible") || liveBody.contains("source"), liveBody)
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var current: Bool
        init(_ value: Bool) { current = value }
        var value: Bool {
            get { lock.withLock { current } }
            set { lock.withLock { current = newValue } }
        }
    }

    /// The daemon's reconcile loop over a kernel that refuses one Service's endpoint: the loop retries it
    /// every second (each verification fails), and `/healthz` and `/livez` stay 200 throughout. Before,
    /// `/healthz` answered 503 from the first failed verification on, for as long as the Service stayed.
    func testALivenessProbeStaysHealthyWhileTheKernelRefusesOneService() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("proxy-health-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: broken, namespace: default}
            spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 80, targetPort: 8080}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: broken-a, namespace: default, labels: {kubernetes.io/service-name: broken}}
            addressType: IPv4
            endpoints: [{addresses: [10.244.0.66]}]
            ports: [{name: http, port: 8080}]
            """.write(to: folder.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)

        let refused = ip("10.244.0.66")
        let ipvs = FakeIPVS()
        ipvs.failing = { operation in
            if case .addRealServer(let server, _) = operation, server.address == refused { return IPVSError(kind: .invalidArgument, operation: operation.description, errno: 22) }
            return nil
        }
        let attempts = Attempts()
        ipvs.beforeApply = { operations in
            for case .addRealServer(let server, _) in operations where server.address == refused { attempts.add() }
        }
        let logger = Logger(label: "test")
        let reconciler = Reconciler(ipvs: ipvs, vips: FakeVIPs(), store: nil, options: .init(), logger: logger)
        try await reconciler.start()
        // A short health timeout (4 s) beside the loop's 30 s sync period: the refused endpoint is retried every
        // second, so a pass that failed and did not count would show as a 503 within the test.
        let proxyHealth = ProxyHealth(syncPeriod: .seconds(2))
        let checker = HealthChecker(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let loop = ReconcileLoop(paths: [folder.path], reconciler: reconciler, mapping: MappingOptions(), syncPeriod: .seconds(30),
                                 health: HealthLink(checker: checker), configuration: nil, logger: logger, proxyHealth: proxyHealth)
        let port = Int.random(in: 20_000..<40_000)
        let server = try MetricsServer(address: "127.0.0.1:\(port)", registry: PrometheusCollectorRegistry(), status: StatusBox(),
                                       endpoints: .health, health: proxyHealth, logger: logger)
        let group = ServiceGroup(services: [loop, server], logger: logger)
        let running = Task { try await group.run() }
        defer { running.cancel() }

        // The first reconcile and six verifications (over more than the health timeout) tried the endpoint, and
        // the kernel refused it each time.
        for _ in 0..<1200 where attempts.count < 7 { try await Task.sleep(for: .milliseconds(100)) }
        XCTAssertGreaterThanOrEqual(attempts.count, 7, "the loop did not retry the refused endpoint")
        let wantsRetry = await reconciler.wantsVerification
        XCTAssertTrue(wantsRetry, "the refused operation is to be retried: what made /healthz 503 before")
        for path in ["/healthz", "/livez"] {
            let answer = try MetricsServerTests.get(path, port: UInt16(port))
            XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), "\(path): \(answer)")
            XCTAssertTrue(answer.contains("\"currentTime\""), answer)
        }
        await group.triggerGracefulShutdown()
    }
}

/// A count the fake kernel's callback raises while the test reads it.
private final class Attempts: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add() { lock.withLock { value += 1 } }
    var count: Int { lock.withLock { value } }
}
