import Foundation
import HealthCheck
import IPVS
import Logging
import NIOPosix
import XCTest
@testable import IPVSAgent

/// The seam between the health checker and the reconciler: annotations to checks, verdicts to
/// weight adjustments.
final class HealthLinkTests: XCTestCase {
    let web = ServiceKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)
    let dns = ServiceKey.address(.udp, IPAddress("10.96.0.53")!, port: 53)
    let pod = RealServerID(address: IPAddress("10.244.1.5")!, port: 8080)
    let other = RealServerID(address: IPAddress("10.244.1.6")!, port: 8080)

    func state(_ status: HealthStatus) -> HealthState {
        HealthState(status: status, since: Date(timeIntervalSince1970: 0))
    }

    func testServingBackendsAreLeftAloneAndOthersFollowTheirFailureAction() {
        let overlay = HealthLink.overlay(
            states: [BackendID(service: web, server: pod): state(.down), BackendID(service: web, server: other): state(.up)],
            actions: [BackendID(service: web, server: pod): .quiesce, BackendID(service: web, server: other): .quiesce])
        XCTAssertEqual(overlay.adjustments, [BackendID(service: web, server: pod): .quiesce])

        let both = HealthLink.overlay(
            states: [BackendID(service: web, server: pod): state(.down), BackendID(service: dns, server: pod): state(.down)],
            actions: [BackendID(service: web, server: pod): .quiesce, BackendID(service: dns, server: pod): .remove])
        XCTAssertEqual(both.adjustments, [BackendID(service: web, server: pod): .quiesce, BackendID(service: dns, server: pod): .remove],
                       "each virtual service's failure action applies in that virtual service")

        let oneService = HealthLink.overlay(
            states: [BackendID(service: web, server: pod): state(.down), BackendID(service: dns, server: pod): state(.up)],
            actions: [BackendID(service: web, server: pod): .quiesce, BackendID(service: dns, server: pod): .quiesce])
        XCTAssertEqual(oneService.adjustments, [BackendID(service: web, server: pod): .quiesce],
                       "a pod failing one virtual service's check is not adjusted where its check passes")

        XCTAssertEqual(HealthLink.overlay(states: [BackendID(service: web, server: pod): state(.down)], actions: [:]).adjustments, [:],
                       "a backend no longer targeted is not adjusted")
    }

    func testADynamicWeightIsProgrammedWhileUpAndTheConfiguredOneWhenNoneIsAsked() {
        let backend = BackendID(service: web, server: pod)
        var up = state(.up)
        up.dynamicWeight = 5
        XCTAssertEqual(HealthLink.overlay(states: [backend: up], actions: [backend: .quiesce]).adjustments, [backend: .weight(5)])
        up.dynamicWeight = 0
        XCTAssertEqual(HealthLink.overlay(states: [backend: up], actions: [backend: .quiesce]).adjustments, [backend: .weight(0)])
        up.dynamicWeight = nil
        XCTAssertEqual(HealthLink.overlay(states: [backend: up], actions: [backend: .quiesce]).adjustments, [:],
                       "exit status 0: the configured weight")
        var down = state(.down)
        down.dynamicWeight = 5
        XCTAssertEqual(HealthLink.overlay(states: [backend: down], actions: [backend: .remove]).adjustments, [backend: .remove],
                       "a down backend follows the failure action whatever weight it last asked for")
    }

    func testTheVerdictLogLineNamesBackendServiceReasonLatencyAndWeight() {
        let backend = BackendID(service: web, server: pod)
        let transition = HealthTransition(
            backend: backend, serviceName: "default/web:http", from: .up, to: .down, reason: "connect: connection refused",
            latency: .microseconds(1_300), time: Date(timeIntervalSince1970: 10), previousSince: Date(timeIntervalSince1970: 0),
            consecutive: 2)
        let metadata = HealthLoop.metadata(transition, overlay: HealthOverlay(adjustments: [backend: .remove]),
                                           report: ReconcileReport(applied: 1))
        XCTAssertEqual(metadata, [
            "backend": "10.244.1.5:8080", "service": "TCP 10.96.0.10:80", "kubernetes_service": "default/web:http",
            "from": "up", "to": "down", "reason": "connect: connection refused", "latency_ms": "1.3", "weight": "removed",
            "operations": "1", "failures": "0",
        ])
        XCTAssertEqual(HealthLoop.metadata(transition, overlay: HealthOverlay(adjustments: [backend: .weight(4)]),
                                           report: ReconcileReport())["weight"], "4")
        XCTAssertEqual(HealthLoop.metadata(transition, overlay: HealthOverlay(), report: ReconcileReport())["weight"], "configured")
    }

    func testAnUpdateLooksOnlyAtTheChangedServices() throws {
        func mapped(_ name: String, _ ip: String, _ pods: [IPAddress]) -> [ServiceKey: DesiredService] {
            let service = KubeService(name: ObjectName(namespace: "default", name: name), clusterIPs: [IPAddress(ip)!],
                                      ports: [ServicePort(name: "http", port: 80, targetPort: .number(8080))])
            let slice = EndpointSlice(name: ObjectName(namespace: "default", name: name + "-a"), serviceName: name, addressFamily: .inet,
                                      endpoints: pods.map { Endpoint(addresses: [$0]) }, ports: [EndpointPort(name: "http", port: 8080)])
            return ServiceMapper.map(service, slices: [slice], options: MappingOptions(health: .default)).services
        }
        let api = ServiceKey.address(.tcp, IPAddress("10.96.0.11")!, port: 80)
        let link = HealthLink(checker: HealthChecker(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test")))
        func checked() -> Set<BackendID> { Set(link.checker.status().map(\.backend)) }

        var services = mapped("web", "10.96.0.10", [pod.address]).merging(mapped("api", "10.96.0.11", [pod.address])) { a, _ in a }
        link.update(DesiredState(services: services), logger: Logger(label: "test"))
        XCTAssertEqual(checked(), [BackendID(service: web, server: pod), BackendID(service: api, server: pod)])

        services.merge(mapped("web", "10.96.0.10", [pod.address, other.address])) { _, new in new }
        link.update(DesiredState(services: services), changed: [web], logger: Logger(label: "test"))
        XCTAssertEqual(checked(), [BackendID(service: web, server: pod), BackendID(service: web, server: other), BackendID(service: api, server: pod)])

        services[api] = nil
        link.update(DesiredState(services: services), changed: [], logger: Logger(label: "test"))
        XCTAssertEqual(checked().count, 3, "a Service not named as changed is not looked at")
        link.update(DesiredState(services: services), changed: [api], logger: Logger(label: "test"))
        XCTAssertEqual(checked(), [BackendID(service: web, server: pod), BackendID(service: web, server: other)])
        link.update(DesiredState(), logger: Logger(label: "test"))
        XCTAssertEqual(checked(), [], "no changed set: every Service")
    }

    func testAnnotationsTurnChecksOnAndTargetsFollowTheEndpoints() throws {
        var service = KubeService(name: ObjectName(namespace: "default", name: "web"), clusterIPs: [IPAddress("10.96.0.10")!],
                                  ports: [ServicePort(name: "http", port: 80, targetPort: .number(8080))])
        let slice = EndpointSlice(name: ObjectName(namespace: "default", name: "web-a"), serviceName: "web", addressFamily: .inet,
                                  endpoints: [Endpoint(addresses: [pod.address])], ports: [EndpointPort(name: "http", port: 8080)])
        XCTAssertNil(ServiceMapper.map(service, slices: [slice], options: MappingOptions()).services[web]?.health,
                     "no checks without an annotation or --health-check")

        service.annotations = ["ipvs.swift.dev/health-check": "tcp", "ipvs.swift.dev/health-interval": "500ms"]
        let mapping = ServiceMapper.map(service, slices: [slice], options: MappingOptions())
        XCTAssertEqual(mapping.issues, [])
        let health = try XCTUnwrap(mapping.services[web]?.health)
        XCTAssertEqual(health.interval, .milliseconds(500))
        let targets = HealthLink.targets(of: DesiredState(services: mapping.services))
        XCTAssertEqual(targets.map(\.id), [BackendID(service: web, server: pod)])
        XCTAssertEqual(targets.first?.serviceName, "default/web:http")

        service.annotations = ["ipvs.swift.dev/health-check": "tcp", "ipvs.swift.dev/health-interval": "fast"]
        let bad = ServiceMapper.map(service, slices: [slice], options: MappingOptions())
        XCTAssertNil(bad.services[web]?.health)
        XCTAssertEqual(bad.issues.count, 1)
        XCTAssertTrue(bad.issues.first?.description.contains("health-interval") == true, "\(bad.issues)")
        XCTAssertNotNil(bad.services[web], "a bad health annotation does not take the Service down")

        // Settings without a check (none here, none by default) would silently do nothing: a problem.
        service.annotations = ["ipvs.swift.dev/health-fall": "3", "ipvs.swift.dev/health-interval": "2s"]
        let unused = ServiceMapper.map(service, slices: [slice], options: MappingOptions())
        XCTAssertNil(unused.services[web]?.health)
        XCTAssertNotNil(unused.services[web])
        XCTAssertEqual(unused.issues.map(\.field), ["metadata.annotations[ipvs.swift.dev/health-fall]"])
        XCTAssertTrue(unused.issues.first?.message.hasPrefix("has no effect: no health check applies to this Service") == true, "\(unused.issues)")
        // With a default check they tune it; with an explicit health-check: none they are switched off on purpose.
        let tuned = ServiceMapper.map(service, slices: [slice], options: MappingOptions(health: .default))
        XCTAssertEqual(tuned.issues, [])
        XCTAssertEqual(tuned.services[web]?.health?.interval, .seconds(2))
        service.annotations = ["ipvs.swift.dev/health-check": "none", "ipvs.swift.dev/health-interval": "2s"]
        XCTAssertEqual(ServiceMapper.map(service, slices: [slice], options: MappingOptions()).issues, [])
    }
}
