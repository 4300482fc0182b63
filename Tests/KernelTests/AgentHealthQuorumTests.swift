import Foundation
import XCTest

/// A Service's health quorum on the real kernel: below `health-quorum` healthy pods, the agent
/// either serves from the fallback ("sorry") server alone or keeps every pod, and undoes it when
/// the pods recover. `ipvsctl status` shows the same from the live agent's `/status`.
final class AgentHealthQuorumTests: XCTestCase {
    func testFallbackServesWhileTheQuorumIsLostAndPodsComeBack() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        let sorry = try cluster.addPod(3) // The fallback server: not an endpoint of the Service.
        let fallback = "\(sorry.address):8080"
        // The fallback is the operator's: the Service's annotation names it.
        let configuration = cluster.folder.appendingPathComponent("agent.yaml")
        try """
            apiVersion: ipvs.swift.dev/v1alpha1
            kind: AgentConfiguration
            healthChecks:
              allowed:
                fallback: {sorry: "\(fallback)"}
            """.write(to: configuration, atomically: true, encoding: .utf8)
        try cluster.writeManifest("web.yaml", Self.manifest(pods, annotations: [
            "health-quorum": "2", "health-quorum-policy": "fallback", "health-fallback": "sorry"]))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--config", configuration.path, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10252"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let victim = "\(pods[1].address):8080", survivor = "\(pods[0].address):8080"

        try waitUntil("the agent programs web", timeout: 60) { try cluster.weight(victim) == "1" && (try cluster.weight(survivor)) == "1" }
        XCTAssertNil(try cluster.weight(fallback), "no fallback while the quorum holds")
        XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }), ["pod1", "pod2"])

        // One of two pods dies: 1 healthy < quorum 2, so only the fallback gets traffic.
        pods[1].server?.terminate()
        pods[1].server?.waitUntilExit()
        try waitUntil("the fallback takes over", timeout: 90) { try cluster.weight(fallback) == "1" }
        XCTAssertEqual(try cluster.weight(survivor), "0", "the healthy pod is quiesced too:\n\((try? cluster.table()) ?? "")")
        XCTAssertEqual(try cluster.weight(victim), "0")
        for _ in 0..<4 { XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod3", "traffic must go to the fallback") }
        XCTAssertTrue(cluster.log(log).contains("health quorum lost"), cluster.log(log))
        XCTAssertTrue(cluster.log(log).contains("1 of 2 backends healthy, fewer than the quorum of 2"), cluster.log(log))

        // ipvsctl status shows it from the live agent (/status is refreshed every second).
        try waitUntil("ipvsctl status shows the lost quorum", timeout: 20) {
            let result = try KernelTest.run([KernelTest.product("ipvsctl"), "status", "--agent-address", "127.0.0.1:10252"])
            return result.status == 0 && result.standardOutput.contains("quorum 2 (fallback \(fallback)): LOST, 1 of 2 healthy")
        }
        let status = try KernelTest.run([KernelTest.product("ipvsctl"), "status", "--agent-address", "127.0.0.1:10252"])
        print(status.standardOutput)
        let victimLine = status.standardOutput.split(separator: "\n").first { $0.contains(victim) }.map(String.init) ?? ""
        XCTAssertEqual(victimLine.split(separator: " ").prefix(4), ["\(victim)", "0", "tcp", "down"], status.standardOutput)
        XCTAssertTrue(status.standardOutput.contains("(fallback server)"), status.standardOutput)
        let json = try KernelTest.run([KernelTest.product("ipvsctl"), "status", "--agent-address", "127.0.0.1:10252", "--output", "json"])
        XCTAssertEqual(json.status, 0, json.standardError)
        XCTAssertTrue(json.standardOutput.contains("\"lost\": true"), json.standardOutput)
        // An agent that is not there: a clear error and exit status 1.
        let missing = try KernelTest.run([KernelTest.product("ipvsctl"), "status", "--agent-address", "127.0.0.1:10259"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.standardError.contains("cannot reach ipvs-agent at 127.0.0.1:10259"), missing.standardError)

        // The pod comes back: rise (2) checks later the quorum holds again and the pods serve.
        let restarted = try cluster.restartServer(pods[1])
        defer { restarted.terminate() }
        try waitUntil("the pods get their weights back", timeout: 120) {
            try cluster.weight(victim) == "1" && (try cluster.weight(survivor)) == "1"
        }
        XCTAssertNotEqual(try cluster.weight(fallback), "1", "the fallback is quiesced or removed:\n\((try? cluster.table()) ?? "")")
        try waitUntil("traffic reaches the pods again", timeout: 30) {
            Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }) == ["pod1", "pod2"]
        }
        XCTAssertTrue(cluster.log(log).contains("health quorum regained"), cluster.log(log))
    }

    func testKeepAllKeepsEveryPodWhileTheQuorumIsLost() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", Self.manifest(pods, annotations: ["health-quorum": "2", "health-quorum-policy": "keep-all"]))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10253"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let victim = "\(pods[1].address):8080", survivor = "\(pods[0].address):8080"
        try waitUntil("the agent programs web", timeout: 60) { try cluster.weight(victim) == "1" && (try cluster.weight(survivor)) == "1" }

        pods[1].server?.terminate()
        pods[1].server?.waitUntilExit()
        // The checker does find it down (so keep-all, not a missed failure, keeps its weight) ...
        try waitUntil("the agent reports the lost quorum", timeout: 90) {
            let status = try KernelTest.shell("curl -sf http://127.0.0.1:10253/status")
            return status.contains("\"state\" : \"down\"") && status.contains("\"quorumLost\" : true")
        }
        XCTAssertTrue(cluster.log(log).contains("health quorum lost"), cluster.log(log))
        XCTAssertTrue(cluster.log(log).contains("keeping every backend, failed ones at their configured weight"), cluster.log(log))
        // ... and no weight changes, for longer than a quiesce would take (fall 2 x 500 ms).
        let until = Date().addingTimeInterval(8)
        while Date() < until {
            XCTAssertEqual(try cluster.weight(victim), "1", "keep-all must not quiesce:\n\((try? cluster.table()) ?? "")")
            XCTAssertEqual(try cluster.weight(survivor), "1")
            Thread.sleep(forTimeInterval: 0.5)
        }

        let restarted = try cluster.restartServer(pods[1])
        defer { restarted.terminate() }
        try waitUntil("the quorum is regained", timeout: 120) { cluster.log(log).contains("health quorum regained") }
        XCTAssertEqual(try cluster.weight(victim), "1")
        XCTAssertEqual(try cluster.weight(survivor), "1")
    }

    /// Below the quorum, keep-all sets the failed verdicts aside but keeps the weight a serving pod's
    /// exec check asked for: the kernel keeps 5 for it, and 1 (configured) for the failed pod.
    func testKeepAllKeepsTheDynamicWeightOfAServingPod() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        // The check of each pod exits with the status written in `status-<pod address>`.
        let script = cluster.folder.appendingPathComponent("check.sh")
        try "exit \"$(cat \(cluster.folder.path)/status-$HEALTH_ADDRESS)\"\n".write(to: script, atomically: true, encoding: .utf8)
        func answer(_ pod: AgentTestCluster.Pod, _ status: Int) throws {
            try "\(status)\n".write(to: cluster.folder.appendingPathComponent("status-\(pod.address)"), atomically: true, encoding: .utf8)
        }
        try answer(pods[0], 7)
        try answer(pods[1], 0)
        let configuration = cluster.folder.appendingPathComponent("agent.yaml")
        try """
            apiVersion: ipvs.swift.dev/v1alpha1
            kind: AgentConfiguration
            healthChecks:
              allowed:
                exec:
                  pod-status: [/bin/sh, \(script.path)]
            """.write(to: configuration, atomically: true, encoding: .utf8)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false, annotations: [
            "health-check": "exec", "health-exec": "pod-status", "health-exec-dynamic-weight": "true",
            "health-interval": "500ms", "health-timeout": "5s", "health-rise": "2", "health-fall": "2",
            "health-quorum": "2", "health-quorum-policy": "keep-all"]))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--config", configuration.path, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10260"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let weighted = "\(pods[0].address):8080", failing = "\(pods[1].address):8080"
        try waitUntil("exit status 7 gives weight 5", timeout: 60) { try cluster.weight(weighted) == "5" && (try cluster.weight(failing)) == "1" }

        try answer(pods[1], 1)
        try waitUntil("the agent reports the lost quorum", timeout: 60) { cluster.log(log).contains("health quorum lost") }
        // Longer than a quiesce would take (fall 2 x 500 ms): neither weight changes.
        let until = Date().addingTimeInterval(6)
        while Date() < until {
            XCTAssertEqual(try cluster.weight(weighted), "5", "the serving pod keeps its dynamic weight:\n\((try? cluster.table()) ?? "")")
            XCTAssertEqual(try cluster.weight(failing), "1", "keep-all must not quiesce the failed pod")
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// Service `web` on 10.96.0.10:80 with TCP checks every 500 ms and `annotations` (without
    /// their `ipvs.swift.dev/` prefix).
    static func manifest(_ pods: [AgentTestCluster.Pod], annotations: [String: String]) -> String {
        AgentTestCluster.webManifest(pods: pods, dns: false, annotations: AgentTestCluster.tcpChecks.merging(annotations) { $1 })
    }
}

extension AgentTestCluster {
    /// The weight of real server `server` (`address:port`) in `ipvsadm -Ln`, or `nil` when absent.
    func weight(_ server: String) throws -> String? {
        try table().split(separator: "\n").first { $0.contains("-> \(server) ") }?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
    }

    /// Starts `pod`'s server again (after its first one was stopped).
    func restartServer(_ pod: Pod) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", pod.namespace, "python3", folder.appendingPathComponent("pod.py").path, pod.name]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// The agent's log so far.
    func log(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }
}
