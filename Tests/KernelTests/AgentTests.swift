import Foundation
import XCTest

/// `ipvs-agent` against the real kernel: pods are network namespaces behind veth pairs, the test's
/// own namespace is the node. Each test runs in its own fresh namespace (Scripts/run-kernel-tests.sh).
final class AgentTests: XCTestCase {
    // MARK: - --once, traffic, ownership

    func testOnceSendsTrafficToEveryReadyPodAndLeavesForeignRulesAlone() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...3).map { try cluster.addPod($0) }
        // Someone else's rule and address, before the agent runs.
        try KernelTest.shell("ip link add kube-ipvs0 type dummy && ip addr add 10.200.0.1/32 dev kube-ipvs0 && ipvsadm -A -t 10.200.0.1:80 -s wlc && ipvsadm -a -t 10.200.0.1:80 -r 10.250.1.2:8080 -m")
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: [pods[0], pods[1]], notReady: [pods[2]]))
        try cluster.writeManifest("empty.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: nobody}
            spec: {clusterIP: 10.96.0.20, ports: [{port: 80}]}
            """)

        // A dry run prints ipvsadm -S lines and changes nothing.
        let before = try cluster.table()
        let dry = try cluster.agent(["--manifests", cluster.manifests, "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.standardError)
        XCTAssertTrue(dry.standardOutput.contains("-A -t 10.96.0.10:80 -s rr"), dry.standardOutput)
        XCTAssertTrue(dry.standardOutput.contains("-a -u 10.96.0.10:53 -r 10.250.2.2:5353 -m -w 1"), dry.standardOutput)
        XCTAssertTrue(dry.standardOutput.contains("# ip address add 10.96.0.10/32 dev kube-ipvs0"), dry.standardOutput)
        XCTAssertEqual(try cluster.table(), before)

        let run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let table = try cluster.table()
        XCTAssertTrue(table.contains("TCP  10.96.0.10:80 rr"), table)
        XCTAssertTrue(table.contains("10.250.1.2:8080"), table)
        XCTAssertFalse(table.contains("10.250.3.2"), "a pod that is not ready got traffic:\n\(table)")

        // Traffic through the ClusterIP reaches every ready pod, over TCP and UDP.
        var tcpAnswers: [String: Int] = [:], udpAnswers: [String: Int] = [:]
        for _ in 0..<8 {
            tcpAnswers[try TCPClient.request("10.96.0.10", 80), default: 0] += 1
            udpAnswers[try TCPClient.udpRequest("10.96.0.10", 53), default: 0] += 1
        }
        XCTAssertEqual(tcpAnswers, ["pod1": 4, "pod2": 4])
        XCTAssertEqual(Set(udpAnswers.keys), ["pod1", "pod2"])

        // A Service without endpoints refuses at once instead of hanging.
        let start = Date()
        XCTAssertThrowsError(try TCPClient.request("10.96.0.20", 80, timeout: 5)) { error in
            XCTAssertTrue("\(error)".contains("Connection refused"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)

        // The foreign rule and address are untouched, by reconciling and by --cleanup.
        XCTAssertTrue(table.contains("TCP  10.200.0.1:80 wlc"), table)
        let cleanup = try cluster.agent(["--cleanup"])
        XCTAssertEqual(cleanup.status, 0, cleanup.standardError)
        let after = try cluster.table()
        XCTAssertTrue(after.contains("TCP  10.200.0.1:80 wlc"), after)
        XCTAssertFalse(after.contains("10.96.0"), after)
        let addresses = try KernelTest.shell("ip -o addr show dev kube-ipvs0")
        XCTAssertTrue(addresses.contains("10.200.0.1/32"), addresses)
        XCTAssertFalse(addresses.contains("10.96.0."), addresses)
    }

    /// A hundred Services, whose VIPs the agent binds on a thread of its own while it decodes the
    /// manifests and then programs IPVS: every VIP, service and real server must still be there,
    /// and traffic through them must reach the pods.
    func testOnceWithAHundredServicesBindsEveryVIPAndProgramsEveryService() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        let count = 100
        let clusterIP = AgentTestCluster.manyClusterIP
        let text = AgentTestCluster.manyServices(0..<count, endpoints: pods.map(\.address))
        try cluster.writeManifest("many.yaml", text)

        let run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let saved = try KernelTest.shell("ipvsadm -Sn").split(separator: "\n")
        XCTAssertEqual(saved.filter { $0.hasPrefix("-A ") }.count, count)
        XCTAssertEqual(saved.filter { $0.hasPrefix("-a ") }.count, count * pods.count)
        let bound = Set(try KernelTest.shell("ip -o -4 addr show dev kube-ipvs0").split(separator: "\n")
            .compactMap { $0.split(separator: " ").first { $0.hasSuffix("/32") }.map { String($0.dropLast(3)) } })
        XCTAssertEqual(bound, Set((0..<count).map(clusterIP)))
        for index in [0, count / 2, count - 1] {
            XCTAssertEqual(Set(try (0..<4).map { _ in try TCPClient.request(clusterIP(index), 80) }), ["pod1", "pod2"], clusterIP(index))
        }

        let cleanup = try cluster.agent(["--cleanup"])
        XCTAssertEqual(cleanup.status, 0, cleanup.standardError)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), "")
        // The interface the agent created goes too (the kernel gave it an IPv6 link-local address).
        XCTAssertTrue(cleanup.standardError.contains("deleted dummy interface"), cleanup.standardError)
        XCTAssertEqual(try KernelTest.shell("ip -o link show dev kube-ipvs0 2>/dev/null || true"), "")
    }

    /// A first start binds each Service's VIPs and programs its virtual services as soon as its
    /// file is decoded, before it knows every file. A second Service object of the same name in
    /// another file (a-copy.yaml, read first but created later, so it loses: `ClaimPrecedence`)
    /// had its address bound and its virtual service added by then: the reconcile removes both,
    /// and the object that keeps the name is the one bound and programmed.
    func testOnceUndoesWhatItBoundAndProgrammedEarlyForAServiceObjectThatLost() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pod = try cluster.addPod(1)
        let service = { (clusterIP: String, created: String, slice: String) in
            """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default, creationTimestamp: "\(created)"}
            spec: {clusterIP: \(clusterIP), ports: [{name: http, port: 80, targetPort: 8080}]}
            ---
            \(AgentTestCluster.endpointSlice(name: slice, service: "web", endpoints: ["- addresses: [\(pod.address)]\n  conditions: {ready: true}"],
                                           ports: ["{name: http, protocol: TCP, port: 8080}"]))
            """
        }
        try cluster.writeManifest("a-copy.yaml", service("10.96.7.1", "2026-02-01T00:00:00Z", "web-copy"))
        try cluster.writeManifest("b-web.yaml", service("10.96.7.2", "2026-01-01T00:00:00Z", "web-a"))

        let run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 1, run.standardError)
        XCTAssertTrue(run.standardError.contains("a-copy.yaml:1: document 1 (Service default/web): metadata.name: Service default/web is also defined at "),
                      run.standardError)
        XCTAssertTrue(run.standardError.contains("removing an address bound early that no Service uses"), run.standardError)
        // Both files' virtual services were added before the reconcile (a service and its real
        // server each), and the reconcile deleted the one of the object that lost.
        let early = run.standardError.split(separator: "\n").first { $0.contains("programmed while the objects loaded") }
        XCTAssertTrue(early?.contains("operations=4") == true, run.standardError)
        let addresses = try KernelTest.shell("ip -o -4 addr show dev kube-ipvs0")
        XCTAssertTrue(addresses.contains("10.96.7.2/32"), addresses)
        XCTAssertFalse(addresses.contains("10.96.7.1/"), addresses)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn").split(separator: "\n"),
                       ["-A -t 10.96.7.2:80 -s rr", "-a -t 10.96.7.2:80 -r \(pod.address):8080 -m -w 1"])
        XCTAssertEqual(try TCPClient.request("10.96.7.2", 80), "pod1")
        // What it bound and kept is recorded as its own: --cleanup removes it.
        XCTAssertEqual(try cluster.agent(["--cleanup"]).status, 0)
        XCTAssertEqual(try KernelTest.shell("ip -o -4 addr show dev kube-ipvs0 2>/dev/null || true"), "")
    }

    // MARK: - Restart safety

    func testRestartKeepsEstablishedConnectionsAndChangesNothing() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods))
        XCTAssertEqual(try cluster.agent(["--manifests", cluster.manifests, "--once"]).status, 0)
        let connection = try TCPClient.Connection("10.96.0.10", 80, timeout: 3)
        defer { connection.close() }
        let first = try connection.ask()
        // A ready endpoint left at weight 0 (as by a crash in the middle of a drain) is restored.
        try KernelTest.shell("ipvsadm -e -t 10.96.0.10:80 -r 10.250.2.2:8080 -m -w 0")
        let table = try cluster.table()

        let again = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(again.status, 0, again.standardError)
        XCTAssertTrue(again.standardError.contains("operations=1"), again.standardError)
        XCTAssertEqual(try cluster.table(), table.replacingOccurrences(of: "Masq    0      1", with: "Masq    1      1"))
        XCTAssertEqual(try connection.ask(), first, "the established connection moved or broke")

        // A third start with nothing to do applies nothing.
        let third = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertTrue(third.standardError.contains("operations=0"), third.standardError)
        XCTAssertEqual(try connection.ask(), first)
    }

    // MARK: - Bad input

    func testBadInputExitsNonZeroNamingFileAndFieldAndAppliesTheRest() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let good = """
            apiVersion: v1
            kind: Service
            metadata: {name: good}
            spec: {clusterIP: 10.96.0.30, ports: [{port: 80, targetPort: 8080}]}
            """
        let cases: [(String, String, [String])] = [
            ("malformed.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n", ["malformed.yaml:", "not valid YAML"]),
            ("unknown.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.31, portz: []}\n",
             ["unknown.yaml:4", "Service default/a", "spec.portz", "unknown field"]),
            ("address.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {clusterIP: 10.96.0.999, ports: [{port: 80}]}\n",
             ["address.yaml", "spec.clusterIP", "not an IPv4 or IPv6 address"]),
            ("port.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {clusterIP: 10.96.0.32, ports: [{port: 70000}]}\n",
             ["port.yaml", "spec.ports[0].port", "must be 1..65535, got 70000"]),
            ("protocol.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: d}\nspec: {clusterIP: 10.96.0.33, ports: [{port: 80, protocol: ICMP}]}\n",
             ["protocol.yaml", "spec.ports[0].protocol", "must be TCP, UDP or SCTP"]),
            ("duplicate.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: e}\nspec: {clusterIP: 10.96.0.34, ports: [{name: a, port: 80}, {name: b, port: 80}]}\n",
             ["duplicate.yaml", "spec.ports[1]", "duplicate port 80/TCP"]),
            ("scheduler.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: f, annotations: {ipvs.swift.dev/scheduler: fastest}}\nspec: {clusterIP: 10.96.0.35, ports: [{port: 80}]}\n",
             ["scheduler.yaml", "Service default/f", "ipvs.swift.dev/scheduler", "unknown scheduler"]),
        ]
        for (name, text, expected) in cases {
            try? FileManager.default.removeItem(atPath: cluster.manifests)
            try cluster.writeManifest("good.yaml", good)
            try cluster.writeManifest(name, text)
            let run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
            XCTAssertEqual(run.status, 1, "\(name): \(run.standardError)")
            for part in expected {
                XCTAssertTrue(run.standardError.contains(part), "\(name): stderr lacks «\(part)»:\n\(run.standardError)")
            }
            XCTAssertTrue(try cluster.table().contains("TCP  10.96.0.30:80"), "\(name): the good Service was not applied")
        }
        // A manifest path that does not exist.
        let missing = try cluster.agent(["--manifests", cluster.folder.appendingPathComponent("nope.yaml").path, "--once"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.standardError.contains("nope.yaml: no such file or folder"), missing.standardError)
    }
    // MARK: - The example

    /// `Examples/cluster.yaml`, as the README suggests trying it: the kernel takes every Service
    /// it declares (UDP and SCTP ones, persistence, per-Service schedulers with their flags), and
    /// `--cleanup` removes them all.
    func testOnceProgramsTheExampleCluster() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/cluster.yaml").path
        let dry = try cluster.agent(["--manifests", example, "--node-ip", "10.0.0.4", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.standardError)
        let run = try cluster.agent(["--manifests", example, "--node-ip", "10.0.0.4", "--once"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let rules = try KernelTest.shell("ipvsadm -Sn")
        let services = rules.split(separator: "\n").filter { $0.hasPrefix("-A ") }.map(String.init)
        // The dry run printed each service as ipvsadm -S saves it once programmed (issue 18: it
        // printed -b before -p and -o).
        let planned = dry.standardOutput.split(separator: "\n").filter { $0.hasPrefix("-A ") }.map(String.init)
        XCTAssertEqual(planned.sorted(), services.sorted(), dry.standardOutput)
        func service(_ frontend: String) -> String? { services.first { $0.contains(" \(frontend) ") } }
        XCTAssertEqual(service("-u 10.96.0.10:53"), "-A -u 10.96.0.10:53 -s rr", rules)
        XCTAssertEqual(service("-t 10.96.0.10:53"), "-A -t 10.96.0.10:53 -s rr", rules)
        // Session affinity (30 minutes) with Maglev hashing and its two flags, per annotation.
        XCTAssertEqual(service("-t 10.96.10.2:9000"), "-A -t 10.96.10.2:9000 -s mh -p 1800 -b mh-fallback,mh-port", rules)
        // SCTP with source hashing and its two flags.
        XCTAssertEqual(service("--sctp-service 10.96.20.1:3868"), "-A --sctp-service 10.96.20.1:3868 -s sh -b sh-fallback,sh-port", rules)
        XCTAssertNotNil(service("-t [fd00:96::a01]:80"), rules)
        XCTAssertNotNil(service("-t 10.0.0.4:30080"), rules)
        XCTAssertNotNil(service("-t 10.100.0.30:443"), rules)
        XCTAssertTrue(rules.contains("-a --sctp-service 10.96.20.1:3868 -r 10.244.2.62:3868 -m -w 1"), rules)
        XCTAssertTrue(rules.contains("-a -t 10.96.10.2:9000 -r 10.244.1.31:9090 -m -w 1"), rules)
        XCTAssertEqual(services.count, 12, rules)

        let cleanup = try cluster.agent(["--cleanup"])
        XCTAssertEqual(cleanup.status, 0, cleanup.standardError)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), "")
    }

    /// A state file that cannot be read stops --cleanup before it changes anything (exit 2), saying
    /// what to do, instead of guessing what the agent owns.
    func testCleanupWithAnUnreadableStateFileExitsTwoAndChangesNothing() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        try KernelTest.shell("ip link add kube-ipvs0 type dummy && ipvsadm -A -t 10.96.0.10:80 -s rr")
        try "{not json".write(toFile: cluster.stateFile, atomically: true, encoding: .utf8)
        let cleanup = try cluster.agent(["--cleanup"])
        XCTAssertEqual(cleanup.status, 2, cleanup.standardError)
        XCTAssertTrue(cleanup.standardError.contains("is not valid"), cleanup.standardError)
        XCTAssertTrue(cleanup.standardError.contains("move it away"), cleanup.standardError)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), "-A -t 10.96.0.10:80 -s rr\n")
    }
}
