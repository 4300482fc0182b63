import IPVS
import XCTest
@testable import IPVSAgent

final class ManifestDecoderTests: XCTestCase {
    static let web = """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          namespace: shop
          annotations:
            ipvs.swift.dev/scheduler: mh
            ipvs.swift.dev/scheduler-flags: mh-fallback,mh-port
        spec:
          type: NodePort
          clusterIP: 10.96.0.10
          clusterIPs: [10.96.0.10, "fd00::10"]
          ipFamilies: [IPv4, IPv6]
          ports:
          - name: http
            port: 80
            targetPort: http
            nodePort: 30080
          - name: dns
            protocol: UDP
            port: 53
            targetPort: 5353
          sessionAffinity: ClientIP
          sessionAffinityConfig:
            clientIP:
              timeoutSeconds: 600
        """

    func decodeOne(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ManifestDecoding {
        ManifestDecoder.decode(text, file: "test.yaml")
    }

    func testDecodesAService() throws {
        let result = decodeOne(Self.web)
        XCTAssertEqual(result.issues, [])
        guard case .service(let service) = try XCTUnwrap(result.objects.first) else { return XCTFail("not a service") }
        XCTAssertEqual(service.name, ObjectName(namespace: "shop", name: "web"))
        XCTAssertEqual(service.type, .nodePort)
        XCTAssertEqual(service.clusterIPs, [ip("10.96.0.10"), ip("fd00::10")])
        XCTAssertEqual(service.ports, [
            ServicePort(name: "http", transport: .tcp, port: 80, targetPort: .name("http"), nodePort: 30080),
            ServicePort(name: "dns", transport: .udp, port: 53, targetPort: .number(5353)),
        ])
        XCTAssertEqual(service.sessionAffinityTimeout, 600)
        XCTAssertEqual(service.scheduler, .maglevHashing)
        XCTAssertEqual(service.schedulerFlags, [.mhFallback, .mhPort])
    }

    func testDecodesSlicesEndpointsListsJSONAndSkipsOtherKinds() throws {
        let text = """
            {"apiVersion": "v1", "kind": "List", "items": [
              {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"whatever": 1}},
              {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "n1"}],
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
            ]}
            ---
            apiVersion: v1
            kind: Endpoints
            metadata: {name: legacy}
            subsets:
            - addresses: [{ip: 10.244.2.1}]
              notReadyAddresses: [{ip: 10.244.2.2}]
              ports: [{port: 80}]
            """
        let result = decodeOne(text)
        XCTAssertEqual(result.issues, [])
        XCTAssertEqual(result.objects.count, 2)
        guard case .endpointSlice(let slice) = result.objects[0], case .endpointSlice(let legacy) = result.objects[1] else {
            return XCTFail("unexpected objects \(result.objects)")
        }
        XCTAssertEqual(slice.serviceName, "web")
        XCTAssertEqual(slice.endpoints, [Endpoint(addresses: [ip("10.244.1.5")], ready: false, serving: true, terminating: true, nodeName: "n1")])
        XCTAssertEqual(slice.ports, [EndpointPort(name: "http", transport: .tcp, port: 8080)])
        XCTAssertEqual(legacy.origin, .endpoints)
        XCTAssertEqual(legacy.endpoints.map(\.ready), [true, false])
        // Where each object was read, for problems found when it is mapped; not part of equality.
        XCTAssertEqual(slice.location, ManifestLocation(file: "test.yaml", document: 1, line: 3))
        XCTAssertEqual(legacy.location, ManifestLocation(file: "test.yaml", document: 2, line: 10))
        var moved = legacy
        moved.location = ManifestLocation(file: "other.yaml", document: 1, line: 1)
        XCTAssertEqual(moved, legacy)
        XCTAssertEqual(moved.hashValue, legacy.hashValue)
    }

    // MARK: - Bad input

    func assertIssue(_ text: String, contains expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        let result = decodeOne(text)
        XCTAssertEqual(result.issues.count, 1, "issues: \(result.issues)", file: file, line: line)
        let message = result.issues.first?.description ?? ""
        for part in expected {
            XCTAssertTrue(message.contains(part), "«\(message)» lacks «\(part)»", file: file, line: line)
        }
    }

    func testTriggerTimeIsRFC3339WithOrWithoutFraction() {
        func time(_ text: String) -> Double? {
            EndpointsDecoder.triggerTime([EndpointsDecoder.triggerTimeAnnotation: text])?.timeIntervalSince1970
        }
        XCTAssertEqual(time("2026-01-01T00:00:00Z"), 1_767_225_600)
        XCTAssertEqual(try XCTUnwrap(time("2026-01-01T00:00:00.25Z")), 1_767_225_600.25, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(time("2026-01-01T00:00:00.123456789Z")), 1_767_225_600.123, accuracy: 0.001, "Go's RFC3339Nano")
        XCTAssertEqual(time("2026-01-01T02:00:00+02:00"), 1_767_225_600)
        XCTAssertNil(time("yesterday"))
        XCTAssertNil(time("2026-01-01"))
        XCTAssertNil(EndpointsDecoder.triggerTime([:]))
    }

    func testMalformedYAMLNamesFileAndLine() {
        let result = decodeOne("apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n")
        XCTAssertTrue(result.unreadable)
        XCTAssertEqual(result.issues.count, 1)
        XCTAssertTrue(result.issues[0].description.hasPrefix("test.yaml:"), result.issues[0].description)
        XCTAssertNotNil(result.issues[0].line)
    }

    func testUnknownFieldIsAnErrorWithItsPath() {
        let text = Self.web.replacingOccurrences(of: "    targetPort: 5353", with: "    targetPrt: 5353")
        assertIssue(text, contains: ["test.yaml:", "document 1 (Service shop/web)", "spec.ports[1].targetPrt", "unknown field"])
        XCTAssertEqual(decodeOne(text).rejected, ["Service shop/web"])
    }

    func testInvalidPortProtocolAndAddress() {
        assertIssue(Self.web.replacingOccurrences(of: "port: 53", with: "port: 70000"),
                    contains: ["spec.ports[1].port", "must be 1..65535, got 70000"])
        assertIssue(Self.web.replacingOccurrences(of: "protocol: UDP", with: "protocol: ICMP"),
                    contains: ["spec.ports[1].protocol", "must be TCP, UDP or SCTP"])
        assertIssue(Self.web.replacingOccurrences(of: "clusterIP: 10.96.0.10", with: "clusterIP: 10.96.0.300"),
                    contains: ["spec.clusterIP", "not an IPv4 or IPv6 address"])
        assertIssue(Self.web.replacingOccurrences(of: "targetPort: http", with: "targetPort: Not_A_Name"),
                    contains: ["spec.ports[0].targetPort"])
    }

    func testLoadBalancerSourceRangesAndHealthCheckNodePortAreRead() throws {
        let text = Self.web.replacingOccurrences(of: "  sessionAffinity: ClientIP", with: """
              loadBalancerSourceRanges: ["192.0.2.0/24", " 2001:db8::/32 "]
              healthCheckNodePort: 32000
              sessionAffinity: ClientIP
            """)
        let result = decodeOne(text)
        XCTAssertEqual(result.issues, [])
        guard case .service(let service)? = result.objects.first else { return XCTFail("no Service in \(result.objects)") }
        XCTAssertEqual(service.loadBalancerSourceRanges.map(\.description), ["192.0.2.0/24", "2001:db8::/32"])
        XCTAssertEqual(service.healthCheckNodePort, 32000)
        assertIssue(text.replacingOccurrences(of: "192.0.2.0/24", with: "192.0.2.0"),
                    contains: ["spec.loadBalancerSourceRanges[0]", "must be an address range in CIDR notation", "\"192.0.2.0\""])
    }

    func testDuplicatePorts() {
        let text = Self.web.replacingOccurrences(of: "    protocol: UDP\n    port: 53", with: "    protocol: TCP\n    port: 80")
        assertIssue(text, contains: ["spec.ports[1]", "duplicate port 80/TCP (also spec.ports[0])"])
    }

    func testInvalidSchedulerAnnotationNamesServiceAndAnnotation() {
        assertIssue(Self.web.replacingOccurrences(of: "scheduler: mh", with: "scheduler: fastest"),
                    contains: ["Service shop/web", "metadata.annotations[ipvs.swift.dev/scheduler]", "unknown scheduler \"fastest\""])
        // Whether flags apply to the scheduler is decided when mapping (ServiceMapperTests); flags of
        // two schedulers never apply.
        assertIssue(Self.web.replacingOccurrences(of: "mh-fallback,mh-port", with: "mh-fallback,sh-port"),
                    contains: ["ipvs.swift.dev/scheduler-flags", "\"mh-fallback\" and \"sh-port\" are flags of two schedulers (mh and sh)"])
    }

    func testABadObjectDoesNotStopTheOthers() {
        let good = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 443}]}\n"
        let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {clusterIP: 10.96.0.2, ports: [{port: 0}]}\n"
        let result = decodeOne(bad + "---\n" + good)
        XCTAssertEqual(result.objects.count, 1)
        XCTAssertEqual(result.issues.count, 1)
        XCTAssertEqual(result.issues.first?.document, 1)
        XCTAssertEqual(result.issues.first?.line, 4)
        XCTAssertTrue(result.issues[0].description.contains("document 1 (Service default/bad): spec.ports[0].port: must be 1..65535, got 0"),
                      result.issues[0].description)
    }

    func testWrongAddressTypeInSlice() {
        let text = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s, labels: {kubernetes.io/service-name: web}}
            addressType: IPv6
            endpoints: [{addresses: [10.0.0.1]}]
            """
        assertIssue(text, contains: ["EndpointSlice default/s", "endpoints[0].addresses[0]", "not an IPv6 address"])
    }

    /// An endpoint is its first address, as kube-proxy uses it; the others are still checked.
    func testAnEndpointIsItsFirstAddress() throws {
        let text = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            endpoints: [{addresses: [10.0.0.1, 10.0.0.2]}]
            """
        guard case .endpointSlice(let slice)? = decodeOne(text).objects.first else { return XCTFail("no slice") }
        XCTAssertEqual(slice.endpoints.map(\.address), [IPAddress("10.0.0.1")])
        assertIssue(text.replacingOccurrences(of: "10.0.0.2", with: "10.0.0.999"),
                    contains: ["EndpointSlice default/s", "endpoints[0].addresses[1]", "10.0.0.999"])
    }

    // MARK: - Addresses that name no remote host

    /// A ClusterIP or external IP that is unspecified, loopback, link-local, multicast or broadcast
    /// makes the Service invalid (as the API server has it): reported at its line and field with
    /// the address, and the object is rejected (its last good version is kept).
    func testSpecialPurposeClusterAndExternalIPsRejectTheService() {
        let cases: [(spec: String, field: String, message: String)] = [
            ("clusterIP: 127.0.0.1", "spec.clusterIP",
             "127.0.0.1 is a loopback address and cannot be a ClusterIP (the API server refuses it; use an address of the cluster's Service CIDR)"),
            ("clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10, \"fe80::1\"]", "spec.clusterIPs[1]",
             "fe80::1 is a link-local address and cannot be a ClusterIP (the API server refuses it; use an address of the cluster's Service CIDR)"),
            ("clusterIP: 0.0.0.0", "spec.clusterIP",
             "0.0.0.0 is an unspecified address and cannot be a ClusterIP (the API server refuses it; use an address of the cluster's Service CIDR)"),
            ("clusterIP: 10.96.0.10\n  externalIPs: [192.0.2.7, 169.254.169.254]", "spec.externalIPs[1]",
             "169.254.169.254 is a link-local address and cannot be an external IP (use a unicast address routed to the nodes)"),
            ("clusterIP: 10.96.0.10\n  externalIPs: [255.255.255.255]", "spec.externalIPs[0]",
             "255.255.255.255 is a broadcast address and cannot be an external IP (use a unicast address routed to the nodes)"),
            ("clusterIP: 10.96.0.10\n  externalIPs: [\"ff02::1\"]", "spec.externalIPs[0]",
             "ff02::1 is a multicast address and cannot be an external IP (use a unicast address routed to the nodes)"),
        ]
        for (spec, field, message) in cases {
            let result = decodeOne("""
                apiVersion: v1
                kind: Service
                metadata: {name: web}
                spec:
                  \(spec)
                  ports: [{port: 80}]
                """)
            XCTAssertEqual(result.objects, [], spec)
            XCTAssertEqual(result.rejected, ["Service default/web"], spec)
            XCTAssertEqual(result.issues.count, 1, spec)
            XCTAssertEqual(result.issues.first?.field, field, spec)
            XCTAssertEqual(result.issues.first?.line, spec.contains("\n") ? 6 : 5, spec)
            XCTAssertEqual(result.issues.first?.message, message, spec)
            XCTAssertEqual(result.issues.first?.file, "test.yaml", spec)
        }
    }

    /// A load-balancer IP of that kind (the API server takes any address in status) is left out
    /// and reported; the Service's other addresses still map, as kube-proxy would map them.
    func testSpecialPurposeLoadBalancerIPIsLeftOutAndTheRestMaps() throws {
        let result = decodeOne("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec: {type: LoadBalancer, clusterIP: 10.96.0.10, ports: [{port: 80, nodePort: 30080}]}
            status:
              loadBalancer:
                ingress:
                - ip: 203.0.113.9
                - ip: 127.0.0.53
            """)
        guard case .service(let service) = try XCTUnwrap(result.objects.first) else { return XCTFail("no Service") }
        XCTAssertEqual(service.loadBalancerIngress, [ip("203.0.113.9")])
        XCTAssertEqual(result.issues.map(\.description), [
            "test.yaml:9: document 1 (Service default/web): status.loadBalancer.ingress[1].ip: 127.0.0.53 is a loopback address and "
                + "cannot be a load-balancer IP (this address is left out, the Service's other addresses are mapped)",
        ])
        let mapping = ServiceMapper.map(service, slices: [], options: MappingOptions())
        XCTAssertEqual(Set(mapping.services.keys), [tcp("10.96.0.10", 80), tcp("203.0.113.9", 80)])
        XCTAssertEqual(mapping.addresses, [ip("10.96.0.10"), ip("203.0.113.9")])
    }
}
