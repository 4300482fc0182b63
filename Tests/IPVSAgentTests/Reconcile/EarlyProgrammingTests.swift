import Foundation
import IPVS
import Logging
import TestSupport
import XCTest
@testable import IPVSAgent

/// IPVS programmed while the manifests of a first start are still decoded (`ColdStart`,
/// `EarlyProgramming`), and the first reconcile taking over what it did.
final class EarlyProgrammingTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ipvs-agent-early-programming-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func service(_ index: Int, port: Int = 80, annotations: String = "{}") -> String {
        """
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: svc-\(index), namespace: ns, annotations: \(annotations)}
        spec: {clusterIP: 10.96.0.\(index), ports: [{name: http, port: \(port), targetPort: 8080}]}

        """
    }

    func slice(_ index: Int, _ suffix: String, pods: [Int]) -> String {
        """
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: svc-\(index)-\(suffix), namespace: ns, labels: {kubernetes.io/service-name: svc-\(index)}}
        addressType: IPv4
        endpoints: [\(pods.map { "{addresses: [10.244.\(index).\($0)]}" }.joined(separator: ", "))]
        ports: [{name: http, port: 8080}]

        """
    }

    func write(_ name: String, _ parts: String...) throws {
        try parts.joined().write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    /// What every mode does on a first start (`DesiredStateLoader`): the load hands each decoded
    /// file to the cold start, the builder takes the mappings made, and the reconcile takes over
    /// what the cold start did.
    func firstStart(_ ipvs: FakeIPVS, store: OwnershipStore? = nil) async throws -> (ReconcileReport, DesiredState, [ManifestIssue]) {
        let reconciler = Reconciler(ipvs: ipvs, vips: nil, store: store, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        let basis = await reconciler.coldStartBasis()
        let coldStart = ColdStart(try XCTUnwrap(basis), ipvs: ipvs, vips: nil, options: MappingOptions())
        var loader = DesiredStateLoader(source: ManifestSource(paths: [folder.path], logger: Logger(label: "test")),
                                        options: MappingOptions(), logger: Logger(label: "test"))
        let loaded = await loader.load(reason: "test", owners: await reconciler.owners, coldStart: coldStart)
        XCTAssertNotNil(loaded.coldStart)
        let report = await reconciler.reconcile(loaded.build.state, changed: nil, hold: loaded.hold, coldStart: loaded.coldStart)
        // Only the first load of a start has a cold start.
        let later = await reconciler.coldStartBasis()
        XCTAssertNil(later)
        return (report, loaded.build.state, loaded.issues)
    }

    /// The kernel's table as desired services (without origins), to compare with the desired state.
    func table(_ ipvs: FakeIPVS) -> [ServiceKey: [RealServerID: RealServer]] {
        ipvs.state.services.mapValues(\.realServers)
    }

    func testAddsWhileDecodingAndTheReconcileAddsOnlyWhatIsLeft() async throws {
        // svc-2's endpoints are in another file than its Service object: added by the reconcile.
        try write("a.yaml", service(1), slice(1, "a", pods: [1, 2]), service(2))
        try write("b.yaml", service(3), slice(3, "a", pods: [1]), slice(2, "a", pods: [7, 8]))
        let ipvs = FakeIPVS()
        let store = OwnershipStore(path: folder.appendingPathComponent("state.json").path)
        let (report, state, issues) = try await firstStart(ipvs, store: store)

        XCTAssertEqual(issues, [])
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(table(ipvs), state.services.mapValues(\.realServers))
        XCTAssertEqual(state.services.count, 3)
        // Every operation once, none refused: 3 services and 5 real servers.
        XCTAssertEqual(ipvs.applied.count, 8)
        XCTAssertEqual(report.applied, 8)
        // The reconcile's own operations come last: svc-2's two real servers, nothing else.
        XCTAssertEqual(Array(ipvs.applied.suffix(2)), [
            .addRealServer(server("10.244.2.7", 8080), service: tcp("10.96.0.2", 80)),
            .addRealServer(server("10.244.2.8", 8080), service: tcp("10.96.0.2", 80)),
        ])
        XCTAssertFalse(ipvs.applied.dropLast(2).contains { if case .addRealServer(_, tcp("10.96.0.2", 80)) = $0 { true } else { false } })
        // What was added early is owned, with its Service.
        let owned = try store.load()
        XCTAssertEqual(owned.services, Set(state.services.keys))
        XCTAssertEqual(owned.origins[tcp("10.96.0.1", 80)], ObjectName(namespace: "ns", name: "svc-1"))
    }

    /// Every virtual service programmed early is claimed in the state file (with its Service)
    /// before it is added, so a `kill -9` between the two leaks nothing.
    func testEveryServiceIsClaimedInTheStateFileBeforeItIsAdded() async throws {
        try write("a.yaml", service(1), slice(1, "a", pods: [1, 2]), service(2))
        try write("b.yaml", service(3), slice(3, "a", pods: [1]))
        let ipvs = FakeIPVS()
        let path = folder.appendingPathComponent("state.json").path
        let unclaimed = EarlyBindingTests.Unclaimed()
        ipvs.beforeApply = { operations in
            let recorded = try? OwnershipStore(path: path).load()
            for case .addService(let service) in operations
            where recorded?.claimedServices.contains(service.key) != true || recorded?.origins[service.key] == nil {
                unclaimed.items.withLock { $0.append("\(service.key)") }
            }
        }
        let (report, state, _) = try await firstStart(ipvs, store: OwnershipStore(path: path))
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(state.services.count, 3)
        XCTAssertEqual(unclaimed.items.withLock { $0 }, [])
        let recorded = try OwnershipStore(path: path).load()
        XCTAssertEqual(recorded.services, Set(state.services.keys))
        XCTAssertEqual(recorded.claimedServices, [])
    }

    /// A service one of whose operations failed early is recorded operation by operation: what the
    /// kernel accepted is not added again, and what it refused is tried again and reported.
    func testWhatTheKernelRefusedEarlyIsTriedAgainAndReported() async throws {
        try write("a.yaml", service(1), slice(1, "a", pods: [1, 2, 3]), service(2), slice(2, "a", pods: [1]))
        let ipvs = FakeIPVS()
        ipvs.failing = { operation in
            guard case .addRealServer(let server, _) = operation, server.address == ip("10.244.1.2") else { return nil }
            return IPVSError(kind: .invalidArgument, operation: operation.description) // as the kernel refuses an invalid address
        }
        let (report, _, _) = try await firstStart(ipvs)

        XCTAssertEqual(report.failures.count, 1)
        XCTAssertTrue(report.failures.first?.contains("10.244.1.2") == true, report.failures.first ?? "")
        let refused = IPVSOperation.addRealServer(server("10.244.1.2", 8080), service: tcp("10.96.0.1", 80))
        XCTAssertEqual(ipvs.applied.filter { $0 == refused }.count, 2) // Early, then by the reconcile.
        XCTAssertEqual(ipvs.applied.count, 6 + 1) // 2 services and 4 real servers, then the retry.
        XCTAssertEqual(report.applied, 5)
        XCTAssertEqual(Set(ipvs.state.services[tcp("10.96.0.1", 80)]?.realServers.keys.map(\.address) ?? []),
                       [ip("10.244.1.1"), ip("10.244.1.3")])
    }

    /// A virtual service the state file records for another Service (missing from the kernel, say
    /// deleted by hand) is not added early for the Service now claiming it: the owner keeps it
    /// (`ClaimPrecedence`), and the loser's real servers never get its traffic, even briefly.
    func testAVirtualServiceOwnedByAnotherServiceIsLeftToTheReconcile() throws {
        let ipvs = FakeIPVS()
        let owner = ObjectName(namespace: "ns", name: "svc-9")
        let programming = EarlyProgramming(ipvs, present: [], owners: [tcp("10.96.0.1", 80): owner, tcp("10.96.0.2", 80): owner],
                                           options: MappingOptions())
        programming.add(ManifestDecoder.decode(service(1) + slice(1, "a", pods: [1]) + service(2), file: "a.yaml").objects)
        XCTAssertEqual(programming.results().applied, 0)
        XCTAssertEqual(ipvs.applied, [])
        XCTAssertEqual(Set(programming.mappings().keys.map(\.name)), ["svc-1", "svc-2"])
    }

    /// Files decoded after the cold start finished are left to the reconcile: neither added nor bound.
    func testAFileDecodedAfterTheColdStartFinishedIsLeftToTheReconcile() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        let basis = await reconciler.coldStartBasis()
        let coldStart = ColdStart(try XCTUnwrap(basis), ipvs: ipvs, vips: vips, options: MappingOptions())
        let result = coldStart.finish()
        XCTAssertEqual(result.programmed.applied, 0)
        XCTAssertTrue(result.bound.isEmpty)
        coldStart.decoded(ManifestDecoder.decode(service(1) + slice(1, "a", pods: [1]), file: "late.yaml").objects)
        XCTAssertEqual(ipvs.applied, [])
        XCTAssertEqual(vips.changes, [])
        XCTAssertTrue(coldStart.mappings().isEmpty)
    }

    /// A second Service object of a name, in another file, loses to the first (`ClaimPrecedence`):
    /// what the early programming added for it (port 81, whichever file decodes first) is undone by
    /// the reconcile, and the first object's service keeps its real servers.
    func testWhatAServiceObjectThatLostAddedIsUndoneByTheReconcile() async throws {
        try write("a.yaml", service(1), slice(1, "a", pods: [1, 2]))
        try write("b.yaml", service(1, port: 81), slice(1, "b", pods: [3]))
        let ipvs = FakeIPVS()
        let store = OwnershipStore(path: folder.appendingPathComponent("state.json").path)
        let (report, state, issues) = try await firstStart(ipvs, store: store)

        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(Set(state.services.keys), [tcp("10.96.0.1", 80)])
        XCTAssertEqual(state.services[tcp("10.96.0.1", 80)].map { Set($0.realServers.keys.map(\.address)) }, [ip("10.244.1.1"), ip("10.244.1.2")])
        XCTAssertEqual(table(ipvs), state.services.mapValues(\.realServers))
        XCTAssertEqual(try store.load().services, [tcp("10.96.0.1", 80)])
        XCTAssertEqual(issues.map(\.file), [folder.appendingPathComponent("b.yaml").path])
    }

    func testServicesInTheKernelAtStartAreLeftToTheReconcile() async throws {
        try write("a.yaml", service(1), slice(1, "a", pods: [1]), service(2), slice(2, "a", pods: [1]))
        let ipvs = FakeIPVS()
        // From an earlier run (or someone else): another scheduler and another real server.
        ipvs.state.services[tcp("10.96.0.1", 80)] = KernelState.Entry(
            service: VirtualService(key: tcp("10.96.0.1", 80), scheduler: .weightedLeastConnection),
            realServers: [server("10.244.1.99", 8080).id: server("10.244.1.99", 8080)])
        let (report, state, _) = try await firstStart(ipvs)

        XCTAssertEqual(report.failures, [])
        // The real server no endpoint has any more drains (weight 0), as after any restart.
        var expected = state.services.mapValues(\.realServers)
        expected[tcp("10.96.0.1", 80)]?[server("10.244.1.99", 8080).id] = server("10.244.1.99", 8080, weight: 0)
        XCTAssertEqual(table(ipvs), expected)
        XCTAssertEqual(ipvs.state.services[tcp("10.96.0.1", 80)]?.service.scheduler, .roundRobin)
        // Adopted and edited in place by the reconcile, never added (which the kernel would refuse).
        XCTAssertFalse(ipvs.applied.contains(.addService(VirtualService(key: tcp("10.96.0.1", 80), scheduler: .roundRobin))))
        XCTAssertTrue(ipvs.applied.contains(.updateService(VirtualService(key: tcp("10.96.0.1", 80), scheduler: .roundRobin))))
    }

    /// The builder reuses the mappings made early only where the whole load has the same objects:
    /// its state and problems are those of a build without them.
    func testTheFirstBuildWithTheEarlyMappingsIsTheBuildWithout() async throws {
        try write("a.yaml", service(1), slice(1, "a", pods: [1, 2]), service(2),
                  // A mapping problem (a flag rr does not take), reported once either way.
                  service(4, annotations: "{ipvs.swift.dev/scheduler-flags: sh-port}"), slice(4, "a", pods: [1]))
        try write("b.yaml", slice(2, "a", pods: [5]), service(3), slice(3, "a", pods: [1]), service(1, port: 8081))
        let ipvs = FakeIPVS()
        let (_, state, issues) = try await firstStart(ipvs)

        var plain = DesiredStateBuilder(options: MappingOptions())
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        let snapshot = source.loadNow()
        let build = plain.build(snapshot)
        XCTAssertEqual(state, build.state)
        XCTAssertEqual(issues, snapshot.issues + build.issues)
        // The flag, and b.yaml's second Service object of svc-1.
        XCTAssertEqual(issues.count, 2)
        XCTAssertEqual(issues.filter { $0.description.contains("sh-port") || $0.description.contains("flags") }.count, 1, "\(issues)")
        XCTAssertEqual(issues.filter { $0.field == "metadata.name" && $0.file.hasSuffix("b.yaml") }.count, 1, "\(issues)")
    }
}
