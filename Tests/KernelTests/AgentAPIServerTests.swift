import Foundation
import TestSupport
import XCTest

/// `ipvs-agent --kubeconfig` on the real kernel, following the test API server that this test
/// process serves (TLS with a test CA, a bearer token): a Service created, an endpoint scaled, a
/// pod turned not ready and a Service deleted each reach IPVS; the API server stopped keeps the
/// kernel as it is; the agent restarted while the API server is down changes nothing. And this
/// node's Node: its zone picks the zone-hinted endpoints, and its heartbeats write nothing.
final class AgentAPIServerTests: XCTestCase {
    /// What each test starts from: `pods` pods, the test API server (stopped by the caller), its port
    /// and a kubeconfig for it.
    static func start(pods count: Int) throws -> (AgentTestCluster, [AgentTestCluster.Pod], TestAPIServer, Int, URL) {
        let cluster = try AgentTestCluster()
        let pods = try (1...count).map { try cluster.addPod($0) }
        let certificates = try TestCertificates.make()
        let server = TestAPIServer(certificates: certificates, tokens: ["agent-token"])
        let port = try server.start()
        do {
            return (cluster, pods, server, port, try writeKubeconfig(in: cluster, port: port, authority: certificates.authority))
        } catch {
            server.stop()
            throw error
        }
    }

    /// A kubeconfig for the test API server on `port`, with its CA and the token `agent-token`.
    static func writeKubeconfig(in cluster: AgentTestCluster, port: Int, authority: [UInt8]) throws -> URL {
        let kubeconfig = cluster.folder.appendingPathComponent("kubeconfig")
        try TestAPIServer.kubeconfig(port: port, authority: authority, token: "agent-token", name: "test")
            .write(to: kubeconfig, atomically: true, encoding: .utf8)
        return kubeconfig
    }

    /// An EndpointSlice with zone hints (as the EndpointSlice controller writes them for
    /// `trafficDistribution: PreferClose`) and the Node's zone label: only the zone's endpoints are
    /// programmed and get connections; the Node's zone changed, the other zone's are; a heartbeat
    /// (a status update of the Node, every 10 s from a kubelet) applies nothing and writes nothing
    /// to the kernel. `/healthz` reports the source, and answers 503 once the Node is tainted for deletion.
    func testZoneHintsFollowTheNodesZoneAndHeartbeatsWriteNothing() throws {
        try KernelTest.requireKernel()
        let (cluster, pods, server, _, kubeconfig) = try Self.start(pods: 3)
        defer { server.stop() }
        let log = cluster.folder.appendingPathComponent("agent.log")
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        defer { if testRun?.hasSucceeded == false { print(logText()) } }
        func weight(_ pod: AgentTestCluster.Pod) throws -> String? {
            try cluster.table().split(separator: "\n").first { $0.contains("-> \(pod.address):8080 ") }?
                .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
        }
        func answers(_ count: Int = 6) throws -> Set<String> {
            Set(try (0..<count).map { _ in try TCPClient.request("10.96.0.10", 80) })
        }
        func applies() -> Int { logText().components(separatedBy: "applied the API server's objects").count - 1 }
        func nodeEvents() throws -> Int {
            try KernelTest.shell("curl -sf http://127.0.0.1:10249/metrics").split(separator: "\n")
                .filter { $0.hasPrefix("ipvs_agent_api_events_total{") && $0.contains("resource=\"Node\"") && $0.contains("MODIFIED") }
                .compactMap { Int(Double($0.split(separator: " ").last ?? "") ?? -1) }.reduce(0, +)
        }

        server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-a", addresses: ["192.168.0.1"]))
        server.put(TestAPIServer.nodes, APIObjects.node("node-2", zone: "zone-b", addresses: ["192.168.0.2"]))
        server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "10.96.0.10"))
        server.put(TestAPIServer.endpointSlices, APIObjects.slice(
            "web-abcde", service: "web", addresses: pods.map(\.address),
            zones: [pods[0].address: "zone-a", pods[1].address: "zone-b", pods[2].address: "zone-a"]))
        let agent = try cluster.startDaemon(["--kubeconfig", kubeconfig.path, "--sync-period", "1s", "--drain-timeout", "120s",
                                             "--metrics-address", "127.0.0.1:10249"], log: log)
        defer { if agent.isRunning { agent.terminate(); agent.waitUntilExit() } }

        // zone-a: pod1 and pod3 only.
        try waitUntil("the agent programs zone-a's endpoints", timeout: 60) {
            try weight(pods[0]) == "1" && weight(pods[2]) == "1"
        }
        XCTAssertNil(try weight(pods[1]), "zone-b's endpoint is not programmed")
        XCTAssertEqual(try answers(), ["pod1", "pod3"])
        let healthz = try KernelTest.shell("curl -s http://127.0.0.1:10256/healthz")
        XCTAssertTrue(healthz.contains("\"source\": {\"kind\": \"apiserver\""), healthz)
        XCTAssertTrue(healthz.contains("\"Node\": {\"lastList\": \"20"), healthz)
        try waitUntil("every watch is connected", timeout: 20) {
            try KernelTest.shell("curl -s http://127.0.0.1:10256/healthz").components(separatedBy: "\"watchConnected\": true").count - 1 == 3
        }

        // A heartbeat: the Node's status changes, nothing the agent maps.
        let table = try KernelTest.shell("ipvsadm -Sn")
        let operations = try cluster.metric("ipvs_agent_operations_applied_total")
        let applied = applies()
        server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-a", addresses: ["192.168.0.1"],
                                                        heartbeat: "2026-01-01T00:00:10Z"))
        try waitUntil("the heartbeat arrives", timeout: 20) { try nodeEvents() == 1 }
        Thread.sleep(forTimeInterval: 3) // Several --sync-period verifications, and any sync it would have asked for.
        XCTAssertEqual(applies(), applied, "a heartbeat applies nothing")
        XCTAssertEqual(try cluster.metric("ipvs_agent_operations_applied_total"), operations, "a heartbeat writes nothing to the kernel")
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), table)

        // The Node's zone changes: zone-b's endpoint serves, zone-a's drain or go.
        server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-b", addresses: ["192.168.0.1"]))
        try waitUntil("the agent programs zone-b's endpoint", timeout: 30) {
            try weight(pods[1]) == "1" && ["0", nil].contains(weight(pods[0])) && ["0", nil].contains(weight(pods[2]))
        }
        XCTAssertEqual(try answers(), ["pod2"])
        XCTAssertTrue(logText().contains("this node's zone changed"), logText())

        // The cluster autoscaler taints the Node for deletion: /healthz answers 503 (nodeEligible
        // false) so load balancers drain the node, /livez does not look at it, and nothing is written.
        func status(_ path: String) throws -> String {
            try KernelTest.shell("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10256\(path)")
        }
        // Status codes also follow kube-proxy's timing rule, which a loaded machine may break with a 1s
        // sync period: the eligibility is read from the bodies, and only the 503 it forces is awaited.
        XCTAssertTrue(try KernelTest.shell("curl -s http://127.0.0.1:10256/healthz").contains("\"nodeEligible\": true"))
        let zoneB = try KernelTest.shell("ipvsadm -Sn")
        let taintedOperations = try cluster.metric("ipvs_agent_operations_applied_total")
        server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-b", addresses: ["192.168.0.1"]).replacingOccurrences(
            of: "\"spec\":{", with: "\"spec\":{\"taints\":[{\"key\":\"ToBeDeletedByClusterAutoscaler\",\"value\":\"1700000000\",\"effect\":\"NoSchedule\"}],"))
        try waitUntil("/healthz answers 503", timeout: 20) { try status("/healthz") == "503" }
        XCTAssertTrue(try KernelTest.shell("curl -s http://127.0.0.1:10256/healthz").contains("\"nodeEligible\": false"))
        XCTAssertFalse(try KernelTest.shell("curl -s http://127.0.0.1:10256/livez").contains("nodeEligible"), "/livez does not judge the Node")
        XCTAssertEqual(try cluster.metric("ipvs_agent_operations_applied_total"), taintedOperations)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), zoneB)
    }

    func testAgentFollowsTheAPIServerAndKeepsTheKernelWhenItGoesAway() throws {
        try KernelTest.requireKernel()
        let (cluster, pods, server, port, kubeconfig) = try Self.start(pods: 3)
        defer { server.stop() }

        let log = cluster.folder.appendingPathComponent("agent.log")
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        defer { if testRun?.hasSucceeded == false { print(logText()) } }
        func start() throws -> Process {
            try cluster.startDaemon(["--kubeconfig", kubeconfig.path, "--sync-period", "1s", "--drain-timeout", "120s",
                                     "--metrics-address", "none"], log: log)
        }
        func weight(_ server: String) throws -> String? {
            try cluster.table().split(separator: "\n").first { $0.contains("-> \(server) ") }?
                .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
        }
        func slice(_ ready: [AgentTestCluster.Pod], notReady: [AgentTestCluster.Pod] = []) -> String {
            APIObjects.slice("web-abcde", service: "web", addresses: (ready + notReady).map(\.address),
                             notReady: Set(notReady.map(\.address)))
        }

        var agent = try start()
        defer { if agent.isRunning { agent.terminate(); agent.waitUntilExit() } }

        // A Service created.
        server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "10.96.0.10"))
        server.put(TestAPIServer.endpointSlices, slice([pods[0], pods[1]]))
        try waitUntil("the agent programs web", timeout: 60) { try weight("10.250.2.2:8080") == "1" }
        // As in AgentDaemonTests: the first requests wait for the end of the sync that programmed web.
        try waitUntil("the sync ends", timeout: 60) {
            logText().split(separator: "\n").contains { $0.contains("real_servers=2 ") && $0.contains("applied the API server's objects") }
        }
        // The starting point, not the claim: both pods answer through the VIP (retried, see TCPClient.answer).
        try waitUntil("both pods answer through the VIP", timeout: 30) {
            Set((0..<4).compactMap { _ in TCPClient.answer("10.96.0.10", 80) }) == ["pod1", "pod2"]
        }

        // An endpoint scaled: a third pod.
        server.put(TestAPIServer.endpointSlices, slice(pods))
        try waitUntil("pod3 is added", timeout: 20) { try weight("10.250.3.2:8080") == "1" }

        // A pod turned not ready: it gets no new connections (weight 0 while it drains).
        server.put(TestAPIServer.endpointSlices, slice([pods[0], pods[1]], notReady: [pods[2]]))
        try waitUntil("pod3 is quiesced or removed", timeout: 20) { try ["0", nil].contains(weight("10.250.3.2:8080")) }
        for _ in 0..<6 { XCTAssertNotEqual(try TCPClient.request("10.96.0.10", 80), "pod3") }

        // A Service deleted, and another created.
        server.put(TestAPIServer.services, APIObjects.service("shop", clusterIP: "10.96.0.20"))
        server.put(TestAPIServer.endpointSlices, APIObjects.slice("shop-abcde", service: "shop", addresses: [pods[2].address]))
        server.delete(TestAPIServer.services, namespace: "default", name: "web")
        server.delete(TestAPIServer.endpointSlices, namespace: "default", name: "web-abcde")
        try waitUntil("web is removed and shop programmed", timeout: 20) {
            let table = try cluster.table(), shopWeight = try weight("10.250.3.2:8080")
            return !table.contains("10.96.0.10:80") && table.contains("10.96.0.20:80") && shopWeight == "1"
        }
        XCTAssertFalse(try cluster.vips().contains("10.96.0.10/32"))
        XCTAssertEqual(try TCPClient.request("10.96.0.20", 80), "pod3")

        // The API server stops: the kernel stays as it is through reconnections and sync periods.
        let before = try KernelTest.shell("ipvsadm -Sn")
        let vipsBefore = try cluster.vips()
        server.stop()
        try waitUntil("the agent notices", timeout: 30) { logText().contains("the last good state stays in use") }
        Thread.sleep(forTimeInterval: 4) // Several --sync-period verifications.
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), before)
        XCTAssertEqual(try cluster.vips(), vipsBefore)
        XCTAssertEqual(try TCPClient.request("10.96.0.20", 80), "pod3")

        // The agent restarts while the API server is down: it changes nothing.
        agent.terminate()
        agent.waitUntilExit()
        XCTAssertEqual(agent.terminationStatus, 0, logText())
        try Data().write(to: log)
        agent = try start()
        try waitUntil("the new agent fails to list", timeout: 30) { logText().contains("cannot list") }
        Thread.sleep(forTimeInterval: 4)
        XCTAssertTrue(agent.isRunning, logText())
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), before)
        XCTAssertEqual(try cluster.vips(), vipsBefore)

        // The API server is back (with the same objects): the agent lists, and nothing changes
        // either, since nothing changed.
        try server.start(port: port)
        try waitUntil("the agent applies the list", timeout: 60) { logText().contains("applied the API server's objects") }
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), before)
    }
}
