import Foundation
import XCTest

/// Manifests that claim what another manifest has, and addresses that are not a Service's to take:
/// what the kernel holds and where traffic goes.
final class AgentConflictTests: XCTestCase {
    /// A Service on another Service's address and port, and a second Service object of the same
    /// name, each in a file read before the first's (and "grab" sorts before "web"): across a
    /// restart neither changes the first's virtual service, real servers or VIPs, each is reported
    /// at its own file and line, and they take over once the first's file is deleted.
    func testAServiceThatCameSecondChangesNothingAndTakesOverWhenTheFirstGoes() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("m-web.yaml", AgentTestCluster.webManifest(pods: [pods[0]], dns: false))
        let first = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(first.status, 0, first.standardError)
        let programmed: [Substring] = ["-A -t 10.96.0.10:80 -s rr", "-a -t 10.96.0.10:80 -r \(pods[0].address):8080 -m -w 1"]
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn").split(separator: "\n"), programmed)

        let endpoints = { (slice: String, service: String) in
            AgentTestCluster.endpointSlice(name: slice, service: service, endpoints: ["- addresses: [\(pods[1].address)]\n  conditions: {ready: true}"],
                                           ports: ["{name: http, protocol: TCP, port: 8080}"])
        }
        try cluster.writeManifest("a-grab.yaml", """
            # Takes web's ClusterIP and port.
            apiVersion: v1
            kind: Service
            metadata: {name: grab, namespace: default}
            spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080}]}
            ---
            \(endpoints("grab-x", "grab"))
            """)
        try cluster.writeManifest("a-copy.yaml", """
            # Another Service named web, with its own address and endpoints.
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80, targetPort: 8080}]}
            ---
            \(endpoints("web-copy", "web"))
            """)
        let restart = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(restart.status, 1, restart.standardError)
        for expected in [
            "a-grab.yaml:2: document 1 (Service default/grab): spec.ports[0]: TCP 10.96.0.10:80 is already used by Service default/web (",
            "a-copy.yaml:2: document 1 (Service default/web): metadata.name: Service default/web is also defined at ",
        ] {
            XCTAssertTrue(restart.standardError.contains(expected), "stderr lacks «\(expected)»:\n\(restart.standardError)")
        }
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn").split(separator: "\n"), programmed)
        let addresses = try KernelTest.shell("ip -o -4 addr show dev kube-ipvs0")
        XCTAssertTrue(addresses.contains("10.96.0.10/32"), addresses)
        XCTAssertFalse(addresses.contains("10.96.0.20/"), addresses)
        for _ in 0..<4 { XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod1") }

        // The first goes: the others take over what they claimed.
        try FileManager.default.removeItem(atPath: cluster.manifests + "/m-web.yaml")
        let after = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(after.status, 0, after.standardError)
        // pod1 drains (weight 0) while the connections made above last, as a removed endpoint does.
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn").split(separator: "\n").filter { !$0.hasSuffix("-w 0") }, [
            "-A -t 10.96.0.10:80 -s rr", "-a -t 10.96.0.10:80 -r \(pods[1].address):8080 -m -w 1",
            "-A -t 10.96.0.20:80 -s rr", "-a -t 10.96.0.20:80 -r \(pods[1].address):8080 -m -w 1",
        ])
        XCTAssertEqual(try TCPClient.request("10.96.0.10", 80), "pod2")
        XCTAssertEqual(try TCPClient.request("10.96.0.20", 80), "pod2")
    }

    /// Loopback, unspecified, link-local, multicast and broadcast addresses are never bound on
    /// kube-ipvs0 nor programmed: as a ClusterIP or external IP they make the Service invalid, as
    /// a load-balancer IP they are left out and the Service's other addresses serve.
    func testAddressesThatNameNoRemoteHostAreNeverBoundNorProgrammed() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pod = try cluster.addPod(1)
        let service = { (name: String, spec: String, status: String) in
            """
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: default}
            spec: {\(spec), ports: [{name: http, port: 80, targetPort: 8080}]}
            \(status)
            ---
            \(AgentTestCluster.endpointSlice(name: "\(name)-a", service: name, endpoints: ["- addresses: [\(pod.address)]\n  conditions: {ready: true}"],
                                           ports: ["{name: http, protocol: TCP, port: 8080}"]))
            """
        }
        try cluster.writeManifest("special.yaml", [
            service("loop", "clusterIP: 127.0.0.1", ""),
            service("any", "clusterIP: 0.0.0.0", ""),
            service("linklocal", "clusterIP: \"fe80::10\"", ""),
            service("external", "clusterIP: 10.96.0.40, externalIPs: [169.254.10.10]", ""),
            service("multicast", "clusterIP: 10.96.0.43, externalIPs: [224.0.0.251]", ""),
            service("broadcast", "clusterIP: 10.96.0.44, externalIPs: [255.255.255.255]", ""),
            service("balanced", "type: LoadBalancer, clusterIP: 10.96.0.41",
                    "status: {loadBalancer: {ingress: [{ip: 127.0.0.53}, {ip: 10.96.9.9}]}}"),
            service("good", "clusterIP: 10.96.0.42", ""),
        ].joined())
        let run = try cluster.agent(["--manifests", cluster.manifests, "--once"])
        XCTAssertEqual(run.status, 1, run.standardError)
        for expected in [
            "(Service default/loop): spec.clusterIP: 127.0.0.1 is a loopback address and cannot be a ClusterIP",
            "(Service default/any): spec.clusterIP: 0.0.0.0 is an unspecified address and cannot be a ClusterIP",
            "(Service default/linklocal): spec.clusterIP: fe80::10 is a link-local address and cannot be a ClusterIP",
            "(Service default/external): spec.externalIPs[0]: 169.254.10.10 is a link-local address and cannot be an external IP",
            "(Service default/multicast): spec.externalIPs[0]: 224.0.0.251 is a multicast address and cannot be an external IP",
            "(Service default/broadcast): spec.externalIPs[0]: 255.255.255.255 is a broadcast address and cannot be an external IP",
            "(Service default/balanced): status.loadBalancer.ingress[0].ip: 127.0.0.53 is a loopback address and cannot be a load-balancer IP",
        ] {
            XCTAssertTrue(run.standardError.contains("special.yaml:"), run.standardError)
            XCTAssertTrue(run.standardError.contains(expected), "stderr lacks «\(expected)»:\n\(run.standardError)")
        }
        let addresses = try KernelTest.shell("ip -o addr show dev kube-ipvs0")
        for bound in ["10.96.0.41/32", "10.96.9.9/32", "10.96.0.42/32"] { XCTAssertTrue(addresses.contains(bound), addresses) }
        for refused in ["127.0.0.1/", "127.0.0.53/", "0.0.0.0/", "fe80::10/", "169.254.", "224.0.0.251/", "255.255.255.255/", "10.96.0.40/", "10.96.0.43/", "10.96.0.44/"] {
            XCTAssertFalse(addresses.contains(refused), "\(refused) bound:\n\(addresses)")
        }
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn").split(separator: "\n").filter { $0.hasPrefix("-A") }.sorted(), [
            "-A -t 10.96.0.41:80 -s rr", "-A -t 10.96.0.42:80 -s rr", "-A -t 10.96.9.9:80 -s rr",
        ])
        XCTAssertEqual(try TCPClient.request("10.96.9.9", 80), "pod1")
        XCTAssertEqual(try TCPClient.request("10.96.0.42", 80), "pod1")
    }
}
