import IPVS
import XCTest
@testable import IPVSAgent

/// kube-proxy's `TestCategorizeEndpoints` (`pkg/proxy/topology_test.go`), case by case: which
/// endpoints `Cluster` and `Local` traffic use, with zone and node hints. `cluster` is kube-proxy's
/// `clusterEndpoints` (`select(local: false)`), `local` its `localEndpoints` (`select(local: true)`);
/// `nil` where the case's Service does not use that kind. Local endpoints are on `node-1`.
final class TopologyTests: XCTestCase {
    struct Case {
        var name: String
        var zone: String? = "zone-a"
        var endpoints: [Endpoint]
        var cluster: Set<String>?
        var local: Set<String>? = nil
    }

    /// An endpoint `address` (port 80 in the expectations).
    static func endpoint(_ address: String, zones: [String] = [], nodes: [String] = [], ready: Bool = true,
                         serving: Bool? = nil, terminating: Bool = false, local: Bool = false) -> Endpoint {
        Endpoint(addresses: [IPAddress(address)!], ready: ready, serving: serving, terminating: terminating,
                 nodeName: local ? "node-1" : "node-2", zoneHints: zones, nodeHints: nodes)
    }

    static let fourZoned = [
        endpoint("10.1.2.3", zones: ["zone-a"]), endpoint("10.1.2.4", zones: ["zone-b"]),
        endpoint("10.1.2.5", zones: ["zone-c"]), endpoint("10.1.2.6", zones: ["zone-a"]),
    ]

    static let cases: [Case] = [
        Case(name: "should use topology since all endpoints have hints, node has a zone label and there are endpoints for the node's zone",
             endpoints: fourZoned, cluster: ["10.1.2.3:80", "10.1.2.6:80"]),
        Case(name: "externalTrafficPolicy: Local, topology ignored for Local endpoints",
             endpoints: [endpoint("10.1.2.3", zones: ["zone-a"], local: true), endpoint("10.1.2.4", zones: ["zone-b"], local: true),
                         endpoint("10.1.2.5", zones: ["zone-c"]), endpoint("10.1.2.6", zones: ["zone-a"])],
             cluster: ["10.1.2.3:80", "10.1.2.6:80"], local: ["10.1.2.3:80", "10.1.2.4:80"]),
        Case(name: "empty node labels", zone: nil, endpoints: [endpoint("10.1.2.3", zones: ["zone-a"])], cluster: ["10.1.2.3:80"]),
        Case(name: "empty zone label", zone: "", endpoints: [endpoint("10.1.2.3", zones: ["zone-a"])], cluster: ["10.1.2.3:80"]),
        Case(name: "node in different zone, no endpoint filtering", zone: "zone-b",
             endpoints: [endpoint("10.1.2.3", zones: ["zone-a"])], cluster: ["10.1.2.3:80"]),
        Case(name: "unready endpoint",
             endpoints: Array(fourZoned.prefix(3)) + [endpoint("10.1.2.6", zones: ["zone-a"], ready: false)],
             cluster: ["10.1.2.3:80"]),
        Case(name: "only unready endpoints in same zone (should not filter)",
             endpoints: [endpoint("10.1.2.3", zones: ["zone-a"], ready: false), endpoint("10.1.2.4", zones: ["zone-b"]),
                         endpoint("10.1.2.5", zones: ["zone-c"]), endpoint("10.1.2.6", zones: ["zone-a"], ready: false)],
             cluster: ["10.1.2.4:80", "10.1.2.5:80"]),
        Case(name: "missing hints, no filtering applied",
             endpoints: [endpoint("10.1.2.3", zones: ["zone-a"]), endpoint("10.1.2.4", zones: ["zone-b"]),
                         endpoint("10.1.2.5"), endpoint("10.1.2.6", zones: ["zone-a"])],
             cluster: ["10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"]),
        Case(name: "multiple hints per endpoint, filtering includes any endpoint with zone included", zone: "zone-c",
             endpoints: [endpoint("10.1.2.3", zones: ["zone-a", "zone-b", "zone-c"]), endpoint("10.1.2.4", zones: ["zone-b", "zone-c"]),
                         endpoint("10.1.2.5", zones: ["zone-b", "zone-d"]), endpoint("10.1.2.6", zones: ["zone-c"])],
             cluster: ["10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"]),
        Case(name: "conflicting topology and localness require merging allEndpoints",
             endpoints: [endpoint("10.0.0.0", zones: ["zone-a"], local: true), endpoint("10.0.0.1", zones: ["zone-b"], local: true),
                         endpoint("10.0.0.2", zones: ["zone-a"]), endpoint("10.0.0.3", zones: ["zone-b"])],
             cluster: ["10.0.0.0:80", "10.0.0.2:80"], local: ["10.0.0.0:80", "10.0.0.1:80"]),
        Case(name: "internalTrafficPolicy: Local, with empty endpoints", endpoints: [], cluster: nil, local: []),
        Case(name: "internalTrafficPolicy: Local, but all endpoints are remote",
             endpoints: [endpoint("10.0.0.0"), endpoint("10.0.0.1")], cluster: nil, local: []),
        Case(name: "internalTrafficPolicy: Local, all endpoints are local",
             endpoints: [endpoint("10.0.0.0", local: true), endpoint("10.0.0.1", local: true)],
             cluster: nil, local: ["10.0.0.0:80", "10.0.0.1:80"]),
        Case(name: "internalTrafficPolicy: Local, some endpoints are local",
             endpoints: [endpoint("10.0.0.0", local: true), endpoint("10.0.0.1")], cluster: nil, local: ["10.0.0.0:80"]),
        Case(name: "Cluster traffic policy, endpoints not Ready",
             endpoints: [endpoint("10.0.0.0", ready: false), endpoint("10.0.0.1", ready: false)], cluster: []),
        Case(name: "Cluster traffic policy, some endpoints are Ready",
             endpoints: [endpoint("10.0.0.0", ready: false), endpoint("10.0.0.1")], cluster: ["10.0.0.1:80"]),
        Case(name: "Cluster traffic policy, all endpoints are terminating",
             endpoints: [endpoint("10.0.0.0", ready: false, serving: true, terminating: true, local: true),
                         endpoint("10.0.0.1", ready: false, serving: true, terminating: true)],
             cluster: ["10.0.0.0:80", "10.0.0.1:80"]),
        Case(name: "iTP: Local, eTP: Local, all endpoints remote and terminating",
             endpoints: [endpoint("10.0.0.0", ready: false, serving: true, terminating: true),
                         endpoint("10.0.0.1", ready: false, serving: true, terminating: true)],
             cluster: ["10.0.0.0:80", "10.0.0.1:80"], local: []),
        Case(name: "iTP: Cluster, eTP: Local, with terminating endpoints",
             endpoints: [endpoint("10.0.0.0"), endpoint("10.0.0.1", ready: false, serving: false, local: true),
                         endpoint("10.0.0.2", ready: false, serving: true, terminating: true, local: true),
                         endpoint("10.0.0.3", ready: false, serving: true, terminating: true)],
             cluster: ["10.0.0.0:80"], local: ["10.0.0.2:80"]),
        // Node hints (`PreferSameNode`, kube-proxy's PreferSameTrafficDistribution gate, on by default).
        Case(name: "node hints for this node win over zone hints",
             endpoints: [endpoint("10.0.0.0", zones: ["zone-a"], nodes: ["node-1"]), endpoint("10.0.0.1", zones: ["zone-a"], nodes: ["node-2"]),
                         endpoint("10.0.0.2", zones: ["zone-b"], nodes: ["node-3"])],
             cluster: ["10.0.0.0:80"]),
        Case(name: "no node hint for this node: zone hints",
             endpoints: [endpoint("10.0.0.1", zones: ["zone-a"], nodes: ["node-2"]), endpoint("10.0.0.2", zones: ["zone-b"], nodes: ["node-3"])],
             cluster: ["10.0.0.1:80"]),
        Case(name: "an endpoint without a node hint: zone hints",
             endpoints: [endpoint("10.0.0.0", zones: ["zone-a"], nodes: ["node-1"]), endpoint("10.0.0.1", zones: ["zone-a"]),
                         endpoint("10.0.0.2", zones: ["zone-b"])],
             cluster: ["10.0.0.0:80", "10.0.0.1:80"]),
    ]

    func testKubeProxyCategorizeEndpointsTable() {
        let options = MappingOptions(nodeName: "node-1")
        for test in Self.cases {
            var withZone = options
            withZone.zone = test.zone
            let candidates = test.endpoints.map { ServiceMapper.Candidate(address: $0.address!, port: 80, endpoint: $0) }
            func names(_ chosen: [ServiceMapper.Candidate]) -> Set<String> { Set(chosen.map { "\($0.address):\($0.port)" }) }
            if let cluster = test.cluster {
                XCTAssertEqual(names(ServiceMapper.select(candidates, local: false, options: withZone)), cluster, test.name)
            }
            if let local = test.local {
                XCTAssertEqual(names(ServiceMapper.select(candidates, local: true, options: withZone)), local, test.name)
            }
        }
    }

    /// Through the whole mapping: a NodePort Service with `externalTrafficPolicy: Local` gets the
    /// zone's endpoints on its ClusterIP and this node's on its NodePort, and a zone change moves the
    /// ClusterIP's endpoints.
    func testMappingUsesTheZoneForClusterTrafficOnly() {
        var service = KubeService(name: ObjectName(namespace: "default", name: "web"), type: .nodePort, clusterIPs: [IPAddress("10.96.0.10")!],
                                  ports: [ServicePort(name: "http", port: 80, targetPort: .number(8080), nodePort: 30080)])
        service.externalTrafficLocal = true
        let endpoints = [Self.endpoint("10.0.0.0", zones: ["zone-a"], local: true), Self.endpoint("10.0.0.1", zones: ["zone-b"], local: true),
                         Self.endpoint("10.0.0.2", zones: ["zone-a"]), Self.endpoint("10.0.0.3", zones: ["zone-b"])]
        let slice = EndpointSlice(name: ObjectName(namespace: "default", name: "web-a"), serviceName: "web", addressFamily: .inet,
                                  endpoints: endpoints, ports: [EndpointPort(name: "http", port: 8080)])
        func servers(zone: String?) -> (cluster: [String], node: [String]) {
            let options = MappingOptions(nodeName: "node-1", nodeAddresses: [IPAddress("192.168.1.1")!], zone: zone)
            let mapping = ServiceMapper.map(service, slices: [slice], options: options)
            func of(_ address: String, _ port: UInt16) -> [String] {
                mapping.services[.address(.tcp, IPAddress(address)!, port: port)]?.realServers.keys.map(\.description).sorted() ?? []
            }
            return (of("10.96.0.10", 80), of("192.168.1.1", 30080))
        }
        XCTAssertEqual(servers(zone: "zone-a").cluster, ["10.0.0.0:8080", "10.0.0.2:8080"])
        XCTAssertEqual(servers(zone: "zone-a").node, ["10.0.0.0:8080", "10.0.0.1:8080"])
        XCTAssertEqual(servers(zone: "zone-b").cluster, ["10.0.0.1:8080", "10.0.0.3:8080"])
        XCTAssertEqual(servers(zone: nil).cluster, ["10.0.0.0:8080", "10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"])
    }

    /// `hints` is read strictly: `forZones` and `forNodes` entries by name; anything else is an error naming the field.
    func testHintsAreDecoded() {
        let manifest = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-a, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            endpoints:
            - addresses: [10.0.0.1]
              hints: {forZones: [{name: zone-a}, {name: zone-b}], forNodes: [{name: node-1}]}
            ports: [{name: http, port: 8080}]
            """
        let decoded = ManifestDecoder.decode(manifest, file: "s.yaml")
        XCTAssertEqual(decoded.issues, [])
        guard case .endpointSlice(let slice)? = decoded.objects.first else { return XCTFail("no slice") }
        XCTAssertEqual(slice.endpoints[0].zoneHints, ["zone-a", "zone-b"])
        XCTAssertEqual(slice.endpoints[0].nodeHints, ["node-1"])
        let wrong = ManifestDecoder.decode(manifest.replacingOccurrences(of: "forNodes", with: "forRegions"), file: "s.yaml")
        XCTAssertEqual(wrong.objects, [])
        XCTAssertTrue(wrong.issues.first?.description.contains("endpoints[0].hints.forRegions") == true, "\(wrong.issues)")
    }
}
