import Foundation
import XCTest

/// What the agent owns survives a `kill -9` at any point of a cold start, and one state file has
/// one agent (issue 23, items 2 and 6). Someone else's rule and addresses are there before the
/// agent starts, one of them an address a Service uses too: they must be all that is left after
/// the Services are deleted and `--cleanup` ran.
final class AgentOwnershipTests: XCTestCase {
    /// Services in the two manifest files, so that the early binding and programming take batches.
    static let count = 200
    static func clusterIP(_ index: Int) -> String { AgentTestCluster.manyClusterIP(index) }

    // MARK: - kill -9 during a cold start

    /// VIPs claimed in the state file, none bound yet: the claims are forgotten, not owned.
    func testKilledAfterClaimingVIPsBeforeBindingThem() throws {
        try crash(at: "binding-claimed")
    }

    /// VIPs bound while the manifests load, before any state-file write of their ownership.
    func testKilledWhileBindingVIPsEarly() throws {
        try crash(at: "bound-early")
    }

    /// Virtual services added while the manifests load (the VIPs are bound meanwhile).
    func testKilledWhileProgrammingIPVSEarly() throws {
        try crash(at: "programmed-early")
    }

    /// As above, restarted when the Services were already deleted: nothing desired adopts what
    /// the killed run created, so only the claims tell it is the agent's.
    func testKilledWhileProgrammingIPVSEarlyAndRestartedWithoutTheServices() throws {
        try crash(at: "programmed-early", restartWithoutServices: true)
    }

    /// The first reconcile applied, its state-file write not made.
    func testKilledAfterTheFirstReconcileBeforeItsStateWrite() throws {
        try crash(at: "applied")
    }

    /// The first state-file write made (the daemon at rest).
    func testKilledAfterTheFirstStateWrite() throws {
        try crash(at: nil)
    }

    /// Starts the daemon on `count` Services, kills it with SIGKILL where `point` pauses it (see
    /// `PausePoint`; `nil`: once every VIP is recorded as owned), restarts it with `--once`, deletes
    /// every Service, and runs `--cleanup`: only the foreign rule and addresses may remain.
    func crash(at point: String?, restartWithoutServices: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        try KernelTest.shell("""
            ip link add kube-ipvs0 type dummy && ip link set kube-ipvs0 up && \
            ip addr add 10.200.0.1/32 dev kube-ipvs0 && ip addr add \(Self.clusterIP(0))/32 dev kube-ipvs0 && \
            ipvsadm -A -t 10.200.0.1:80 -s wlc && ipvsadm -a -t 10.200.0.1:80 -r 10.250.9.2:8080 -m
            """)
        let foreignRules = try KernelTest.shell("ipvsadm -Sn")
        let foreignAddresses = try addresses()
        XCTAssertEqual(foreignAddresses, ["10.200.0.1", Self.clusterIP(0)])
        for (name, range) in [("a.yaml", 0..<Self.count / 2), ("b.yaml", Self.count / 2..<Self.count)] {
            try cluster.writeManifest(name, Self.services(range))
        }

        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--metrics-address", "none"], log: log,
                                            environment: point.map { ["IPVS_AGENT_PAUSE_AT": $0] } ?? [:])
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        if let point {
            try waitUntil("the agent pauses at \(point)", timeout: 180) { logText().contains("paused at \(point)") }
        } else {
            // Logged after the first reconcile's state-file write.
            try waitUntil("the first reconcile is recorded", timeout: 180) { logText().contains("applied manifests") }
        }
        XCTAssertEqual(kill(agent.processIdentifier, SIGKILL), 0)
        agent.waitUntilExit()
        let left = try KernelTest.shell("ipvsadm -Sn").split(separator: "\n").filter { $0.hasPrefix("-A ") }.count - 1
        let bound = try addresses().count - foreignAddresses.count
        print("killed at \(point ?? "rest"): \(left) services and \(bound) VIPs of the agent in the kernel")
        if point != "binding-claimed" {
            XCTAssertGreaterThan(left + bound, 0, "the kill came before the agent changed the kernel: nothing tested", file: file, line: line)
        }

        if restartWithoutServices {
            try FileManager.default.removeItem(atPath: cluster.manifests + "/a.yaml")
            try FileManager.default.removeItem(atPath: cluster.manifests + "/b.yaml")
        } else {
            let restart = try cluster.agent(["--manifests", cluster.manifests, "--once"])
            XCTAssertEqual(restart.status, 0, restart.standardError, file: file, line: line)
            let rules = try KernelTest.shell("ipvsadm -Sn")
            XCTAssertEqual(rules.split(separator: "\n").filter { $0.hasPrefix("-A ") }.count, Self.count + 1, rules, file: file, line: line)
            XCTAssertEqual(try addresses().count, Self.count + 1, file: file, line: line)
            // Every Service deleted.
            try FileManager.default.removeItem(atPath: cluster.manifests + "/a.yaml")
            try FileManager.default.removeItem(atPath: cluster.manifests + "/b.yaml")
        }
        let empty = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(empty.status, 0, empty.standardError, file: file, line: line)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), foreignRules, "services left after every Service was deleted", file: file, line: line)
        XCTAssertEqual(try addresses(), foreignAddresses, "VIPs left after every Service was deleted", file: file, line: line)

        let cleanup = try cluster.agent(["--cleanup"])
        XCTAssertEqual(cleanup.status, 0, cleanup.standardError, file: file, line: line)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), foreignRules, file: file, line: line)
        XCTAssertEqual(try addresses(), foreignAddresses, file: file, line: line)
    }

    /// The IPv4 addresses bound on kube-ipvs0.
    func addresses() throws -> Set<String> {
        Set(try KernelTest.shell("ip -o -4 addr show dev kube-ipvs0").split(separator: "\n")
            .compactMap { $0.split(separator: " ").first { $0.hasSuffix("/32") }.map { String($0.dropLast(3)) } })
    }

    /// Services `svc-<index>` of `range`, TCP 80 on their ClusterIP, with two endpoints each (no pod
    /// answers: IPVS takes any unicast real server).
    static func services(_ range: Range<Int>) -> String {
        AgentTestCluster.manyServices(range, endpoints: ["10.250.1.2", "10.250.2.2"])
    }

    // MARK: - One agent per state file

    /// A second agent on the state file of a running one refuses to start, in every mode that
    /// writes the state (exit 2, naming the state file and the running agent's pid) and changes
    /// nothing; `--dry-run` runs beside it. Once the first is gone (even killed), the lock is free.
    func testASecondAgentOnTheSameStateFileRefusesToStart() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        try cluster.writeManifest("web.yaml", Self.services(0..<3))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let first = try cluster.startDaemon(["--manifests", cluster.manifests, "--metrics-address", "none"], log: log)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        try waitUntil("the first agent programs the Services", timeout: 120) {
            (try? String(contentsOf: log, encoding: .utf8))?.contains("applied manifests") == true
        }
        let rules = try KernelTest.shell("ipvsadm -Sn")
        for mode in [["--manifests", cluster.manifests, "--once"], ["--cleanup"], ["--manifests", cluster.manifests]] {
            // A daemon that did start would run on: `timeout` ends it (status 124).
            let second = try KernelTest.run(["timeout", "60", KernelTest.product("ipvs-agent"), "--state-file", cluster.stateFile,
                                             "--metrics-address", "none", "--node-name", "node-1"] + mode)
            XCTAssertEqual(second.status, 2, "\(mode): \(second.standardError)")
            XCTAssertTrue(second.standardError.contains(
                "another ipvs-agent (pid \(first.processIdentifier)) is running on the state file \(cluster.stateFile)"),
                          "\(mode): \(second.standardError)")
        }
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), rules, "a refused agent changed the kernel")
        let dry = try cluster.agent(["--manifests", cluster.manifests, "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.standardError)

        // The lock dies with its process.
        XCTAssertEqual(kill(first.processIdentifier, SIGKILL), 0)
        first.waitUntilExit()
        let cleanup = try cluster.agent(["--cleanup"])
        XCTAssertEqual(cleanup.status, 0, cleanup.standardError)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), "")
    }
}
