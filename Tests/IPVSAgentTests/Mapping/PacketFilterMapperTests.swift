import IPVS
import PacketFilter
import XCTest
@testable import IPVSAgent

/// The nftables sets a desired state fills, as kube-proxy's IPVS mode fills its ipsets.
final class PacketFilterMapperTests: XCTestCase {
    private let web = ObjectName(namespace: "shop", name: "web")
    private let node = ip("192.168.1.10")

    private func frontend(_ address: String, _ port: UInt16) -> Frontend { Frontend(ip(address), .tcp, port) }

    /// A LoadBalancer Service with a ClusterIP, an external IP, a load-balancer IP, a node port, one pod
    /// on this node (node-1) and one on another.
    private func mapped(local: Bool = false, ranges: [String] = [], options: PacketFilterOptions) -> PacketFilterState {
        var service = KubeService(name: web, type: .loadBalancer, clusterIPs: [ip("10.96.0.10")], externalIPs: [ip("203.0.113.5")],
                                  loadBalancerIngress: [ip("198.51.100.20")],
                                  ports: [ServicePort(name: "http", port: 80, targetPort: .number(8080), nodePort: 30080)],
                                  externalTrafficLocal: local)
        service.loadBalancerSourceRanges = ranges.map { AddressPrefix($0)! }
        let slice = EndpointSlice(name: ObjectName(namespace: "shop", name: "web-a"), serviceName: "web", addressFamily: .inet,
                                  endpoints: [Endpoint(addresses: [ip("10.244.1.5")], nodeName: "node-1"),
                                              Endpoint(addresses: [ip("10.244.2.7")], nodeName: "node-2")],
                                  ports: [EndpointPort(name: "http", port: 8080)])
        let mapping = ServiceMapper.map(service, slices: [slice], options: MappingOptions(nodeName: "node-1", nodeAddresses: [node]))
        var state = PacketFilterMapper.state(of: service, virtualServices: mapping.services.map { ($0.key, $0.value) },
                                             addresses: mapping.addresses,
                                             localEndpoints: PacketFilterMapper.localEndpoints(of: [slice], nodeName: "node-1"), options: options)
        state.clusterPrefixes = PacketFilterMapper.clusterState(options: options).clusterPrefixes
        return state
    }

    func testClusterIPsAreMasqueradedFromOutsideTheClusterCIDRAndTheRestAlways() {
        let state = mapped(options: PacketFilterOptions(clusterPrefixes: [AddressPrefix("10.244.0.0/16")!]))
        XCTAssertEqual(state.masqueradeOutsideCluster, [frontend("10.96.0.10", 80)])
        XCTAssertEqual(state.masquerade, [frontend("203.0.113.5", 80), frontend("198.51.100.20", 80), frontend("192.168.1.10", 30080)])
        XCTAssertEqual(state.clusterPrefixes, [AddressPrefix("10.244.0.0/16")!])
        // The VIPs take only the Service's ports; the node's address is not a VIP.
        XCTAssertEqual(state.guardedAddresses, [ip("10.96.0.10"), ip("203.0.113.5"), ip("198.51.100.20")])
        XCTAssertEqual(state.accepted, [frontend("10.96.0.10", 80), frontend("203.0.113.5", 80), frontend("198.51.100.20", 80)])
        // Only the pod on this node can send to itself through this node's IPVS (KUBE-LOOP-BACK).
        XCTAssertEqual(state.hairpin, [frontend("10.244.1.5", 8080)])
        XCTAssertEqual(state.sourceRanges, [:])
    }

    func testMasqueradeAllMarksClusterIPsAlwaysAndNoClusterCIDRMarksNone() {
        XCTAssertTrue(mapped(options: PacketFilterOptions(masqueradeAll: true)).masquerade.contains(frontend("10.96.0.10", 80)))
        let plain = mapped(options: PacketFilterOptions())
        XCTAssertEqual(plain.masqueradeOutsideCluster, [])
        XCTAssertFalse(plain.masquerade.contains(frontend("10.96.0.10", 80)))
    }

    func testExternalTrafficPolicyLocalKeepsTheClientAddress() {
        let state = mapped(local: true, options: PacketFilterOptions(clusterPrefixes: [AddressPrefix("10.244.0.0/16")!]))
        XCTAssertEqual(state.masquerade, [])
        XCTAssertEqual(state.masqueradeOutsideCluster, [frontend("10.96.0.10", 80)])
    }

    func testSourceRangesGuardTheLoadBalancerIPOnly() {
        let state = mapped(ranges: ["192.0.2.0/24"], options: PacketFilterOptions())
        XCTAssertEqual(state.sourceRanges, [frontend("198.51.100.20", 80): [AddressPrefix("192.0.2.0/24")!]])
    }
}
