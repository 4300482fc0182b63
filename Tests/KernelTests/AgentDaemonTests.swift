import Foundation
import NodeNetwork
import TestSupport
import XCTest

/// `ipvs-agent` as a daemon on the real kernel: file changes applied, drift repaired, removed
/// endpoints drained, metrics served, SIGTERM leaves the kernel's state in place.
final class AgentDaemonTests: XCTestCase {
    func testDaemonAppliesEditsDrainsRepairsDriftAndStopsCleanly() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...3).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: [pods[0], pods[1]]))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "1s", "--drain-timeout", "120s",
                                             "--metrics-address", "127.0.0.1:10249"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        func rows() throws -> [String] { try cluster.table().split(separator: "\n").map(String.init) }
        func weight(_ server: String) throws -> String? {
            try rows().first { $0.contains("-> \(server) ") }?.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
        }

        try waitUntil("the agent programs web", timeout: 60) { try weight("10.250.2.2:8080") == "1" }
        // The first sync ends with the nftables table and the conntrack cleanup after IPVS: the first requests
        // wait for its end (a connection opened before it ended has gone unanswered, rarely; see README).
        try waitUntil("the first sync ends", timeout: 60) { logText().contains("applied manifests") }
        // The starting point, not the claim: both pods answer through the VIP (retried, see TCPClient.answer).
        try waitUntil("both pods answer through the VIP", timeout: 30) {
            Set((0..<4).compactMap { _ in TCPClient.answer("10.96.0.10", 80) }) == ["pod1", "pod2"]
        }

        // Metrics, health and status.
        let metrics = try KernelTest.shell("curl -sf http://127.0.0.1:10249/metrics")
        XCTAssertTrue(metrics.contains("ipvs_agent_operations_applied_total"), metrics)
        XCTAssertTrue(metrics.contains("ipvs_agent_services_programmed 2"), metrics)
        for name in ["ipvs_agent_sync_duration_seconds", "ipvs_agent_errors_total", "ipvs_agent_drift_repaired_total",
                     "ipvs_agent_real_servers_programmed", "ipvs_agent_addresses_programmed", "ipvs_agent_manifest_issues"] {
            XCTAssertTrue(metrics.contains(name), "no \(name) in /metrics:\n\(metrics)")
        }
        XCTAssertTrue(metrics.contains("ipvs_agent_real_servers_programmed 4"), metrics) // 2 pods x (TCP + UDP)
        // The body's shape only (without -f): with --sync-period 1s, kube-proxy's rule answers 503 while a
        // verification waits over 2 s, which a loaded machine's emulated kernel can take (ProxyHealthTests test the rule).
        XCTAssertTrue(try KernelTest.shell("curl -s http://127.0.0.1:10249/healthz").hasPrefix("{\"lastUpdated\": "))
        XCTAssertTrue(try KernelTest.shell("curl -s http://127.0.0.1:10256/livez").contains("\"currentTime\""), "kube-proxy's health port")
        XCTAssertTrue(try KernelTest.shell("curl -sf http://127.0.0.1:10249/status").contains("\"TCP 10.96.0.10:80\""))
        // The nftables table beside IPVS: in /status, as ipvsctl status prints it.
        let summary = try KernelTest.shell("\(KernelTest.product("ipvsctl")) status")
        XCTAssertTrue(summary.contains("nftables table inet ipvs-agent: in step; ") && summary.contains("vips-v4 1"), summary)

        // An edit is applied: a third pod joins.
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods))
        try waitUntil("pod3 is added", timeout: 20) { try weight("10.250.3.2:8080") == "1" }

        // Graceful termination: the endpoint of a long-lived connection goes away.
        let connection = try TCPClient.Connection("10.96.0.10", 80, timeout: 3)
        let owner = try connection.ask()
        let index = Int(owner.dropFirst(3))!
        let server = "10.250.\(index).2:8080"
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods.filter { $0.name != owner }))
        try waitUntil("\(server) is quiesced", timeout: 20) { try weight(server) == "0" }
        XCTAssertNil(try weight("10.250.\(index).2:5353"), "a UDP real server is removed at once")
        XCTAssertEqual(try connection.ask(), owner, "the established connection broke while draining")
        for _ in 0..<6 { XCTAssertNotEqual(try TCPClient.request("10.96.0.10", 80), owner, "a draining endpoint got a new connection") }
        Thread.sleep(forTimeInterval: 3)
        XCTAssertEqual(try weight(server), "0", "deleted while its connection was still open")
        connection.reset()
        try waitUntil("\(server) is deleted once its connection is gone", timeout: 60) { try weight(server) == nil }
        XCTAssertTrue(logText().contains("removed drained endpoint"), logText())

        // Drift: someone deletes the service and the VIP; the next sync repairs both.
        try KernelTest.shell("ipvsadm -D -t 10.96.0.10:80 && ip addr del 10.96.0.10/32 dev kube-ipvs0")
        try waitUntil("the drift is repaired", timeout: 20) {
            try weight("10.250.\(index == 1 ? 2 : 1).2:8080") == "1"
                && (try KernelTest.shell("ip -o addr show dev kube-ipvs0")).contains("10.96.0.10/32")
        }
        XCTAssertTrue(logText().contains("repairing drift"), logText())
        XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }).count, 2)

        // Drift: someone deletes the dummy interface (and so every VIP); the agent creates it again
        // and binds every VIP again, counted as drift.
        func vips() throws -> Set<String> { try cluster.vips() }
        func driftRepaired() throws -> Double { try cluster.metric("ipvs_agent_drift_repaired_total") }
        let boundBefore = try vips()
        XCTAssertTrue(boundBefore.contains("10.96.0.10/32"), "\(boundBefore)")
        let repairedBefore = try driftRepaired()
        try KernelTest.shell("ip link del kube-ipvs0")
        defer { if testRun?.hasSucceeded == false { print(logText()) } }
        try waitUntil("the interface and its VIPs are back", timeout: 20) {
            try !KernelTest.run(["ip", "-o", "link", "show", "dev", "kube-ipvs0", "up"]).standardOutput.isEmpty && (try vips()) == boundBefore
        }
        XCTAssertTrue(logText().contains("create dummy interface kube-ipvs0"), logText())
        XCTAssertGreaterThanOrEqual(try driftRepaired(), repairedBefore + 2, "the interface and a VIP")
        XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request("10.96.0.10", 80) }).count, 2)

        // Drift: someone adds a real server to the agent's service; the next sync takes it out
        // (drained like a removed endpoint: it has no connections, so it goes at once).
        try KernelTest.shell("ipvsadm -a -t 10.96.0.10:80 -r 10.250.9.9:8080 -m -w 1")
        try waitUntil("the added real server is taken out", timeout: 20) { try weight("10.250.9.9:8080") == nil }
        XCTAssertTrue(logText().split(separator: "\n").contains { $0.contains("repairing drift") && $0.contains("10.250.9.9:8080") }, logText())

        // SIGTERM: a clean exit that leaves the kernel as it is (rules and weights; -S has no counters).
        let before = try KernelTest.shell("ipvsadm -Sn")
        agent.terminate()
        agent.waitUntilExit()
        XCTAssertEqual(agent.terminationStatus, 0, logText())
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), before)
        XCTAssertTrue(logText().contains("left in place"), logText())
    }
    /// A VIP taken away behind the agent's back (`ip addr del`, `ip link set down`, `ip link del`)
    /// is bound again within moments, not at the next sync period (an hour here): the agent
    /// watches the interface's rtnetlink notifications. A VIP the agent removed itself (its Service
    /// deleted) stays removed.
    func testDaemonRepairsADeletedVIPWithinASecond() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pod = try cluster.addPod(1)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: [pod], dns: false, extra: """
              clusterIPs: [10.96.0.10, "fd00:96::10"]
              ipFamilies: [IPv4, IPv6]
              ipFamilyPolicy: RequireDualStack
            """))
        try cluster.writeManifest("api.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: api, namespace: default}
            spec:
              clusterIP: 10.96.0.11
              ports:
              - {name: https, protocol: TCP, port: 443, targetPort: 8443}
            """)
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "1h",
                                             "--metrics-address", "127.0.0.1:10249"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        defer { if testRun?.hasSucceeded == false { print(logText()) } }
        let all: Set<String> = ["10.96.0.10/32", "fd00:96::10/128", "10.96.0.11/32"]
        try waitUntil("the agent binds every VIP", timeout: 60) { try cluster.vips() == all }
        // The starting point, not the claim: after the first sync's end (nftables table included), the
        // pod answers through the VIP (retried, see TCPClient.answer and README, "A problem not solved yet").
        try waitUntil("the first sync ends", timeout: 60) { logText().contains("applied manifests") }
        try waitUntil("the pod answers through the VIP", timeout: 30) { TCPClient.answer("10.96.0.10", 80) == "pod1" }

        // The test watches the interface too: the time from the kernel's announcement that a VIP
        // (or the interface) went away to its announcement that the last VIP is back is the
        // agent's reaction, without the cost of starting `ip` on an emulated CPU.
        let monitor = try AddressMonitor(interface: "kube-ipvs0")
        defer { monitor.stop() }
        let events = AddressEventLog(monitor)
        /// Runs `change` and returns the seconds from the first removal it caused to the last VIP bound again.
        func repairTime(_ change: String) throws -> Double {
            let repairedBefore = try cluster.metric("ipvs_agent_drift_repaired_total")
            let mark = events.count
            try KernelTest.shell(change)
            try waitUntil("\(change) is repaired", timeout: 20) {
                try !KernelTest.run(["ip", "-o", "link", "show", "dev", "kube-ipvs0", "up"]).standardOutput.isEmpty
                    && (try cluster.vips()) == all
            }
            let seen = events.timed.dropFirst(mark)
            let removal = try XCTUnwrap(seen.first { entry in
                switch entry.event {
                case .addressRemoved, .interfaceRemoved, .interfaceDown: true
                default: false
                }
            }, "no removal announced: \(seen.map(\.event))")
            let back = try XCTUnwrap(seen.last { if case .addressAdded(let binding) = $0.event { all.contains("\(binding)") } else { false } },
                                     "no VIP announced bound again: \(seen.map(\.event))")
            let (seconds, attoseconds) = (back.time - removal.time).components
            let elapsed = Double(seconds) + Double(attoseconds) / 1e18
            print("\(change): repaired \(String(format: "%.3f", elapsed)) s after the kernel announced it")
            XCTAssertGreaterThan(try cluster.metric("ipvs_agent_drift_repaired_total"), repairedBefore, "counted as drift: \(change)")
            // The VIP carries traffic again (after a link down/up the kernel restores its local route).
            XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod1", change)
            return elapsed
        }
        // Within a second typically; a generous bound on an emulated, shared machine.
        for change in ["ip addr del 10.96.0.10/32 dev kube-ipvs0", "ip addr del fd00:96::10/128 dev kube-ipvs0",
                       "ip link set kube-ipvs0 down", "ip link del kube-ipvs0"] {
            XCTAssertLessThan(try repairTime(change), 3, change)
        }
        for operation in ["bind 10.96.0.10 on kube-ipvs0", "bind fd00:96::10 on kube-ipvs0", "set dummy interface kube-ipvs0 up",
                          "create dummy interface kube-ipvs0"] {
            XCTAssertTrue(logText().contains("operation=\(operation) "), "not logged: \(operation)")
        }

        // The agent's own unbind (Service api deleted) is announced too, and is no drift.
        let logged = logText().count
        try FileManager.default.removeItem(atPath: cluster.folder.appendingPathComponent("manifests/api.yaml").path)
        try waitUntil("the agent unbinds the VIP of the deleted Service", timeout: 20) {
            try cluster.vips() == ["10.96.0.10/32", "fd00:96::10/128"]
        }
        let repairedAfterDelete = try cluster.metric("ipvs_agent_drift_repaired_total")
        Thread.sleep(forTimeInterval: 2)
        XCTAssertEqual(try cluster.vips(), ["10.96.0.10/32", "fd00:96::10/128"])
        XCTAssertEqual(try cluster.metric("ipvs_agent_drift_repaired_total"), repairedAfterDelete)
        XCTAssertFalse(logText().dropFirst(logged).contains("repairing drift"), "the agent's own unbind was repaired")
        XCTAssertTrue(agent.isRunning)
    }
    /// A ConfigMap volume (as the DaemonSet in Examples mounts one) is updated the kubelet's way:
    /// the files in a new timestamped folder, `..data` re-pointed by renaming a new symlink over
    /// it, the old folder removed. The daemon sees that as a change of `..data` alone and must
    /// read the files again.
    func testDaemonAppliesAConfigMapVolumeUpdate() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let volume = cluster.folder.appendingPathComponent("configmap")
        let fm = FileManager.default
        func writeVersion(_ stamp: String, pods: [AgentTestCluster.Pod]) throws {
            let version = "..2026_12_03_\(stamp)"
            try fm.createDirectory(at: volume.appendingPathComponent(version), withIntermediateDirectories: true)
            try AgentTestCluster.webManifest(pods: pods, dns: false)
                .write(to: volume.appendingPathComponent(version).appendingPathComponent("cluster.yaml"), atomically: false, encoding: .utf8)
            let data = volume.appendingPathComponent("..data"), temporary = volume.appendingPathComponent("..data_tmp")
            let previous = try? fm.destinationOfSymbolicLink(atPath: data.path)
            try fm.createSymbolicLink(atPath: temporary.path, withDestinationPath: version)
            XCTAssertEqual(rename(temporary.path, data.path), 0)
            if !fm.fileExists(atPath: volume.appendingPathComponent("cluster.yaml").path) {
                try fm.createSymbolicLink(atPath: volume.appendingPathComponent("cluster.yaml").path, withDestinationPath: "..data/cluster.yaml")
            }
            if let previous { try fm.removeItem(at: volume.appendingPathComponent(previous)) }
        }
        // Endpoints need not answer: the test reads the table, not traffic.
        let pods = (1...2).map { AgentTestCluster.Pod(name: "pod\($0)", namespace: "", address: "10.250.\($0).2") }
        try writeVersion("10_00_00.1", pods: [pods[0]])
        let log = cluster.folder.appendingPathComponent("agent.log")
        // A long sync period: only the watcher can bring the change in time.
        let agent = try cluster.startDaemon(["--manifests", volume.path, "--sync-period", "10m", "--metrics-address", "none"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        try waitUntil("the agent programs web with pod1", timeout: 60) { try cluster.table().contains("-> 10.250.1.2:8080") }
        XCTAssertFalse(try cluster.table().contains("-> 10.250.2.2:8080"))

        try writeVersion("10_05_00.2", pods: pods)
        try waitUntil("the update adds pod2", timeout: 20) { try cluster.table().contains("-> 10.250.2.2:8080") }
        XCTAssertTrue(logText().contains("..data"), logText())
        XCTAssertTrue(agent.isRunning, logText())
    }
    /// Issue 23: two small hostile files (989 bytes of aliases, 200 KB of nested `[`) kept the
    /// daemon decoding for minutes, and no change from any file was applied meanwhile, not even
    /// their removal. Read by the agent itself (its libyaml, not the tests'), each is refused at
    /// a limit, naming file, line and limit, and the other file's changes keep coming through.
    func testHostileManifestsDoNotHoldUpTheOtherFiles() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        // Endpoints need not answer: the test reads the table, not traffic.
        let pods = (1...3).map { AgentTestCluster.Pod(name: "pod\($0)", namespace: "", address: "10.250.\($0).2") }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: [pods[0]], dns: false))
        let log = cluster.folder.appendingPathComponent("agent.log")
        // A long sync period: only the watcher can bring the changes in time.
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "10m", "--metrics-address", "none"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        try waitUntil("the agent programs web with pod1", timeout: 60) { try cluster.table().contains("-> 10.250.1.2:8080") }

        let bomb = try cluster.writeManifest("bomb.yaml", HostileManifests.aliasBomb)
        let deep = try cluster.writeManifest("deep.yaml", HostileManifests.deepBrackets)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: [pods[0], pods[1]], dns: false))
        // Before the limits, decoding deep.yaml alone took 115 s on a host, and longer emulated.
        try waitUntil("pod2 is added beside the hostile files", timeout: 60) { try cluster.table().contains("-> 10.250.2.2:8080") }
        try waitUntil("both files are reported", timeout: 20) {
            logText().contains("\(bomb):7: not read: aliases stand for more than 1,000,000 nodes")
                && logText().contains("\(deep):1: not read: nested deeper than 64 levels (the limit)")
        }

        try FileManager.default.removeItem(atPath: bomb)
        try FileManager.default.removeItem(atPath: deep)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false))
        try waitUntil("pod3 is added once they are gone", timeout: 60) { try cluster.table().contains("-> 10.250.3.2:8080") }
        XCTAssertTrue(agent.isRunning, logText())
    }

    /// SIGHUP ends a process by default; the daemon reloads on it, and must survive one that
    /// comes while it still starts (before the reconcile loop has its handler).
    func testSIGHUPDuringStartUpDoesNotEndTheDaemon() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        // Many services in the kernel make the start (reading the table) long enough to signal into.
        let rules = (0..<3000).map { "-A -t 10.251.\($0 / 250).\($0 % 250 + 1):80 -s rr" }.joined(separator: "\n") + "\n"
        XCTAssertEqual(try KernelTest.run(["ipvsadm", "-R"], input: rules).status, 0)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(
            pods: [AgentTestCluster.Pod(name: "pod1", namespace: "", address: "10.250.1.2")], dns: false))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--log-level", "debug", "--metrics-address", "none"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        // The first line the agent logs comes after it set up signals, before it reads the kernel.
        let deadline = Date().addingTimeInterval(60)
        while agent.isRunning, !logText().contains("NodePort addresses"), Date() < deadline { usleep(1000) }
        var sent = 0
        while agent.isRunning, !logText().contains("loaded manifests"), Date() < deadline {
            kill(agent.processIdentifier, SIGHUP)
            sent += 1
            usleep(2000)
        }
        XCTAssertTrue(agent.isRunning, "ended by SIGHUP (status \(agent.isRunning ? 0 : agent.terminationStatus)): \(logText())")
        XCTAssertGreaterThan(sent, 0, "the start ended before a signal was sent: \(logText())")
        try waitUntil("the agent programs web", timeout: 60) { try cluster.table().contains("-> 10.250.1.2:8080") }
        XCTAssertTrue(agent.isRunning, logText())
    }
}
