import Foundation
import XCTest

/// The agent's mapping beyond an IPv4 ClusterIP, on the real kernel: dual-stack Services,
/// NodePort on the node's address, externalIPs and LoadBalancer ingress addresses carrying
/// traffic, `--strict-arp`, and SIGHUP reloading files that inotify does not see.
final class AgentServiceTypesTests: XCTestCase {
    private static func loadBalancerManifest(pods: [AgentTestCluster.Pod]) -> String {
        let endpoints = pods.map { "- addresses: [\($0.address)]\n  conditions: {ready: true}" }
        return """
            apiVersion: v1
            kind: Service
            metadata: {name: shop, namespace: default}
            spec:
              type: LoadBalancer
              clusterIP: 10.96.0.30
              externalIPs: [10.96.100.1]
              ports:
              - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
            status:
              loadBalancer:
                ingress: [{ip: 10.96.200.1}]
            ---
            \(AgentTestCluster.endpointSlice(name: "shop-1", service: "shop", endpoints: endpoints,
                                              ports: ["{name: http, protocol: TCP, port: 8080}"]))
            """
    }

    func testNodePortExternalAndLoadBalancerAddressesReachEveryPod() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        // The node's own address, where NodePorts listen.
        try KernelTest.shell("ip link add node0 type dummy && ip addr add 10.250.200.1/32 dev node0 && ip link set node0 up")
        try cluster.writeManifest("shop.yaml", Self.loadBalancerManifest(pods: pods))

        let run = try cluster.agent(["--manifests", cluster.manifests, "--once", "--node-ip", "10.250.200.1", "--strict-arp"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let table = try cluster.table()
        for service in ["10.96.0.30:80", "10.96.100.1:80", "10.96.200.1:80", "10.250.200.1:30080"] {
            XCTAssertTrue(table.contains("TCP  \(service) rr"), "no virtual service \(service):\n\(table)")
        }
        // Every address carries traffic to both pods, round robin.
        for (address, port) in [("10.96.0.30", 80), ("10.96.100.1", 80), ("10.96.200.1", 80), ("10.250.200.1", 30080)] {
            var answers: [String: Int] = [:]
            for _ in 0..<4 { answers[try TCPClient.request(address, UInt16(port)), default: 0] += 1 }
            XCTAssertEqual(answers, ["pod1": 2, "pod2": 2], "\(address):\(port)")
        }
        // The VIPs are on the dummy interface; the node's own address is not copied there.
        let addresses = try KernelTest.shell("ip -o addr show dev kube-ipvs0")
        for vip in ["10.96.0.30/32", "10.96.100.1/32", "10.96.200.1/32"] {
            XCTAssertTrue(addresses.contains(vip), "\(vip) missing:\n\(addresses)")
        }
        XCTAssertFalse(addresses.contains("10.250.200.1"), addresses)
        // --strict-arp: the node answers ARP only for addresses of the interface asked on.
        XCTAssertEqual(try KernelTest.shell("cat /proc/sys/net/ipv4/conf/all/arp_ignore").trimmingCharacters(in: .whitespacesAndNewlines), "1")
        XCTAssertEqual(try KernelTest.shell("cat /proc/sys/net/ipv4/conf/all/arp_announce").trimmingCharacters(in: .whitespacesAndNewlines), "2")
    }

    func testSIGHUPReloadsWhatInotifyCannotSee() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        // The manifest folder holds a symbolic link to a file elsewhere: the agent watches the
        // folder, so edits of the target arrive only with SIGHUP (as with some config tools).
        let elsewhere = cluster.folder.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let target = elsewhere.appendingPathComponent("web.yaml")
        func writeTarget(_ text: String) throws {
            let temporary = elsewhere.appendingPathComponent(".web.tmp")
            try text.write(to: temporary, atomically: false, encoding: .utf8)
            guard rename(temporary.path, target.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        }
        try writeTarget(AgentTestCluster.webManifest(pods: pods))
        try FileManager.default.createDirectory(atPath: cluster.manifests, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: cluster.manifests + "/web.yaml", withDestinationPath: target.path)

        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "1h", "--metrics-address", "none"], log: log)
        defer { agent.terminate(); agent.waitUntilExit() }
        try waitUntil("both pods are programmed", timeout: 60) {
            let table = try cluster.table()
            return table.contains("10.250.1.2:8080") && table.contains("10.250.2.2:8080")
        }

        // Pod 2 leaves the target file: not seen yet.
        try writeTarget(AgentTestCluster.webManifest(pods: [pods[0]]))
        Thread.sleep(forTimeInterval: 3)
        XCTAssertTrue(try cluster.table().contains("10.250.2.2:5353"), "the agent saw a change it cannot watch; the test setup is wrong")

        // SIGHUP re-reads every file: pod 2's UDP real server goes at once (TCP drains at weight 0).
        XCTAssertEqual(kill(agent.processIdentifier, SIGHUP), 0)
        try waitUntil("SIGHUP removed pod 2's UDP real server", timeout: 30) {
            !(try cluster.table().contains("10.250.2.2:5353"))
        }
        let table = try cluster.table()
        XCTAssertTrue(table.contains("10.250.1.2:5353"), table)
        XCTAssertTrue(agent.isRunning, "the agent exited on SIGHUP:\n\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }
    func testDualStackServiceCarriesIPv6Traffic() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        let endpoints6 = pods.indices.map { "- addresses: [\"fd00:250:\($0 + 1)::2\"]\n  conditions: {ready: true}" }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(clusterIP: "10.96.0.40", pods: pods, extra: """
              clusterIPs: [10.96.0.40, "fd00:96::40"]
              ipFamilies: [IPv4, IPv6]
              ipFamilyPolicy: RequireDualStack
            """) + "---\n" + AgentTestCluster.endpointSlice(
                name: "web-v6", service: "web", addressType: "IPv6", endpoints: endpoints6,
                ports: ["{name: http, protocol: TCP, port: 8080}", "{name: dns, protocol: UDP, port: 5353}"]))
        let run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let table = try cluster.table()
        XCTAssertTrue(table.contains("TCP  [fd00:96::40]:80 rr"), table)
        XCTAssertTrue(table.contains("[fd00:250:2::2]:8080"), table)
        XCTAssertTrue(table.contains("TCP  10.96.0.40:80 rr"), table)
        XCTAssertTrue(try KernelTest.shell("ip -o -6 addr show dev kube-ipvs0").contains("fd00:96::40/128"))

        // Both pods answer through the IPv6 VIP, over TCP and UDP.
        let client = #"""
            import socket, sys
            kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
            answers = {}
            for _ in range(4):
                s = socket.socket(socket.AF_INET6, kind); s.settimeout(5)
                s.connect(("fd00:96::40", 80 if kind == socket.SOCK_STREAM else 53)); s.send(b"ping")
                answer = s.recv(100).decode().strip(); s.close()
                answers[answer] = answers.get(answer, 0) + 1
            print(" ".join(f"{k}={v}" for k, v in sorted(answers.items())))
            """#
        XCTAssertEqual(try KernelTest.shell("python3 -c '\(client)' tcp").trimmingCharacters(in: .whitespacesAndNewlines), "pod1=2 pod2=2")
        XCTAssertEqual(try KernelTest.shell("python3 -c '\(client)' udp").trimmingCharacters(in: .whitespacesAndNewlines), "pod1=2 pod2=2")
    }
}
