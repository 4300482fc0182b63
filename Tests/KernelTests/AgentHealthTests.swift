import Foundation
import XCTest

/// The agent's health checker on the real kernel: a pod whose server dies is quiesced (weight 0)
/// while traffic keeps flowing to the others, and gets its weight back once it answers again.
final class AgentHealthTests: XCTestCase {
    func testDeadPodIsQuiescedAndRestoredAfterItRecovers() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", Self.manifest(pods))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10251"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        func weight(_ server: String) throws -> String? {
            try cluster.table().split(separator: "\n").first { $0.contains("-> \(server) ") }?
                .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
        }
        let victim = "\(pods[1].address):8080"

        try waitUntil("the agent programs web", timeout: 60) { try weight(victim) == "1" }
        XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }), ["pod1", "pod2"])

        // The pod's server dies: fall (2) failed checks later it is quiesced, not removed.
        pods[1].server?.terminate()
        pods[1].server?.waitUntilExit()
        let killed = Date()
        try waitUntil("the dead pod is quiesced", timeout: 60) { try weight(victim) == "0" }
        print("detection and reweight took \(String(format: "%.1f", Date().timeIntervalSince(killed))) s (bound 2 x 500 ms + 300 ms; emulated CPU)")
        for _ in 0..<4 { XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod1", "a request reached the dead pod") }
        XCTAssertTrue(logText().contains("applied health verdict"), logText())
        // /status shows the verdict and since when (refreshed every second).
        try waitUntil("/status shows the dead backend", timeout: 10) {
            let status = try KernelTest.shell("curl -sf http://127.0.0.1:10251/status")
            return status.contains("\"backend\" : \"\(victim)\"") && status.contains("\"state\" : \"down\"")
                && status.contains("\"since\" : \"20")
        }

        // It comes back: rise (2) successful checks later its weight is restored.
        let restarted = Process()
        restarted.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        restarted.arguments = ["ip", "netns", "exec", pods[1].namespace, "python3",
                               cluster.folder.appendingPathComponent("pod.py").path, pods[1].name]
        restarted.standardOutput = FileHandle.nullDevice
        try restarted.run()
        defer { restarted.terminate() }
        try waitUntil("the recovered pod gets its weight back", timeout: 90) { try weight(victim) == "1" }
        try waitUntil("traffic reaches the recovered pod again", timeout: 30) {
            Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }) == ["pod1", "pod2"]
        }
    }

    static func manifest(_ pods: [AgentTestCluster.Pod]) -> String {
        AgentTestCluster.webManifest(pods: pods, dns: false, annotations: AgentTestCluster.tcpChecks)
    }
}
