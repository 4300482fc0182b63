import Foundation
import IPVS
import XCTest

/// The agent's health checker on the real kernel: a pod whose server dies is quiesced (weight 0)
/// or deleted within the bound its checks allow, while traffic keeps flowing to the others, and
/// gets its weight back once it answers again; an exec check's dynamic weight is programmed.
final class AgentHealthTests: XCTestCase {
    /// The checks of `AgentTestCluster.tcpChecks`: every 500 ms (jitter 0.1, the default), 300 ms
    /// timeout, rise 2 and fall 2 (the defaults).
    static let interval = 0.5, jitter = 0.1, timeout = 0.3, rise = 2.0, fall = 2.0

    /// How long the kernel may take to follow a verdict: the last of `checks` checks in a row
    /// starts at most `checks` jittered intervals after the change (the first within one), and
    /// finishes within its timeout.
    ///
    /// The margin covers what the product's semantics do not bound on the emulated VM (TCG, CPU
    /// 10-50x slower, other kernel tests on the same vCPUs): the poller thread, the transition
    /// through the agent's reconciler actor to netlink, and this test's 50 ms polling. It stays
    /// below the daemon's `--sync-period` (5 s): a verdict applied only by the next periodic sync,
    /// not at once, would not pass.
    static func bound(checks: Double) -> Double {
        checks * interval * (1 + jitter / 2) + timeout + 3.0
    }

    func testDeadPodIsQuiescedAndRestoredAfterItRecovers() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", Self.manifest(pods))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10251"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let victim = RealServerID(address: IPAddress(pods[1].address)!, port: 8080)
        let weights = try KernelWeights(service: .address(.tcp, IPAddress("10.96.0.10")!, port: 80))

        try waitUntil("the agent programs web", timeout: 60) { weights.weight(of: victim) == 1 }
        // The starting point, not the claim: both pods answer through the VIP. Retried, since on the
        // emulated VM a python pod beside a busy test can take seconds for its first answers.
        try waitUntil("both pods answer through the VIP", timeout: 30) {
            Set((0..<4).compactMap { _ in TCPClient.answer("10.96.0.10", 80) }) == ["pod1", "pod2"]
        }

        // The pod's server dies: fall (2) failed checks later it is quiesced, not removed. Until
        // then rr keeps alternating over both pods, so every pair of requests through the VIP has
        // one for pod1, which must keep being answered (the other is refused by the dead pod).
        pods[1].server?.terminate()
        pods[1].server?.waitUntilExit()
        let killed = Date()
        var pairs = 0
        while weights.weight(of: victim) != 0 {
            let elapsed = Date().timeIntervalSince(killed)
            guard elapsed < Self.bound(checks: Self.fall) else {
                return XCTFail("the dead pod is not quiesced \(String(format: "%.1f", elapsed)) s after it died "
                               + "(bound \(Self.bound(checks: Self.fall)) s):\n\((try? cluster.table()) ?? "")")
            }
            let answers = (0..<2).compactMap { _ in try? TCPClient.request("10.96.0.10", 80, timeout: 1) }
            if weights.weight(of: victim) == 0 { break } // Quiesced between the two requests.
            XCTAssertEqual(answers, ["pod1"], "during detection pod1 must answer its share, and only pod1 can answer")
            pairs += 1
        }
        print("quiesced after \(String(format: "%.2f", Date().timeIntervalSince(killed))) s "
              + "(bound \(Self.bound(checks: Self.fall)) s), \(pairs) pairs of requests served meanwhile")
        XCTAssertNotNil(weights.weight(of: victim), "quiesced, not removed")
        for _ in 0..<4 { XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod1", "a request reached the dead pod") }
        try waitUntil("the agent logs the verdict", timeout: 10) { Self.verdictLine(cluster.log(log), victim: victim, to: "down") != nil }
        let line = Self.verdictLine(cluster.log(log), victim: victim, to: "down") ?? ""
        for field in ["backend=\(victim)", "service=TCP 10.96.0.10:80", "kubernetes_service=default/web:http",
                      "reason=connect: connection refused", "latency_ms=", "weight=0"] {
            XCTAssertTrue(line.contains(field), "the transition log line lacks \(field): \(line)")
        }
        // Metrics per backend: its state, its last check's latency and its transitions.
        let metrics = try KernelTest.shell("curl -sf http://127.0.0.1:10251/metrics")
        let backend = "backend=\"\(victim)\""
        for series in ["ipvs_health_backend_up{", "ipvs_health_check_latency_seconds{", "ipvs_health_backend_transitions_total{"] {
            XCTAssertTrue(metrics.split(separator: "\n").contains { $0.hasPrefix(series) && $0.contains(backend) },
                          "no \(series)…\(backend)} in /metrics:\n\(metrics)")
        }
        XCTAssertTrue(metrics.split(separator: "\n").contains { $0.hasPrefix("ipvs_health_backend_up{") && $0.contains(backend) && Double($0.split(separator: " ").last ?? "") == 0 },
                      "the dead backend is not 0 in ipvs_health_backend_up:\n\(metrics)")
        // /status shows the verdict and since when.
        try waitUntil("/status shows the dead backend", timeout: 10) {
            let status = try KernelTest.shell("curl -sf http://127.0.0.1:10251/status")
            return status.contains("\"backend\" : \"\(victim)\"") && status.contains("\"state\" : \"down\"")
                && status.contains("\"since\" : \"20")
        }

        // It comes back: rise (2) successful checks after it answers, its weight is restored.
        let restarted = try cluster.restartServer(pods[1])
        defer { restarted.terminate() }
        // python starts slowly on an emulated CPU: the bound counts from when it answers.
        try waitUntil("the restarted pod answers", timeout: 180) { (try? TCPClient.request(pods[1].address, 8080, timeout: 1)) == "pod2" }
        let answering = Date()
        try waitUntil("the recovered pod gets its weight back", timeout: Self.bound(checks: Self.rise)) { weights.weight(of: victim) == 1 }
        print("restored \(String(format: "%.2f", Date().timeIntervalSince(answering))) s after the pod answered "
              + "(bound \(Self.bound(checks: Self.rise)) s)")
        XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }), ["pod1", "pod2"])
        XCTAssertNotNil(Self.verdictLine(cluster.log(log), victim: victim, to: "up"), cluster.log(log))
    }

    /// `health-on-failure: remove` deletes the real server at once (no drain: the kernel stops
    /// forwarding its connections too), and the recovered pod is added back with its weight.
    func testRemovedPodIsDeletedAtOnceAndAddedBackWithItsWeight() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(
            pods: pods, dns: false, annotations: AgentTestCluster.tcpChecks.merging(["health-on-failure": "remove"]) { $1 }))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10255"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let victim = RealServerID(address: IPAddress(pods[1].address)!, port: 8080)
        let weights = try KernelWeights(service: .address(.tcp, IPAddress("10.96.0.10")!, port: 80))
        try waitUntil("the agent programs web", timeout: 60) { weights.weight(of: victim) == 1 }
        // Connections to the pod, so a drain (rather than a delete) would keep it for a while; the
        // starting point, not the claim (retried, see TCPClient.answer).
        try waitUntil("both pods answer through the VIP", timeout: 30) {
            Set((0..<4).compactMap { _ in TCPClient.answer("10.96.0.10", 80) }) == ["pod1", "pod2"]
        }
        let held = try TCPClient.Connection("10.96.0.10", 80, timeout: 3)
        defer { held.close() }

        pods[1].server?.terminate()
        pods[1].server?.waitUntilExit()
        let killed = Date()
        var seen: [Int32] = []
        while let weight = weights.weight(of: victim) {
            if weight != seen.last { seen.append(weight) }
            let elapsed = Date().timeIntervalSince(killed)
            guard elapsed < Self.bound(checks: Self.fall) else {
                return XCTFail("the dead pod is still in the kernel \(String(format: "%.1f", elapsed)) s after it died "
                               + "(bound \(Self.bound(checks: Self.fall)) s):\n\((try? cluster.table()) ?? "")")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        print("deleted after \(String(format: "%.2f", Date().timeIntervalSince(killed))) s (bound \(Self.bound(checks: Self.fall)) s)")
        XCTAssertEqual(seen, [1], "deleted at once, not quiesced and drained first")
        for _ in 0..<4 { XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod1") }
        // Past a --sync-period (5 s): the periodic verification must not add it back nor drain it.
        Thread.sleep(forTimeInterval: 6)
        XCTAssertNil(weights.weight(of: victim), "a sync must not bring it back:\n\((try? cluster.table()) ?? "")")

        let restarted = try cluster.restartServer(pods[1])
        defer { restarted.terminate() }
        try waitUntil("the restarted pod answers", timeout: 180) { (try? TCPClient.request(pods[1].address, 8080, timeout: 1)) == "pod2" }
        try waitUntil("the recovered pod is added back", timeout: Self.bound(checks: Self.rise)) { weights.weight(of: victim) != nil }
        XCTAssertEqual(try cluster.weight("\(victim)"), "1", "added back with its configured weight")
        XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }), ["pod1", "pod2"])
    }

    /// An exec check with `health-exec-dynamic-weight: true` sets the weight from its exit status
    /// (2 to 255: weight status - 2, as keepalived's `misc_dynamic`); exit status 0 restores the
    /// configured weight, 1 is a failure. The Service names the check the operator's configuration
    /// allows, and the program runs as the configuration's unprivileged user.
    func testExecDynamicWeightIsProgrammedAndTheConfiguredWeightRestored() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        // The check of each pod exits with the status written in `status-<pod address>`, and records its user.
        let users = cluster.folder.appendingPathComponent("users")
        try FileManager.default.createDirectory(at: users, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        let script = cluster.folder.appendingPathComponent("check.sh")
        // Written aside and renamed: the test never reads a file the check has only begun to write.
        try "id -u > \(users.path)/.$HEALTH_ADDRESS && mv \(users.path)/.$HEALTH_ADDRESS \(users.path)/$HEALTH_ADDRESS\nexit \"$(cat \(cluster.folder.path)/status-$HEALTH_ADDRESS)\"\n"
            .write(to: script, atomically: true, encoding: .utf8)
        func answer(_ pod: AgentTestCluster.Pod, _ status: Int) throws {
            try "\(status)\n".write(to: cluster.folder.appendingPathComponent("status-\(pod.address)"), atomically: true, encoding: .utf8)
        }
        try answer(pods[0], 0)
        try answer(pods[1], 7)
        let configuration = cluster.folder.appendingPathComponent("agent.yaml")
        try """
            apiVersion: ipvs.swift.dev/v1alpha1
            kind: AgentConfiguration
            healthChecks:
              execUser: nobody
              allowed:
                exec:
                  pod-status: [/bin/sh, \(script.path)]
            """.write(to: configuration, atomically: true, encoding: .utf8)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false, annotations: [
            "health-check": "exec", "health-exec": "pod-status", "health-exec-dynamic-weight": "true",
            "health-interval": "500ms", "health-timeout": "5s"]))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--config", configuration.path, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10258"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let weighted = "\(pods[1].address):8080", plain = "\(pods[0].address):8080"

        try waitUntil("exit status 7 gives weight 5", timeout: 60) { try cluster.weight(weighted) == "5" }
        XCTAssertEqual(try cluster.weight(plain), "1", "exit status 0: the configured weight")
        let nobody = try KernelTest.shell("id -u nobody").trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try String(contentsOf: users.appendingPathComponent(pods[1].address), encoding: .utf8), nobody + "\n",
                       "the check runs as the configuration's execUser")
        print(try cluster.table())
        try answer(pods[1], 4)
        try waitUntil("exit status 4 gives weight 2", timeout: 30) { try cluster.weight(weighted) == "2" }
        try answer(pods[1], 0)
        try waitUntil("exit status 0 restores the configured weight", timeout: 30) { try cluster.weight(weighted) == "1" }
        try answer(pods[1], 1)
        try waitUntil("exit status 1 fails the check: quiesced", timeout: 30) { try cluster.weight(weighted) == "0" }
        try answer(pods[1], 12)
        try waitUntil("recovered with the weight it asks for", timeout: 30) { try cluster.weight(weighted) == "10" }
        XCTAssertEqual(try cluster.weight(plain), "1")
    }

    static func manifest(_ pods: [AgentTestCluster.Pod]) -> String {
        AgentTestCluster.webManifest(pods: pods, dns: false, annotations: AgentTestCluster.tcpChecks)
    }

    /// The agent's `applied health verdict` line for `victim` going `to`, if logged.
    static func verdictLine(_ log: String, victim: RealServerID, to: String) -> String? {
        log.split(separator: "\n").last {
            $0.contains("applied health verdict") && $0.contains("backend=\(victim) ") && $0.contains("to=\(to)")
        }.map(String.init)
    }
}

/// The weights of one virtual service's real servers, read over netlink (cheap enough to poll).
struct KernelWeights {
    let service: ServiceKey
    let ipvs: IPVSClient

    init(service: ServiceKey) throws {
        self.service = service
        self.ipvs = try IPVSClient()
    }

    /// `server`'s weight, or `nil` when it (or the service) is not in the kernel.
    func weight(of server: RealServerID) -> Int32? {
        (try? ipvs.realServers(of: service))?.first { $0.id == server }?.weight
    }
}
