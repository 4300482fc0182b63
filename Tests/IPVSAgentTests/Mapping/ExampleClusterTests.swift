import Foundation
import IPVS
import Logging
import TestSupport
import XCTest
@testable import IPVSAgent

/// `Examples/cluster.yaml`, which the README tells users to try, decodes and maps without a problem.
final class ExampleClusterTests: XCTestCase {
    static let example = repositoryPath("Examples/cluster.yaml")

    func testTheExampleClusterMapsWithoutProblems() throws {
        let source = ManifestSource(paths: [Self.example], logger: Logger(label: "test"))
        let snapshot = source.loadNow()
        XCTAssertEqual(snapshot.issues, [])
        var builder = DesiredStateBuilder(options: MappingOptions(nodeName: "node-1", nodeAddresses: [ip("10.0.0.4")]))
        let build = builder.build(snapshot)
        XCTAssertEqual(build.issues, [])
        let services = build.state.services
        func servers(_ key: ServiceKey) -> Set<String> { Set(services[key]?.realServers.values.map(\.id.description) ?? []) }

        // DNS over UDP and TCP.
        XCTAssertEqual(servers(udp("10.96.0.10", 53)), ["10.244.1.10:53", "10.244.2.10:53"])
        XCTAssertEqual(servers(tcp("10.96.0.10", 53)), ["10.244.1.10:53", "10.244.2.10:53"])
        // A named target port resolved through the slices, both families, the pod not ready left out.
        XCTAssertEqual(servers(tcp("10.96.10.1", 80)), ["10.244.1.21:8080", "10.244.2.22:8080"])
        XCTAssertEqual(servers(tcp("fd00:96::a01", 80)), ["[fd00:244:1::21]:8080"])
        // A NodePort on the node address.
        XCTAssertEqual(servers(tcp("10.0.0.4", 30080)), ["10.244.1.21:8080", "10.244.2.22:8080"])
        // Session affinity -> persistence; the scheduler and its flags per annotation.
        let cart = try XCTUnwrap(services[tcp("10.96.10.2", 9000)]?.service)
        XCTAssertEqual(cart.persistence?.timeout, 1800)
        XCTAssertEqual(cart.scheduler, .maglevHashing)
        XCTAssertEqual(cart.flags, [.mhFallback, .mhPort])
        // SCTP with source hashing and its flags.
        let diameter = try XCTUnwrap(services[.address(.sctp, ip("10.96.20.1"), port: 3868)]?.service)
        XCTAssertEqual(diameter.scheduler, .sourceHashing)
        XCTAssertEqual(diameter.flags, [.shFallback, .shPort])
        // externalTrafficPolicy: Local keeps this node's pods for the external addresses only.
        XCTAssertEqual(servers(tcp("10.100.0.30", 443)), ["10.244.1.41:8443"])
        XCTAssertEqual(servers(tcp("10.96.10.3", 443)), ["10.244.1.41:8443", "10.244.2.42:8443"])
        // ExternalName maps to nothing; the Deployment is ignored.
        XCTAssertFalse(build.state.services.values.contains { $0.origin.name == "docs" })
    }
}
