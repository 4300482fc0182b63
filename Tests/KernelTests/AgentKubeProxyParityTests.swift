import Foundation
import XCTest

/// The agent's mapping checked on the real kernel against what kube-proxy's IPVS mode programs for
/// the same objects (issue 21): each test names the kube-proxy test case or rule it comes from
/// (kubernetes/kubernetes `pkg/proxy/ipvs/proxier.go` and `proxier_test.go`).
final class AgentKubeProxyParityTests: XCTestCase {
    /// The virtual services of `ipvsadm -Sn` (`10.96.0.10:80`, `[fd00::1]:80`) with the rest of their line.
    private func virtualServices() throws -> [String: String] {
        var services: [String: String] = [:]
        for line in try KernelTest.shell("ipvsadm -Sn").split(separator: "\n") where line.hasPrefix("-A -t ") {
            let words = line.split(separator: " ")
            services[String(words[2])] = String(line)
        }
        return services
    }

    /// The addresses bound on `interface`, as `ip` prints them (`10.96.0.10/32`).
    private func addresses(on interface: String) throws -> Set<String> {
        let lines = try KernelTest.shell("ip -o addr show dev \(interface) scope global").split(separator: "\n")
        return Set(lines.compactMap { line in line.split(separator: " ").firstIndex(where: { $0 == "inet" || $0 == "inet6" })
            .map { String(line.split(separator: " ")[$0 + 1]) } })
    }

    /// Who answers `count` TCP requests to `address` (IPv4 or IPv6) and `port`: `pod1=2 pod2=2`.
    private func answers(_ address: String, _ port: Int, count: Int = 4) throws -> String {
        let client = #"""
            import socket, sys
            address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
            answers = {}
            for _ in range(count):
                s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM); s.settimeout(5)
                s.connect((address, port)); s.send(b"ping")
                answer = s.recv(100).decode().strip(); s.close()
                answers[answer] = answers.get(answer, 0) + 1
            print(" ".join(f"{k}={v}" for k, v in sorted(answers.items())))
            """#
        return try KernelTest.shell("python3 -c '\(client)' \(address) \(port) \(count)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Service `name` (TCP `http` 80 -> 8080) of type `type`; `spec` lines are added to its spec.
    private static func service(_ name: String, type: String, spec: String, annotations: String = "") -> String {
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: \(name)
          namespace: default
        \(annotations)
        spec:
          type: \(type)
        \(spec)
          ports:
          - {name: http, protocol: TCP, port: 80, targetPort: http}

        """
    }

    private static let httpPort = ["{name: http, protocol: TCP, port: 8080}"]

    // kube-proxy's TestNodePortIPv4 ("1 service with node port, has 2 endpoints": node IPs
    // 100.101.102.103 and 2001:db8::1:1, a NodePort only on the IPv4 one), TestNodePortIPv6 and
    // TestExternalIPs (an IPv6 external IP of an IPv4 Service gets nothing): kube-proxy runs one
    // proxier per family, and each skips what is not in its family. Also the first address of an
    // endpoint only (pkg/proxy/endpointslicecache.go uses endpoint.Addresses[0]), and mh's flag
    // (syncProxyRules sets FlagSourceHash, IP_VS_SVC_F_SCHED_MH_PORT, when the scheduler is mh).
    func testFrontendsOnlyInTheServiceFamiliesWithMixedFamilyNodeAddresses() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        // The node's own addresses, one per family, where NodePorts listen.
        try KernelTest.shell("""
            ip link add node0 type dummy && ip link set node0 up && \
            ip addr add 10.250.200.1/32 dev node0 && ip addr add fd00:200::1/128 dev node0 nodad
            """)
        func slices(_ service: String) -> String {
            // One endpoint with both pods' addresses: the first is the endpoint, the second is ignored.
            AgentTestCluster.endpointSlice(name: "\(service)-v4", service: service,
                                           endpoints: ["- addresses: [\(pods[0].address), \(pods[1].address)]\n  conditions: {ready: true}"],
                                           ports: Self.httpPort)
                + "---\n" + AgentTestCluster.endpointSlice(name: "\(service)-v6", service: service, addressType: "IPv6",
                                                           endpoints: ["- addresses: [\"fd00:250:2::2\"]\n  conditions: {ready: true}"],
                                                           ports: Self.httpPort)
        }
        let manifest = [
            Self.service("v4", type: "LoadBalancer", spec: """
                  clusterIP: 10.96.0.31
                  externalIPs: [10.96.101.1, "fd00:101::1"]
                """, annotations: "  annotations: {ipvs.swift.dev/scheduler: mh}")
                .replacingOccurrences(of: "targetPort: http}", with: "targetPort: http, nodePort: 30081}")
                + "status: {loadBalancer: {ingress: [{ip: 10.96.201.1}, {ip: \"fd00:201::1\"}]}}\n---\n" + slices("v4"),
            Self.service("v6", type: "LoadBalancer", spec: """
                  clusterIP: "fd00:96::32"
                  clusterIPs: ["fd00:96::32"]
                  ipFamilies: [IPv6]
                  externalIPs: [10.96.101.2, "fd00:101::2"]
                """)
                .replacingOccurrences(of: "targetPort: http}", with: "targetPort: http, nodePort: 30082}")
                + "status: {loadBalancer: {ingress: [{ip: 10.96.201.2}, {ip: \"fd00:201::2\"}]}}\n---\n" + slices("v6"),
            Self.service("dual", type: "LoadBalancer", spec: """
                  clusterIP: 10.96.0.33
                  clusterIPs: [10.96.0.33, "fd00:96::33"]
                  ipFamilies: [IPv4, IPv6]
                  ipFamilyPolicy: RequireDualStack
                  externalIPs: [10.96.101.3, "fd00:101::3"]
                """)
                .replacingOccurrences(of: "targetPort: http}", with: "targetPort: http, nodePort: 30083}")
                + "status: {loadBalancer: {ingress: [{ip: 10.96.201.3}, {ip: \"fd00:201::3\"}]}}\n---\n" + slices("dual"),
        ].joined(separator: "---\n")
        try cluster.writeManifest("families.yaml", manifest)

        let run = try cluster.agent(["--manifests", cluster.manifests, "--once", "--node-ip", "10.250.200.1", "--node-ip", "fd00:200::1"])
        // The wrong-family external IPs are the tenant's own input: reported (exit status 1), left out.
        XCTAssertEqual(run.status, 1, run.standardError)
        XCTAssertTrue(run.standardError.contains("spec.externalIPs[1]: fd00:101::1 is IPv6 but the Service has no IPv6 ClusterIP"), run.standardError)
        XCTAssertTrue(run.standardError.contains("spec.externalIPs[0]: 10.96.101.2 is IPv4 but the Service has no IPv4 ClusterIP"), run.standardError)

        let services = try virtualServices()
        XCTAssertEqual(Set(services.keys), [
            "10.96.0.31:80", "10.96.101.1:80", "10.96.201.1:80", "10.250.200.1:30081",
            "[fd00:96::32]:80", "[fd00:101::2]:80", "[fd00:201::2]:80", "[fd00:200::1]:30082",
            "10.96.0.33:80", "10.96.101.3:80", "10.96.201.3:80", "10.250.200.1:30083",
            "[fd00:96::33]:80", "[fd00:101::3]:80", "[fd00:201::3]:80", "[fd00:200::1]:30083",
        ])
        XCTAssertEqual(try addresses(on: "kube-ipvs0"), [
            "10.96.0.31/32", "10.96.101.1/32", "10.96.201.1/32",
            "fd00:96::32/128", "fd00:101::2/128", "fd00:201::2/128",
            "10.96.0.33/32", "10.96.101.3/32", "10.96.201.3/32", "fd00:96::33/128", "fd00:101::3/128", "fd00:201::3/128",
        ])
        // mh without flags: mh-port, as kube-proxy sets it.
        XCTAssertTrue(services["10.96.0.31:80"]?.hasSuffix("-s mh -b mh-port") == true, "\(services["10.96.0.31:80"] ?? "missing")")
        XCTAssertTrue(services["10.96.0.33:80"]?.hasSuffix("-s rr") == true, "\(services["10.96.0.33:80"] ?? "missing")")

        // Real packets: the IPv4 NodePort of the IPv4 Service reaches the endpoint's first address
        // only; the IPv6 NodePort and IPv6 external IP of the IPv6 Service reach its IPv6 endpoint.
        XCTAssertEqual(try answers("10.250.200.1", 30081), "pod1=4")
        XCTAssertEqual(try answers("10.96.101.1", 80), "pod1=4")
        XCTAssertEqual(try answers("fd00:200::1", 30082), "pod2=4")
        XCTAssertEqual(try answers("fd00:101::2", 80), "pod2=4")
        XCTAssertEqual(try answers("fd00:200::1", 30083), "pod2=4")
    }

    // kube-proxy's syncProxyRules: "We must not add the address to the dummy device if it exist on
    // another interface" (nodeAddressSet from GetAllLocalAddressesExcept, kubernetes issue 114815):
    // an external or load-balancer IP that is the node's own is served, never bound. And an address
    // the agent bound before the node got it is taken off the dummy interface without taking it
    // away from the node.
    func testTheNodesOwnAddressIsServedButNeverBound() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try KernelTest.shell("""
            ip link add node0 type dummy && ip link set node0 up && \
            ip addr add 10.250.200.1/24 dev node0 && ip addr add fd00:200::1/64 dev node0 nodad
            """)
        let endpoints4 = pods.map { "- addresses: [\($0.address)]\n  conditions: {ready: true}" }
        let endpoints6 = pods.indices.map { "- addresses: [\"fd00:250:\($0 + 1)::2\"]\n  conditions: {ready: true}" }
        try cluster.writeManifest("edge.yaml", Self.service("edge", type: "LoadBalancer", spec: """
              clusterIP: 10.96.0.35
              clusterIPs: [10.96.0.35, "fd00:96::35"]
              ipFamilies: [IPv4, IPv6]
              ipFamilyPolicy: RequireDualStack
              externalIPs: [10.250.200.1, 10.250.200.2]
            """) + "status: {loadBalancer: {ingress: [{ip: \"fd00:200::1\"}, {ip: \"fd00:200::2\"}]}}\n---\n"
            + AgentTestCluster.endpointSlice(name: "edge-v4", service: "edge", endpoints: endpoints4, ports: Self.httpPort)
            + "---\n" + AgentTestCluster.endpointSlice(name: "edge-v6", service: "edge", addressType: "IPv6",
                                                       endpoints: endpoints6, ports: Self.httpPort))

        var run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let services = try virtualServices()
        for service in ["10.250.200.1:80", "10.250.200.2:80", "[fd00:200::1]:80", "[fd00:200::2]:80"] {
            XCTAssertNotNil(services[service], "no virtual service \(service): \(services.keys.sorted())")
        }
        // The node's own addresses stay the node's; the others are bound as VIPs.
        XCTAssertEqual(try addresses(on: "kube-ipvs0"), ["10.96.0.35/32", "fd00:96::35/128", "10.250.200.2/32", "fd00:200::2/128"])
        XCTAssertEqual(try answers("10.250.200.1", 80), "pod1=2 pod2=2")
        XCTAssertEqual(try answers("fd00:200::1", 80), "pod1=2 pod2=2")

        // The node gets the addresses the agent bound: the next run takes them off the dummy
        // interface, and the node keeps them (local, still serving the virtual services).
        try KernelTest.shell("ip addr add 10.250.200.2/24 dev node0 && ip addr add fd00:200::2/64 dev node0 nodad")
        run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertEqual(try addresses(on: "kube-ipvs0"), ["10.96.0.35/32", "fd00:96::35/128"])
        XCTAssertEqual(try addresses(on: "node0"), ["10.250.200.1/24", "10.250.200.2/24", "fd00:200::1/64", "fd00:200::2/64"])
        for address in ["10.250.200.2", "fd00:200::2"] {
            XCTAssertTrue(try KernelTest.shell("ip route get \(address)").hasPrefix("local \(address)"), address)
        }
        XCTAssertEqual(try answers("10.250.200.2", 80), "pod1=2 pod2=2")
        XCTAssertEqual(try answers("fd00:200::2", 80), "pod1=2 pod2=2")
    }

    // kube-proxy's NodePort addresses are every address of every interface but the dummy one
    // (GetAllLocalAddressesExcept), lo's included, loopback ones left out: a node whose address is
    // a /32 on lo (routing on the host) serves its NodePorts there.
    func testNodePortsOnTheNodesAddressesOnLo() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try KernelTest.shell("ip addr add 10.250.203.1/32 dev lo && ip addr add fd00:203::1/128 dev lo nodad")
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(clusterIP: "10.96.0.36", pods: pods, dns: false, extra: """
              type: NodePort
              clusterIPs: [10.96.0.36, "fd00:96::36"]
              ipFamilies: [IPv4, IPv6]
              ipFamilyPolicy: RequireDualStack
            """).replacingOccurrences(of: "targetPort: http}", with: "targetPort: http, nodePort: 30084}")
            + "---\n" + AgentTestCluster.endpointSlice(
                name: "web-v6", service: "web", addressType: "IPv6",
                endpoints: pods.indices.map { "- addresses: [\"fd00:250:\($0 + 1)::2\"]\n  conditions: {ready: true}" },
                ports: Self.httpPort))

        // No --node-ip: the node's addresses as the agent reads them.
        let run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 0, run.standardError)
        let services = try virtualServices()
        XCTAssertNotNil(services["10.250.203.1:30084"], "\(services.keys.sorted())")
        XCTAssertNotNil(services["[fd00:203::1]:30084"], "\(services.keys.sorted())")
        for loopback in ["127.0.0.1:30084", "[::1]:30084"] {
            XCTAssertNil(services[loopback], "\(services.keys.sorted())")
        }
        XCTAssertEqual(try answers("10.250.203.1", 30084), "pod1=2 pod2=2")
        XCTAssertEqual(try answers("fd00:203::1", 30084), "pod1=2 pod2=2")
    }
}
