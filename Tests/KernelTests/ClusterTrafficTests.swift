import Foundation
import XCTest

/// The netfilter half of the service proxy on a two-node cluster in one kernel (`NodeCluster`):
/// real packets from outside clients and pods through each node's IPVS and nftables table.
final class ClusterTrafficTests: XCTestCase {
    override func setUp() async throws {
        try KernelTest.requireKernel()
    }

    /// Service web (LoadBalancer: ClusterIP, external IP, load-balancer IP with source ranges, node
    /// port 30080) served by one pod on node 2, and Service self (ClusterIP) served by one pod on node 1.
    static func manifest(web: String, selfPod: String) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          type: LoadBalancer
          clusterIP: 10.96.0.10
          externalIPs: [203.0.113.5]
          loadBalancerSourceRanges: [192.168.77.100/32]
          ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}]
        status: {loadBalancer: {ingress: [{ip: 198.51.100.20}]}}
        ---
        \(AgentTestCluster.endpointSlice(name: "web-a", service: "web",
                                          endpoints: ["- addresses: [\(web)]\n  conditions: {ready: true}\n  nodeName: node-2"],
                                          ports: ["{name: http, protocol: TCP, port: 8080}"]))---
        apiVersion: v1
        kind: Service
        metadata: {name: self, namespace: default}
        spec:
          clusterIP: 10.96.0.20
          ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
        ---
        \(AgentTestCluster.endpointSlice(name: "self-a", service: "self",
                                          endpoints: ["- addresses: [\(selfPod)]\n  conditions: {ready: true}\n  nodeName: node-1"],
                                          ports: ["{name: http, protocol: TCP, port: 8080}"]))
        """
    }

    static let agentFlags = ["--cluster-cidr", "10.244.0.0/16", "--nodeport-addresses", "192.168.77.0/24", "--metrics-address", "none"]

    func testNodePortExternalAndLoadBalancerTrafficHairpinVIPFilterAndSourceRanges() throws {
        let cluster = try NodeCluster(nodes: 2)
        let remote = try cluster.addPod(node: 2, number: 1)
        let local = try cluster.addPod(node: 1, number: 1)
        let allowed = try cluster.addClient(100, routes: ["203.0.113.5/32", "198.51.100.20/32", "10.96.0.0/16"])
        let other = try cluster.addClient(101, routes: ["198.51.100.20/32"])
        try cluster.listen(node: 1, port: 2222, name: "sshd-of-node-1")
        try cluster.writeManifest("cluster.yaml", Self.manifest(web: remote.address, selfPod: local.address))
        for node in 1...2 { try cluster.startAgent(node: node, Self.agentFlags) }
        let nodeA = cluster.nodes[0].address
        do {
            // NodePort, external IP, load-balancer IP and ClusterIP through node 1 reach the pod on
            // node 2, and its answers come back through node 1 (masqueraded on the way there).
            try waitUntil("the NodePort on node 1 answers", timeout: 90) {
                (try? cluster.request(from: allowed, nodeA, 30080)) == remote.name
            }
            XCTAssertEqual(try cluster.request(from: allowed, "203.0.113.5", 80), remote.name)
            XCTAssertEqual(try cluster.request(from: allowed, "198.51.100.20", 80), remote.name)
            XCTAssertEqual(try cluster.request(from: allowed, "10.96.0.10", 80), remote.name)

            // The node's own listener: reachable on its address, not through any VIP.
            XCTAssertEqual(try cluster.request(from: allowed, nodeA, 2222), "sshd-of-node-1")
            for vip in ["10.96.0.10", "203.0.113.5", "198.51.100.20"] {
                XCTAssertThrowsError(try cluster.request(from: allowed, vip, 2222, timeout: 2), "port 2222 reachable on \(vip)")
            }

            // loadBalancerSourceRanges: the other client is dropped at the load-balancer IP only.
            XCTAssertThrowsError(try cluster.request(from: other, "198.51.100.20", 80, timeout: 2))
            XCTAssertEqual(try cluster.request(from: other, nodeA, 30080), remote.name)

            // Hairpin: the pod reaches itself through its Service's ClusterIP.
            XCTAssertEqual(try cluster.request(from: local.namespace, "10.96.0.20", 80), local.name)

            // Without the agent's table (agent stopped, table deleted by hand) the same requests fail:
            // the pod on node 2 answers the client directly, and the VIP takes port 2222.
            cluster.stopAgent(node: 1)
            try cluster.shell(node: 1, "nft delete table inet ipvs-agent")
            XCTAssertThrowsError(try cluster.request(from: allowed, nodeA, 30080, timeout: 2))
            XCTAssertThrowsError(try cluster.request(from: local.namespace, "10.96.0.20", 80, timeout: 2))
            XCTAssertEqual(try cluster.request(from: allowed, "10.96.0.10", 2222), "sshd-of-node-1")
            try cluster.startAgent(node: 1, Self.agentFlags)
            try waitUntil("the NodePort on node 1 answers again", timeout: 90) {
                (try? cluster.request(from: allowed, nodeA, 30080)) == remote.name
            }
        } catch {
            print("node 1 agent log:\n\(cluster.agentLog(node: 1))\nnode 2 agent log:\n\(cluster.agentLog(node: 2))")
            print((try? cluster.shell(node: 1, "nft list ruleset; ipvsadm -Ln")) ?? "")
            throw error
        }
    }

    /// Two ClusterIP Services of node 1's pods, `self` (10.96.0.20) to `selfPod` and, when `shared`
    /// is given, `shared` (10.96.0.30) to that pod.
    static func selfManifest(selfPod: String, shared: String?) -> String {
        var text = """
            apiVersion: v1
            kind: Service
            metadata: {name: self, namespace: default}
            spec: {clusterIP: 10.96.0.20, ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]}
            ---
            \(AgentTestCluster.endpointSlice(name: "self-a", service: "self",
                                              endpoints: ["- addresses: [\(selfPod)]\n  conditions: {ready: true}\n  nodeName: node-1"],
                                              ports: ["{name: http, protocol: TCP, port: 8080}"]))
            """
        if let shared {
            text += """
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: shared, namespace: default}
                spec: {clusterIP: 10.96.0.30, ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]}
                ---
                \(AgentTestCluster.endpointSlice(name: "shared-a", service: "shared",
                                                  endpoints: ["- addresses: [\(shared)]\n  conditions: {ready: true}\n  nodeName: node-1"],
                                                  ports: ["{name: http, protocol: TCP, port: 8080}"]))
                """
        }
        return text
    }

    /// The running agent changes only the elements of the Services a load changed: a pod replaced
    /// behind one Service gets its hairpin, an element two Services hold stays until both let it
    /// go, and the table is written whole only once (at start).
    func testLoadsWhileRunningChangeOnlyTheChangedServicesElements() throws {
        let cluster = try NodeCluster(nodes: 1)
        let first = try cluster.addPod(node: 1, number: 1), second = try cluster.addPod(node: 1, number: 2)
        try cluster.writeManifest("cluster.yaml", Self.selfManifest(selfPod: first.address, shared: first.address))
        try cluster.startAgent(node: 1, Self.agentFlags + ["--sync-period", "1h"])
        func table() throws -> String { try cluster.shell(node: 1, "nft list table inet ipvs-agent") }
        let firstHairpin = "\(first.address) . tcp . 8080 . \(first.address)", secondHairpin = "\(second.address) . tcp . 8080 . \(second.address)"
        do {
            try waitUntil("the first pod reaches itself through self", timeout: 90) {
                (try? cluster.request(from: first.namespace, "10.96.0.20", 80)) == first.name
            }
            // self moves to the second pod: its hairpin comes; the first pod's stays, held by shared.
            try cluster.writeManifest("cluster.yaml", Self.selfManifest(selfPod: second.address, shared: first.address))
            try waitUntil("the second pod reaches itself through self", timeout: 60) {
                (try? cluster.request(from: second.namespace, "10.96.0.20", 80)) == second.name
            }
            XCTAssertEqual(try cluster.request(from: first.namespace, "10.96.0.30", 80), first.name)
            var listing = try table()
            XCTAssertTrue(listing.contains(firstHairpin) && listing.contains(secondHairpin), listing)
            // shared goes: its VIP and the first pod's hairpin go with it.
            try cluster.writeManifest("cluster.yaml", Self.selfManifest(selfPod: second.address, shared: nil))
            try waitUntil("shared's elements are deleted", timeout: 60) { !(try table()).contains("10.96.0.30") }
            listing = try table()
            XCTAssertFalse(listing.contains(firstHairpin), listing)
            XCTAssertTrue(listing.contains(secondHairpin), listing)
            XCTAssertEqual(try cluster.request(from: second.namespace, "10.96.0.20", 80), second.name)
            let log = cluster.agentLog(node: 1)
            XCTAssertEqual(log.components(separatedBy: "nftables table written").count - 1, 1, log)
        } catch {
            print("node 1 agent log:\n\(cluster.agentLog(node: 1))")
            print((try? cluster.shell(node: 1, "nft list ruleset; ipvsadm -Ln")) ?? "")
            throw error
        }
    }

    /// Service local-web (LoadBalancer, `externalTrafficPolicy: Local`, node port 30090,
    /// healthCheckNodePort 30256) on port 8081 of `pod` on node 1, or without endpoints.
    static func localManifest(pod: String?) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata: {name: local-web, namespace: default}
        spec:
          type: LoadBalancer
          clusterIP: 10.96.0.40
          externalTrafficPolicy: Local
          healthCheckNodePort: 30256
          ports: [{name: http, protocol: TCP, port: 80, targetPort: 8081, nodePort: 30090}]
        ---
        \(AgentTestCluster.endpointSlice(name: "local-web-a", service: "local-web",
                                          endpoints: pod.map { ["- addresses: [\($0)]\n  conditions: {ready: true}\n  nodeName: node-1"] } ?? [],
                                          ports: ["{name: http, protocol: TCP, port: 8081}"]))
        """
    }

    /// kube-proxy's `Local` semantics from outside: each node's healthCheckNodePort tells the load
    /// balancer whether it has a ready local pod (200 and `localEndpoints: 1` on node 1, 503 on node
    /// 2), the NodePort on node 1 keeps the client's address, node 2 does not serve it, and node 1
    /// answers 503 once its pod is gone.
    func testLocalTrafficPolicyHealthCheckNodePortAndClientAddress() throws {
        let cluster = try NodeCluster(nodes: 2)
        let pod = try cluster.addPod(node: 1, number: 1)
        try cluster.listenForPeers(pod: pod, port: 8081)
        let client = try cluster.addClient(100)
        try cluster.writeManifest("cluster.yaml", Self.localManifest(pod: pod.address))
        for node in 1...2 { try cluster.startAgent(node: node, Self.agentFlags) }
        let nodeA = cluster.nodes[0].address, nodeB = cluster.nodes[1].address
        do {
            try waitUntil("node 1's healthCheckNodePort answers 200", timeout: 90) {
                (try? cluster.httpGet(from: client, nodeA, 30256))?.hasPrefix("HTTP/1.1 200") == true
            }
            let healthy = try cluster.httpGet(from: client, nodeA, 30256)
            for part in ["\"localEndpoints\": 1", "\"namespace\": \"default\"", "\"name\": \"local-web\"", "\"serviceProxyHealthy\": true",
                         "Content-Type: application/json", "X-Content-Type-Options: nosniff"] {
                XCTAssertTrue(healthy.contains(part), "\(part) missing from node 1's answer:\n\(healthy)")
            }
            try waitUntil("node 2's healthCheckNodePort answers 503", timeout: 90) {
                (try? cluster.httpGet(from: client, nodeB, 30256))?.hasPrefix("HTTP/1.1 503") == true
            }
            XCTAssertTrue(try cluster.httpGet(from: client, nodeB, 30256, path: "/").contains("\"localEndpoints\": 0"))

            // The pod sees the client's own address through node 1's NodePort; node 2 has no local
            // endpoint, so it serves nobody (no real server, no masquerade to node 1's pod).
            XCTAssertEqual(try cluster.request(from: client, nodeA, 30090), "192.168.77.100")
            XCTAssertThrowsError(try cluster.request(from: client, nodeB, 30090, timeout: 2), "node 2 served a Local Service without local endpoints")

            // The pod goes (and leaves its EndpointSlice): node 1 now tells the load balancer to stay away.
            try cluster.removePod(pod)
            try cluster.writeManifest("cluster.yaml", Self.localManifest(pod: nil))
            try waitUntil("node 1's healthCheckNodePort answers 503", timeout: 60) {
                (try? cluster.httpGet(from: client, nodeA, 30256))?.hasPrefix("HTTP/1.1 503") == true
            }
            XCTAssertTrue(try cluster.httpGet(from: client, nodeA, 30256).contains("\"localEndpoints\": 0"))
        } catch {
            print("node 1 agent log:\n\(cluster.agentLog(node: 1))\nnode 2 agent log:\n\(cluster.agentLog(node: 2))")
            print((try? cluster.shell(node: 1, "nft list ruleset; ipvsadm -Ln")) ?? "")
            throw error
        }
    }

    func testCleanupDeletesTheAgentsTableAndNothingElse() throws {
        let cluster = try NodeCluster(nodes: 1)
        try cluster.writeManifest("cluster.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080}]}
            """)
        try cluster.shell(node: 1, "nft add table ip foreign && nft add chain ip foreign input \"{ type filter hook input priority 0; }\" && nft add rule ip foreign input tcp dport 22 accept")
        let iptables = (try? KernelTest.run(["sh", "-c", "command -v iptables"]).status) == 0
        if iptables { try cluster.shell(node: 1, "iptables -A INPUT -p tcp --dport 2222 -j ACCEPT") }
        let node = cluster.nodes[0].namespace
        let once = try KernelTest.run(["ip", "netns", "exec", node, KernelTest.product("ipvs-agent")] + cluster.agentArguments(node: 1) + Self.agentFlags + ["--once"])
        XCTAssertEqual(once.status, 0, once.standardError)
        XCTAssertTrue(try cluster.shell(node: 1, "nft list table inet ipvs-agent").contains("10.96.0.10 . tcp . 80"))

        let cleanup = try KernelTest.run(["ip", "netns", "exec", node, KernelTest.product("ipvs-agent"), "--cleanup",
                                          "--state-file", cluster.agentArguments(node: 1)[5]])
        XCTAssertEqual(cleanup.status, 0, cleanup.standardError)
        let tables = try cluster.shell(node: 1, "nft list tables")
        XCTAssertFalse(tables.contains("ipvs-agent"), tables)
        XCTAssertTrue(tables.contains("table ip foreign"), tables)
        XCTAssertTrue(try cluster.shell(node: 1, "nft list table ip foreign").contains("tcp dport 22 accept"))
        if iptables { XCTAssertTrue(try cluster.shell(node: 1, "iptables -S INPUT").contains("--dport 2222 -j ACCEPT")) }
    }
}
