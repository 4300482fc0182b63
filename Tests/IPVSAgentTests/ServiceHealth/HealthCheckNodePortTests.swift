import IPVS
import XCTest
@testable import IPVSAgent

/// Which Services get a healthCheckNodePort server and the local endpoint count it reports, as
/// kube-proxy's `NeedsHealthCheck` and `LocalReadyEndpoints` decide them.
final class HealthCheckNodePortTests: XCTestCase {
    let web = ObjectName(namespace: "shop", name: "web")

    func service(_ type: KubeService.ServiceType = .loadBalancer, local: Bool = true, port: UInt16? = 30256,
                 clusterIPs: [String] = ["10.96.0.10"]) -> KubeService {
        var service = KubeService(name: web, type: type, clusterIPs: clusterIPs.compactMap(IPAddress.init),
                                  ports: [ServicePort(name: "http", port: 80, targetPort: .number(8080), nodePort: 30080)],
                                  externalTrafficLocal: local)
        service.healthCheckNodePort = port
        return service
    }

    func slice(_ endpoints: [Endpoint], name: String = "web-a", family: AddressFamily = .inet, origin: EndpointSlice.Origin = .endpointSlice) -> EndpointSlice {
        EndpointSlice(name: ObjectName(namespace: "shop", name: name), serviceName: "web", addressFamily: family, endpoints: endpoints,
                      ports: [EndpointPort(name: "http", port: 8080)], origin: origin)
    }

    func endpoint(_ address: String, node: String? = "node-1", ready: Bool = true, terminating: Bool = false) -> Endpoint {
        Endpoint(addresses: [IPAddress(address)!], ready: ready, serving: ready || terminating, terminating: terminating, nodeName: node)
    }

    func wanted(_ service: KubeService, _ slices: [EndpointSlice] = [], node: String? = "node-1") -> [ObjectName: HealthCheckNodePort] {
        var builder = DesiredStateBuilder(options: MappingOptions(nodeName: node))
        _ = builder.build([.service(service)] + slices.map { .endpointSlice($0) })
        return HealthCheckNodePort.wanted(in: builder)
    }

    func testOnlyLoadBalancersWithALocalExternalPolicyAndAPortGetOne() {
        XCTAssertEqual(wanted(service()), [web: HealthCheckNodePort(port: 30256, localEndpoints: 0)])
        XCTAssertEqual(wanted(service(.nodePort)), [:], "kube-proxy's NeedsHealthCheck: LoadBalancer only")
        XCTAssertEqual(wanted(service(local: false)), [:])
        XCTAssertEqual(wanted(service(port: nil)), [:])
    }

    func testAnUpdateLooksOnlyAtTheServicesMappedAgain() {
        var other = service(clusterIPs: ["10.96.0.11"])
        other.name = ObjectName(namespace: "shop", name: "api")
        other.healthCheckNodePort = 30257
        var builder = DesiredStateBuilder(options: MappingOptions(nodeName: "node-1"))
        _ = builder.build([.service(service()), .service(other)])
        let first = HealthCheckNodePort.wanted(in: &builder, updating: [:])
        XCTAssertEqual(first, [web: HealthCheckNodePort(port: 30256, localEndpoints: 0), other.name: HealthCheckNodePort(port: 30257, localEndpoints: 0)],
                       "the first call looks at every Service")

        _ = builder.build([.service(service()), .service(other), .endpointSlice(slice([endpoint("10.244.0.5")]))])
        var previous = first
        previous[other.name]?.localEndpoints = 7 // Not mapped again: kept as it was, not looked at.
        XCTAssertEqual(HealthCheckNodePort.wanted(in: &builder, updating: previous),
                       [web: HealthCheckNodePort(port: 30256, localEndpoints: 1), other.name: HealthCheckNodePort(port: 30257, localEndpoints: 7)])

        _ = builder.build([.service(other), .endpointSlice(slice([endpoint("10.244.0.5")]))])
        XCTAssertEqual(HealthCheckNodePort.wanted(in: &builder, updating: first), [other.name: HealthCheckNodePort(port: 30257, localEndpoints: 0)],
                       "a Service that went wants none")
    }

    func testCountsThisNodesReadyEndpointsEachPodOnce() {
        let slices = [
            slice([endpoint("10.244.1.2"), endpoint("10.244.1.3"),
                   endpoint("10.244.1.4", ready: false),                       // not ready
                   endpoint("10.244.1.5", ready: false, terminating: true),    // terminating: serves, but does not count
                   endpoint("10.244.2.2", node: "node-2"),                     // another node's
                   endpoint("10.244.1.9", node: nil)]),                        // no node
            slice([endpoint("10.244.1.2")], name: "web-b"),                          // the same pod in another slice
        ]
        XCTAssertEqual(wanted(service(), slices)[web]?.localEndpoints, 2)
        XCTAssertEqual(wanted(service(), slices, node: "node-2")[web]?.localEndpoints, 1)
        XCTAssertEqual(wanted(service(), slices, node: nil)[web]?.localEndpoints, 0)
    }

    func testADualStackPodCountsOnceAndEndpointsGiveWayToSlices() {
        let dual = service(clusterIPs: ["10.96.0.10", "fd00:96::10"])
        let slices = [slice([endpoint("10.244.1.2")]), slice([endpoint("fd00:244:1::2")], name: "web-6", family: .inet6)]
        XCTAssertEqual(wanted(dual, slices)[web]?.localEndpoints, 1)
        // An IPv4 Service counts no IPv6 endpoint.
        XCTAssertEqual(wanted(service(), [slice([endpoint("fd00:244:1::2")], name: "web-6", family: .inet6)])[web]?.localEndpoints, 0)
        // v1 Endpoints count only for a Service without EndpointSlices, as they map.
        let converted = slice([endpoint("10.244.1.7"), endpoint("10.244.1.8")], name: "web", origin: .endpoints)
        XCTAssertEqual(wanted(service(), [converted])[web]?.localEndpoints, 2)
        XCTAssertEqual(wanted(service(), [converted, slice([endpoint("10.244.1.2")])])[web]?.localEndpoints, 1)
    }
}
