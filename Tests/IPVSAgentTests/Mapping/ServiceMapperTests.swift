import IPVS
import XCTest
@testable import IPVSAgent

final class ServiceMapperTests: XCTestCase {
    let webName = ObjectName(namespace: "default", name: "web")

    func slice(_ endpoints: [Endpoint], ports: [EndpointPort] = [EndpointPort(name: "http", port: 8080)],
               family: AddressFamily = .inet, suffix: String = "a") -> EndpointSlice {
        EndpointSlice(name: ObjectName(namespace: "default", name: "web-\(suffix)"), serviceName: "web", addressFamily: family,
                      endpoints: endpoints, ports: ports)
    }

    func service(_ configure: (inout KubeService) -> Void = { _ in }) -> KubeService {
        var service = KubeService(name: webName, clusterIPs: [ip("10.96.0.10")],
                                  ports: [ServicePort(name: "http", port: 80, targetPort: .name("http"))])
        configure(&service)
        return service
    }

    func testClusterIPWithReadyEndpointsAndNamedPort() {
        let mapping = ServiceMapper.map(service(), slices: [slice([
            Endpoint(addresses: [ip("10.244.1.5")]), Endpoint(addresses: [ip("10.244.2.6")], ready: false),
        ])], options: MappingOptions())
        XCTAssertEqual(mapping.issues, [])
        XCTAssertEqual(Array(mapping.services.keys), [tcp("10.96.0.10", 80)])
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.sorted(), [RealServerID(address: ip("10.244.1.5"), port: 8080)])
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.service.scheduler, .roundRobin)
        XCTAssertEqual(mapping.addresses, [ip("10.96.0.10")])
    }

    func testNamedPortResolvedPerSlice() {
        // Two pods whose "http" container port differ end up in two slices.
        let mapping = ServiceMapper.map(service(), slices: [
            slice([Endpoint(addresses: [ip("10.244.1.5")])], ports: [EndpointPort(name: "http", port: 8080)], suffix: "a"),
            slice([Endpoint(addresses: [ip("10.244.1.6")])], ports: [EndpointPort(name: "http", port: 9090)], suffix: "b"),
        ], options: MappingOptions())
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.sorted().map(\.description),
                       ["10.244.1.5:8080", "10.244.1.6:9090"])
    }

    func testUnresolvedNamedPortIsReported() {
        let mapping = ServiceMapper.map(service(), slices: [slice([Endpoint(addresses: [ip("10.244.1.5")])],
                                                                   ports: [EndpointPort(name: "metrics", port: 9100)])],
                                        options: MappingOptions())
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers, [:])
        XCTAssertEqual(mapping.issues.count, 1)
        XCTAssertTrue(mapping.issues[0].description.contains("EndpointSlice default/web-a"), mapping.issues[0].description)
        XCTAssertTrue(mapping.issues[0].description.contains("no TCP port named \"http\""), mapping.issues[0].description)
    }

    func testTerminatingFallbackLikeKubeProxy() {
        let terminating = Endpoint(addresses: [ip("10.244.1.5")], ready: false, serving: true, terminating: true)
        let notServing = Endpoint(addresses: [ip("10.244.1.6")], ready: false, serving: false, terminating: true)
        var mapping = ServiceMapper.map(service(), slices: [slice([terminating, notServing])], options: MappingOptions())
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.map(\.description), ["10.244.1.5:8080"])
        // A ready endpoint wins over terminating ones.
        mapping = ServiceMapper.map(service(), slices: [slice([terminating, Endpoint(addresses: [ip("10.244.1.7")])])], options: MappingOptions())
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.map(\.description), ["10.244.1.7:8080"])
    }

    func testDualStackExternalLoadBalancerAndNodePort() {
        let svc = service {
            $0.type = .loadBalancer
            $0.clusterIPs = [ip("10.96.0.10"), ip("fd00::10")]
            $0.externalIPs = [ip("192.0.2.10")]
            $0.loadBalancerIngress = [ip("198.51.100.7")]
            $0.ports[0].nodePort = 30080
        }
        let options = MappingOptions(nodeAddresses: [ip("10.0.0.4"), ip("fd00::4")])
        let mapping = ServiceMapper.map(svc, slices: [
            slice([Endpoint(addresses: [ip("10.244.1.5")])]),
            slice([Endpoint(addresses: [ip("fd00:244::5")])], family: .inet6, suffix: "v6"),
        ], options: options)
        XCTAssertEqual(Set(mapping.services.keys), [
            tcp("10.96.0.10", 80), tcp("fd00::10", 80), tcp("192.0.2.10", 80), tcp("198.51.100.7", 80),
            tcp("10.0.0.4", 30080), tcp("fd00::4", 30080),
        ])
        XCTAssertEqual(mapping.services[tcp("fd00::10", 80)]?.realServers.keys.map(\.description), ["[fd00:244::5]:8080"])
        XCTAssertEqual(mapping.services[tcp("10.0.0.4", 30080)]?.realServers.keys.map(\.description), ["10.244.1.5:8080"])
        XCTAssertEqual(mapping.addresses, [ip("10.96.0.10"), ip("fd00::10"), ip("192.0.2.10"), ip("198.51.100.7")])
    }

    func testTrafficPoliciesUseLocalEndpoints() {
        let svc = service {
            $0.type = .nodePort
            $0.ports[0].nodePort = 30080
            $0.internalTrafficLocal = true
        }
        let endpoints = [Endpoint(addresses: [ip("10.244.1.5")], nodeName: "here"), Endpoint(addresses: [ip("10.244.2.5")], nodeName: "there")]
        let options = MappingOptions(nodeName: "here", nodeAddresses: [ip("10.0.0.4")])
        var mapping = ServiceMapper.map(svc, slices: [slice(endpoints)], options: options)
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.map(\.address), [ip("10.244.1.5")])
        XCTAssertEqual(mapping.services[tcp("10.0.0.4", 30080)]?.realServers.count, 2)
        var external = svc
        external.internalTrafficLocal = false
        external.externalTrafficLocal = true
        mapping = ServiceMapper.map(external, slices: [slice(endpoints)], options: options)
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.count, 2)
        XCTAssertEqual(mapping.services[tcp("10.0.0.4", 30080)]?.realServers.keys.map(\.address), [ip("10.244.1.5")])
    }

    func testAffinitySchedulerAndNothingForHeadlessOrExternalName() {
        let svc = service {
            $0.sessionAffinityTimeout = 10800
            $0.scheduler = .sourceHashing
            $0.schedulerFlags = [.shPort]
        }
        let virtual = ServiceMapper.map(svc, slices: [], options: MappingOptions()).services[tcp("10.96.0.10", 80)]?.service
        XCTAssertEqual(virtual?.persistence?.timeout, 10800)
        XCTAssertEqual(virtual?.scheduler, .sourceHashing)
        XCTAssertEqual(virtual?.flags, [.shPort])
        XCTAssertTrue(ServiceMapper.map(service { $0.isHeadless = true; $0.clusterIPs = [] }, slices: [], options: MappingOptions()).services.isEmpty)
        XCTAssertTrue(ServiceMapper.map(service { $0.type = .externalName }, slices: [], options: MappingOptions()).services.isEmpty)
    }

    func testGlobalSchedulerAndMismatchedFlags() {
        let options = MappingOptions(scheduler: .weightedLeastConnection)
        let mapping = ServiceMapper.map(service { $0.schedulerFlags = [.mhPort]; $0.flagsScheduler = .maglevHashing }, slices: [], options: options)
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.service.scheduler, .weightedLeastConnection)
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.service.flags, [])
        XCTAssertEqual(mapping.issues.count, 1)
    }

    func testEndpointsAreUsedOnlyWithoutSlices() {
        let legacy = EndpointSlice(name: webName, serviceName: "web", addressFamily: nil,
                                   endpoints: [Endpoint(addresses: [ip("10.244.9.9")])],
                                   ports: [EndpointPort(name: "http", port: 8080)], origin: .endpoints)
        var mapping = ServiceMapper.map(service(), slices: [legacy], options: MappingOptions())
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.map(\.description), ["10.244.9.9:8080"])
        mapping = ServiceMapper.map(service(), slices: [legacy, slice([Endpoint(addresses: [ip("10.244.1.5")])])], options: MappingOptions())
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.map(\.description), ["10.244.1.5:8080"])
    }

    func testBuilderReportsOnlyChangedKeysAndConflicts() {
        var builder = DesiredStateBuilder(options: MappingOptions())
        let a = service()
        let b = service { $0.name = ObjectName(namespace: "default", name: "api"); $0.clusterIPs = [ip("10.96.0.11")] }
        var endpoints = slice([Endpoint(addresses: [ip("10.244.1.5")])])
        var build = builder.build([.service(a), .service(b), .endpointSlice(endpoints)])
        XCTAssertNil(build.changed) // First build: everything.
        endpoints.endpoints.append(Endpoint(addresses: [ip("10.244.1.6")]))
        build = builder.build([.service(a), .service(b), .endpointSlice(endpoints)])
        XCTAssertEqual(build.changed, [tcp("10.96.0.10", 80)])
        build = builder.build([.service(a), .service(b), .endpointSlice(endpoints)])
        XCTAssertEqual(build.changed, [])
        // Two Services on one address and port: the first by name keeps it, and it is reported.
        let clash = service { $0.name = ObjectName(namespace: "default", name: "zzz") }
        build = builder.build([.service(a), .service(clash)])
        XCTAssertEqual(build.issues.count, 1)
        XCTAssertEqual(build.state.services[tcp("10.96.0.10", 80)]?.origin, a.name)
    }
}

extension ServiceMapperTests {
    func testPatchedStateEqualsAFullRebuild() {
        var incremental = DesiredStateBuilder(options: MappingOptions())
        func objects(_ round: Int) -> [ManifestObject] {
            (0..<20).flatMap { index -> [ManifestObject] in
                guard !(round == 2 && index == 7) else { return [] } // Service 7 deleted in round 2.
                let name = ObjectName(namespace: "default", name: "s\(index)")
                let address = round == 1 && index == 3 ? "10.96.1.3" : "10.96.0.\(index)"
                let service = KubeService(name: name, clusterIPs: [ip(address)], ports: [ServicePort(name: "http", port: 80)])
                let endpoints = (0..<(round == 1 && index == 5 ? 3 : 2)).map { Endpoint(addresses: [ip("10.244.\(index).\($0 + 1)")]) }
                let slice = EndpointSlice(name: ObjectName(namespace: "default", name: "s\(index)-a"), serviceName: "s\(index)",
                                          addressFamily: .inet, endpoints: endpoints, ports: [EndpointPort(name: "http", port: 8080)])
                return [.service(service), .endpointSlice(slice)]
            }
        }
        for round in 0..<3 {
            var fresh = DesiredStateBuilder(options: MappingOptions())
            let patched = incremental.build(objects(round))
            XCTAssertEqual(patched.state, fresh.build(objects(round)).state, "round \(round)")
            if round > 0 { XCTAssertNotNil(patched.changed) }
        }
        XCTAssertFalse(incremental.build(objects(2)).state.addresses.contains(ip("10.96.0.7")))
    }
}

// MARK: - Where mapping problems are

extension ServiceMapperTests {
    /// Problems found while mapping (not while decoding) name the file, document, line, object and field.
    func testMappingProblemsNameFileLineObjectAndField() {
        let a = """
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              annotations: {ipvs.swift.dev/scheduler-flags: mh-port, ipvs.swift.dev/health-check: tcp, ipvs.swift.dev/health-interval: fast}
            spec:
              clusterIP: 10.96.0.10
              ports: [{name: http, port: 80, targetPort: http}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-a, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            endpoints: [{addresses: [10.244.1.5]}]
            ports: [{name: metrics, port: 9100}]
            """
        let b = """
            # Another file; its Service takes a port web has.
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Service
              metadata: {name: zeta}
              spec:
                clusterIP: 10.96.0.10
                ports: [{name: dns, protocol: UDP, port: 53}, {name: http, port: 80}]
            """
        let objects = ManifestDecoder.decode(a, file: "a.yaml").objects + ManifestDecoder.decode(b, file: "dir/b.yaml").objects
        XCTAssertEqual(objects.count, 3)
        var builder = DesiredStateBuilder(options: MappingOptions())
        let issues = builder.build(objects).issues.map(\.description).sorted()
        XCTAssertEqual(issues, [
            "a.yaml:1: document 1 (Service default/web): metadata.annotations[ipvs.swift.dev/health-interval]: \"fast\" is not a duration; use a number and a unit (ns, us, ms, s, m, h), as Go writes durations: 500ms, 30s, 1m30s; the Service is not health-checked",
            "a.yaml:1: document 1 (Service default/web): metadata.annotations[ipvs.swift.dev/scheduler-flags]: mh-port: flags of the mh scheduler, which rr (set by --scheduler) does not take; the Service is programmed without them",
            "a.yaml:10: document 2 (EndpointSlice default/web-a): ports: no TCP port named \"http\" for port 80 (targetPort \"http\") of Service default/web; its endpoints are left out of that port",
            "dir/b.yaml:5: document 1 (Service default/zeta): spec.ports[1]: TCP 10.96.0.10:80 is already used by Service default/web (a.yaml:1), "
                + "which came first; this port is left out until that one no longer uses it",
        ].sorted())
    }

    func testUnresolvedPortsOfPlainEndpointsNameTheirField() {
        let text = """
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: http}]}
            ---
            apiVersion: v1
            kind: Endpoints
            metadata: {name: web}
            subsets: [{addresses: [{ip: 10.244.1.5}], ports: [{name: metrics, port: 9100}]}]
            """
        var builder = DesiredStateBuilder(options: MappingOptions())
        let issues = builder.build(ManifestDecoder.decode(text, file: "e.yaml").objects).issues
        XCTAssertEqual(issues.count, 1)
        XCTAssertEqual(issues.first?.file, "e.yaml")
        XCTAssertEqual(issues.first?.line, 6)
        XCTAssertEqual(issues.first?.field, "subsets[].ports")
    }
}

// MARK: - kube-proxy's IPVS test expectations (pkg/proxy/ipvs/proxier_test.go)

extension ServiceMapperTests {
    /// A LoadBalancer Service on port 80 / node port 30080 with an external IP and an ingress IP in
    /// each family, on a node with an address in each family.
    func mixedFamilies(clusterIPs: [String]) -> (KubeService, MappingOptions) {
        let svc = service {
            $0.type = .loadBalancer
            $0.clusterIPs = clusterIPs.map(ip)
            $0.externalIPs = [ip("192.0.2.10"), ip("2001:db8::10")]
            $0.loadBalancerIngress = [ip("198.51.100.7"), ip("2001:db8::7")]
            $0.ports[0].nodePort = 30080
        }
        return (svc, MappingOptions(nodeAddresses: [ip("10.0.0.4"), ip("fd00::4")]))
    }

    var bothFamilies: [EndpointSlice] {
        [slice([Endpoint(addresses: [ip("10.244.1.5")])]), slice([Endpoint(addresses: [ip("fd00:244::5")])], family: .inet6, suffix: "v6")]
    }

    // kube-proxy's TestNodePortIPv4 and TestExternalIPs: an IPv4 Service gets no frontend on the
    // node's IPv6 addresses, nor on its IPv6 external or ingress IPs (and the reverse).
    func testFrontendsOnlyInTheServiceFamilies() {
        var (svc, options) = mixedFamilies(clusterIPs: ["10.96.0.10"])
        var mapping = ServiceMapper.map(svc, slices: bothFamilies, options: options)
        XCTAssertEqual(Set(mapping.services.keys), [tcp("10.96.0.10", 80), tcp("192.0.2.10", 80), tcp("198.51.100.7", 80), tcp("10.0.0.4", 30080)])
        XCTAssertEqual(mapping.addresses, [ip("10.96.0.10"), ip("192.0.2.10"), ip("198.51.100.7")])
        XCTAssertEqual(Set(ServiceMapper.addresses(of: svc, options: options)), mapping.addresses)
        // The external IP is the tenant's own input: said; the ingress IPs are the controller's.
        XCTAssertEqual(mapping.issues.map(\.field), ["spec.externalIPs[1]"])
        let message = mapping.issues.first?.message ?? ""
        XCTAssertTrue(message.contains("2001:db8::10 is IPv6 but the Service has no IPv6 ClusterIP"), message)

        (svc, options) = mixedFamilies(clusterIPs: ["fd00::10"])
        mapping = ServiceMapper.map(svc, slices: bothFamilies, options: options)
        XCTAssertEqual(Set(mapping.services.keys), [tcp("fd00::10", 80), tcp("2001:db8::10", 80), tcp("2001:db8::7", 80), tcp("fd00::4", 30080)])
        XCTAssertEqual(mapping.services[tcp("fd00::4", 30080)]?.realServers.keys.map(\.description), ["[fd00:244::5]:8080"])
        XCTAssertEqual(mapping.addresses, [ip("fd00::10"), ip("2001:db8::10"), ip("2001:db8::7")])
        XCTAssertEqual(mapping.issues.map(\.field), ["spec.externalIPs[0]"])

        (svc, options) = mixedFamilies(clusterIPs: ["10.96.0.10", "fd00::10"])
        mapping = ServiceMapper.map(svc, slices: bothFamilies, options: options)
        XCTAssertEqual(mapping.services.count, 8)
        XCTAssertEqual(mapping.addresses.count, 6)
        XCTAssertEqual(mapping.issues, [])
    }

    // kube-proxy's syncProxyRules: "We must not add the address to the dummy device if it exist on
    // another interface" (TestExternalIPs' node addresses); the virtual services are still made.
    func testTheNodesOwnAddressIsServedButNeverBound() {
        var (svc, options) = mixedFamilies(clusterIPs: ["10.96.0.10", "fd00::10"])
        options.localAddresses = [ip("192.0.2.10"), ip("2001:db8::7"), ip("10.0.0.4")]
        let mapping = ServiceMapper.map(svc, slices: bothFamilies, options: options)
        for key in [tcp("192.0.2.10", 80), tcp("2001:db8::7", 80)] {
            XCTAssertEqual(mapping.services[key]?.realServers.count, 1, "\(key)")
        }
        XCTAssertEqual(mapping.addresses, [ip("10.96.0.10"), ip("fd00::10"), ip("2001:db8::10"), ip("198.51.100.7")])
        XCTAssertEqual(Set(ServiceMapper.addresses(of: svc, options: options)), mapping.addresses)
        // The early binding of a cold start binds the same addresses.
        XCTAssertEqual(Set(ServiceMapper.addresses(in: [.service(svc)], options: options)), mapping.addresses)
    }

    // kube-proxy uses an endpoint's first address (pkg/proxy/endpointslicecache.go,
    // endpoint.Addresses[0]): the API calls
    // the addresses of one endpoint interchangeable, so a second one is no second real server.
    func testOneRealServerPerEndpointAtItsFirstAddress() {
        let mapping = ServiceMapper.map(service(), slices: [slice([
            Endpoint(addresses: [ip("10.244.1.5"), ip("10.244.1.6")]), Endpoint(addresses: [ip("10.244.2.7")]),
        ])], options: MappingOptions())
        XCTAssertEqual(mapping.services[tcp("10.96.0.10", 80)]?.realServers.keys.sorted().map(\.description), ["10.244.1.5:8080", "10.244.2.7:8080"])
    }

    // kube-proxy's syncProxyRules sets utilipvs.FlagSourceHash (0x10, IP_VS_SVC_F_SCHED_MH_PORT) on
    // every virtual server when its scheduler is mh ("Set the source hash flag needed for the
    // distribution method mh"; util/ipvs_linux_test.go's Test_toVirtualServer reads it back as mh).
    func testMaglevGetsMHPortUnlessFlagsAreGiven() {
        func flags(_ options: MappingOptions, _ configure: (inout KubeService) -> Void = { _ in }) -> ServiceFlags? {
            ServiceMapper.map(service(configure), slices: [], options: options).services[tcp("10.96.0.10", 80)]?.service.flags
        }
        XCTAssertEqual(flags(MappingOptions(scheduler: .maglevHashing)), [.mhPort])
        XCTAssertEqual(flags(MappingOptions()) { $0.scheduler = .maglevHashing }, [.mhPort])
        // The Service's annotation says otherwise: its flags, none added.
        XCTAssertEqual(flags(MappingOptions(scheduler: .maglevHashing)) { $0.schedulerFlags = [.mhFallback]; $0.flagsScheduler = .maglevHashing },
                       [.mhFallback])
        XCTAssertEqual(flags(MappingOptions(scheduler: .maglevHashing)) { $0.schedulerFlags = [] }, [])
        XCTAssertEqual(flags(MappingOptions(scheduler: .maglevHashing)) { $0.schedulerFlags = [.onePacket] }, [.onePacket])
        // Other schedulers get nothing.
        XCTAssertEqual(flags(MappingOptions(scheduler: .sourceHashing)), [])
    }

    /// Flags of another scheduler than the Service's are one rule, whichever way the scheduler was
    /// chosen (issue 18: `mh-port` on an annotated `rr` refused the whole Service, on `--scheduler rr`
    /// it was only reported): reported at the flags annotation, left out, and the Service programmed,
    /// as kube-proxy, which never refuses a Service over scheduler flags, sets mh-port only on mh.
    func testFlagsOfAnotherSchedulerAreReportedAndLeftOutWhereverTheSchedulerCameFrom() {
        func decoded(_ annotations: String) -> KubeService? {
            let text = """
                apiVersion: v1
                kind: Service
                metadata: {name: web, annotations: {\(annotations)}}
                spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: http}]}
                """
            let result = ManifestDecoder.decode(text, file: "a.yaml")
            XCTAssertEqual(result.issues, [], annotations)
            return result.objects.compactMap { if case .service(let service) = $0 { service } else { nil } }.first
        }
        let key = tcp("10.96.0.10", 80)
        let paths: [(annotations: String, options: MappingOptions, source: String)] = [
            ("ipvs.swift.dev/scheduler: rr, ipvs.swift.dev/scheduler-flags: 'mh-port,onepacket'", MappingOptions(scheduler: .maglevHashing),
             "ipvs.swift.dev/scheduler"),
            ("ipvs.swift.dev/scheduler-flags: 'mh-port,onepacket'", MappingOptions(scheduler: .roundRobin), "--scheduler"),
        ]
        for path in paths {
            guard let service = decoded(path.annotations) else { XCTFail("the Service is refused: \(path.annotations)"); continue }
            let mapping = ServiceMapper.map(service, slices: [], options: path.options)
            XCTAssertEqual(mapping.services[key]?.service.scheduler, .roundRobin, path.source)
            XCTAssertEqual(mapping.services[key]?.service.flags, [.onePacket], path.source)
            XCTAssertEqual(mapping.issues.map(\.field), ["metadata.annotations[ipvs.swift.dev/scheduler-flags]"], path.source)
            XCTAssertEqual(mapping.issues.first?.message,
                           "mh-port: flags of the mh scheduler, which rr (set by \(path.source)) does not take; the Service is programmed without them")
        }
        // sh-port sets the bit mh reads as mh-port: applicability is decided by name, not by bit.
        guard let shOnMaglev = decoded("ipvs.swift.dev/scheduler: mh, ipvs.swift.dev/scheduler-flags: sh-port") else { return XCTFail("refused") }
        let mapping = ServiceMapper.map(shOnMaglev, slices: [], options: MappingOptions())
        XCTAssertEqual(mapping.services[key]?.service.flags, [], "\(mapping.issues)")
        XCTAssertEqual(mapping.issues.count, 1)
    }
}
