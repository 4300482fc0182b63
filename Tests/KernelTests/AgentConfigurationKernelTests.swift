import Foundation
import XCTest

/// The agent's configuration file (`--config`) on the real kernel: it health-checks a Service
/// that has no annotations, SIGHUP applies a changed file, and a file with errors is refused
/// (at start before anything changes; on SIGHUP keeping the configuration in use).
final class AgentConfigurationKernelTests: XCTestCase {
    private static func configuration(web: String) -> String {
        """
        apiVersion: ipvs.swift.dev/v1alpha1
        kind: AgentConfiguration
        healthChecks:
          default: {check: none}
          services:
            default/web: \(web)
        """
    }

    func testTheFileChecksAServiceWithoutAnnotationsAndSIGHUPAppliesItsChanges() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        // No health annotations on the Service: only the file asks for a check.
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false))
        let file = cluster.folder.appendingPathComponent("agent.yaml")
        try Self.configuration(web: "{check: tcp, interval: 500ms, timeout: 300ms}").write(to: file, atomically: true, encoding: .utf8)
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--config", file.path, "--health-check", "none",
                                             "--sync-period", "5s", "--metrics-address", "none"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        func weight(_ server: String) throws -> String? {
            try cluster.table().split(separator: "\n").first { $0.contains("-> \(server) ") }?
                .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
        }
        let victim = "\(pods[1].address):8080"
        try waitUntil("the agent programs web", timeout: 60) { try weight(victim) == "1" }

        // The file's TCP check finds the dead pod and quiesces it.
        pods[1].server?.terminate()
        pods[1].server?.waitUntilExit()
        try waitUntil("the file's check quiesces the dead pod", timeout: 60) { try weight(victim) == "0" }
        XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod1")

        // A file with errors is refused on SIGHUP: the check stays, the agent runs on.
        try Self.configuration(web: "{check: tcp, interval: fast}").write(to: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(kill(agent.processIdentifier, SIGHUP), 0)
        try waitUntil("the agent refuses the bad file", timeout: 30) {
            logText().contains("configuration file not reloaded")
        }
        XCTAssertTrue(logText().contains("agent.yaml:6: healthChecks.services[default/web].interval: \"fast\" is not a duration"), logText())
        XCTAssertTrue(agent.isRunning)
        XCTAssertEqual(try weight(victim), "0", "the check in use stays")

        // The check turned off in the file: SIGHUP maps web again without it, and the (still dead)
        // pod gets its configured weight back, as it would without the agent's checks.
        try Self.configuration(web: "{check: none}").write(to: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(kill(agent.processIdentifier, SIGHUP), 0)
        try waitUntil("the reloaded file turns the check off", timeout: 60) { try weight(victim) == "1" }
        XCTAssertTrue(logText().contains("configuration file reloaded"), logText())
    }

    func testAFileWithErrorsStopsTheAgentBeforeItChangesAnything() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try [cluster.addPod(1)]
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false))
        let file = cluster.folder.appendingPathComponent("agent.yaml")
        try Self.configuration(web: "{check: http, rise: 0, pth: /healthz}").write(to: file, atomically: true, encoding: .utf8)
        let before = try cluster.table()
        let run = try cluster.agent(["--manifests", cluster.manifests, "--config", file.path, "--once"])
        XCTAssertEqual(run.status, 2, run.standardError)
        XCTAssertTrue(run.standardError.contains("agent.yaml:6: healthChecks.services[default/web].pth: is not a health check setting"),
                      run.standardError)
        XCTAssertTrue(run.standardError.contains("the configuration file has errors; nothing was changed"), run.standardError)
        XCTAssertEqual(try cluster.table(), before, "IPVS changed")
        XCTAssertFalse(try KernelTest.shell("ip -o addr show").contains("10.96.0.10"), "a VIP was bound")
    }

    /// A Service's owner cannot make the agent run a program or send the Service's traffic to a server of
    /// their choosing: such annotations are reported, naming the annotation, and nothing runs or is added.
    func testAnnotationsCannotRunAProgramOrChooseAFallbackTheOperatorDidNotAllow() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        let outsider = try cluster.addPod(3)
        let marker = cluster.folder.appendingPathComponent("ran")
        let script = cluster.folder.appendingPathComponent("evil.sh")
        try "touch \(marker.path)\n".write(to: script, atomically: true, encoding: .utf8)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false, annotations: [
            "health-check": "exec", "health-exec": "/bin/sh \(script.path)", "health-interval": "200ms"]))
        try cluster.writeManifest("api.yaml", AgentTestCluster.webManifest(clusterIP: "10.96.0.11", pods: pods, dns: false, annotations: [
            "health-check": "tcp", "health-interval": "200ms", "health-quorum": "3",
            "health-fallback": "\(outsider.address):8080"]).replacingOccurrences(of: "name: web", with: "name: api")
            .replacingOccurrences(of: "kubernetes.io/service-name: web", with: "kubernetes.io/service-name: api")
            .replacingOccurrences(of: "name: web-abc12", with: "name: api-abc12"))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "5s", "--metrics-address", "none"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        try waitUntil("both Services are programmed", timeout: 60) {
            try cluster.weight("\(pods[1].address):8080") == "1" && (try cluster.table()).contains("10.96.0.11:80")
        }
        try waitUntil("both refusals are reported", timeout: 30) {
            logText().contains("metadata.annotations[ipvs.swift.dev/health-exec]: \"/bin/sh \(script.path)\" is not an exec check this node allows")
                && logText().contains("metadata.annotations[ipvs.swift.dev/health-fallback]: \"\(outsider.address):8080\" is not a fallback server this node allows")
        }
        // Ten check intervals later nothing has run, and the outsider never received the Service's traffic.
        Thread.sleep(forTimeInterval: 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "a program named by an annotation ran")
        let table = try cluster.table()
        XCTAssertFalse(table.contains("\(outsider.address):8080"), table)
        XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.11", 80) }), ["pod1", "pod2"])
    }
}
