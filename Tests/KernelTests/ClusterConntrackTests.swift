import Foundation
import XCTest

/// UDP flows that keep their source port while a Service's endpoints change, with real datagrams on
/// a two-node cluster (`NodeCluster`): they reach the new endpoints within a sync, and the agent
/// deletes the conntrack entries the change left stale. On the VM's 6.1 kernel the flows move even
/// without the agent's deletion (IPVS, with `expire_nodest_conn` and `conntrack` on, drops the entry
/// of a connection to a deleted real server itself); the agent's log shows its deletion ran.
final class ClusterConntrackTests: XCTestCase {
    override func setUp() async throws {
        try KernelTest.requireKernel()
    }

    /// Service dns (NodePort): UDP 53 on ClusterIP 10.96.0.53 and node port 30053, to port 5353 of
    /// `pods` (none: no endpoint).
    static func manifest(_ pods: [String]) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata: {name: dns, namespace: default}
        spec: {type: NodePort, clusterIP: 10.96.0.53, ports: [{name: dns, protocol: UDP, port: 53, targetPort: 5353, nodePort: 30053}]}
        ---
        \(AgentTestCluster.endpointSlice(name: "dns-a", service: "dns",
                                          endpoints: pods.map { "- addresses: [\($0)]\n  conditions: {ready: true}\n  nodeName: node-2" },
                                          ports: ["{name: dns, protocol: UDP, port: 5353}"]))
        """
    }

    /// Two nodes, the agent on node 1, the Service's pods on node 2, and two flows through node 1:
    /// a pod of node 1 to the ClusterIP, and an outside client to the node port (masqueraded).
    struct Setup {
        let cluster: NodeCluster
        let flows: [(name: String, flow: TCPClient.Datagrams)]

        init(pods: [String]) throws {
            cluster = try NodeCluster(nodes: 2)
            let client = try cluster.addPod(node: 1, number: 9)
            let outside = try cluster.addClient(100)
            try cluster.writeManifest("cluster.yaml", ClusterConntrackTests.manifest(pods))
            try cluster.startAgent(node: 1, ClusterTrafficTests.agentFlags + ["--log-level", "debug"])
            let nodeA = cluster.nodes[0].address
            flows = [
                ("pod to ClusterIP", try NodeCluster.inNamespace(client.namespace) { try TCPClient.Datagrams("10.96.0.53", 53, timeout: 0.5) }),
                ("outside client to node port", try NodeCluster.inNamespace(outside) { try TCPClient.Datagrams(nodeA, 30053, timeout: 0.5) }),
            ]
        }

        func close() { for (_, flow) in flows { flow.close() } }

        func report() {
            print("node 1 agent log:\n\(cluster.agentLog(node: 1))")
            print((try? cluster.shell(node: 1, "ipvsadm -Ln; cat /proc/net/nf_conntrack")) ?? "")
        }
    }

    /// Asks through `flow` every 200 ms until `pod` answers or `timeout` seconds pass; returns the
    /// seconds it took and the other answers seen meanwhile.
    static func secondsUntil(_ flow: TCPClient.Datagrams, answers pod: String, timeout: Double) -> (seconds: Double?, others: [String: Int]) {
        let start = Date()
        var others: [String: Int] = [:]
        while Date().timeIntervalSince(start) < timeout {
            let answer = flow.ask() ?? "(no answer)"
            if answer == pod { return (Date().timeIntervalSince(start), others) }
            others[answer, default: 0] += 1
            Thread.sleep(forTimeInterval: 0.2)
        }
        return (nil, others)
    }

    /// A pod replaced behind a UDP Service (the old one still running): each flow keeps its source
    /// port and reaches the new pod within a sync.
    func testAUDPFlowMovesToTheNewPodWhenItsPodIsReplaced() throws {
        let setup = try Setup(pods: ["10.244.2.2"])
        defer { setup.close() }
        let old = try setup.cluster.addPod(node: 2, number: 1), new = try setup.cluster.addPod(node: 2, number: 2)
        do {
            for (name, flow) in setup.flows {
                try waitUntil("the old pod answers the \(name) flow", timeout: 90) { flow.ask() == old.name }
            }
            try setup.cluster.writeManifest("cluster.yaml", Self.manifest([new.address]))
            for (name, flow) in setup.flows {
                let moved = Self.secondsUntil(flow, answers: new.name, timeout: 30)
                let seconds = try XCTUnwrap(moved.seconds, "the \(name) flow never reached the new pod; answers: \(moved.others)")
                print("measured: the \(name) flow reached the new pod \(String(format: "%.2f", seconds)) s later; before: \(moved.others)")
                XCTAssertEqual(flow.ask(), new.name, name)
            }
            // IPVS moves a flow as soon as the old real server is gone (expire_nodest_conn), which can
            // be before the agent has deleted (and logged) the old entries after its reconcile.
            try waitUntil("the deletion of the old pod's ClusterIP entries is logged", timeout: 30) {
                setup.cluster.agentLog(node: 1).contains("--orig-dst 10.96.0.53 --orig-port-dst 53 --reply-src \(old.address)")
            }
            try waitUntil("the deletion of the old pod's node port entries is logged", timeout: 30) {
                setup.cluster.agentLog(node: 1).contains("--orig-dst \(setup.cluster.nodes[0].address) --orig-port-dst 30053 --reply-src \(old.address)")
            }
        } catch {
            setup.report()
            throw error
        }
    }

    /// Datagrams sent while the Service had no endpoint leave entries to the node itself, which the
    /// node port's masquerade never applies to; the first endpoint's arrival deletes them, so the
    /// same flows reach the pod on the other node (and its answers come back through node 1).
    func testAUDPFlowReachesTheFirstEndpointOfAServiceThatHadNone() throws {
        let setup = try Setup(pods: [])
        defer { setup.close() }
        let pod = try setup.cluster.addPod(node: 2, number: 1)
        do {
            try waitUntil("the agent bound the ClusterIP", timeout: 90) {
                (try? setup.cluster.shell(node: 1, "ip -o addr show")).map { $0.contains("10.96.0.53") } ?? false
            }
            for (name, flow) in setup.flows {
                for _ in 0..<3 { XCTAssertNil(flow.ask(), "an answer to the \(name) flow without an endpoint") }
            }
            try setup.cluster.writeManifest("cluster.yaml", Self.manifest([pod.address]))
            for (name, flow) in setup.flows {
                let reached = Self.secondsUntil(flow, answers: pod.name, timeout: 30)
                let seconds = try XCTUnwrap(reached.seconds, "the \(name) flow never reached the first endpoint; answers: \(reached.others)")
                print("measured: the \(name) flow reached the first endpoint \(String(format: "%.2f", seconds)) s later")
                XCTAssertEqual(flow.ask(), pod.name, name)
            }
            let log = setup.cluster.agentLog(node: 1)
            XCTAssertTrue(log.contains("-p udp --orig-dst 10.96.0.53 --orig-port-dst 53"), "no deletion of the ClusterIP's entries logged")
            XCTAssertTrue(log.contains("-p udp --orig-dst \(setup.cluster.nodes[0].address) --orig-port-dst 30053"), "no deletion of the node port's entries logged")
        } catch {
            setup.report()
            throw error
        }
    }
}
