import Foundation
import IPVS
import Logging
import PacketFilter
import TestSupport
import XCTest
@testable import IPVSAgent

/// A change to one endpoint in one file, from the files to the kernel: only that Service is
/// mapped again, and only that endpoint's operation reaches the kernel.
final class IncrementalReloadTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("incremental-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    /// A Service `svc-N` on 10.96.0.N:80 with one slice of `pods` endpoints (10.244.N.x:8080), for
    /// N below 250; from 250 on, the next /24 of 10.96 and the next /16 of pods. The pods run on
    /// node-1.
    func service(_ index: Int, pods: Int) -> String {
        let endpoints = (1...pods).map { "- addresses: [10.\(244 + index / 250).\(index % 250).\($0)]\n  nodeName: node-1\n" }.joined()
        return """
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: svc-\(index), namespace: bench}
            spec: {clusterIP: 10.96.\(index / 250).\(index % 250), ports: [{name: http, port: 80, targetPort: 8080}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: svc-\(index)-a, namespace: bench, labels: {kubernetes.io/service-name: svc-\(index)}}
            addressType: IPv4
            endpoints:
            \(endpoints)ports: [{name: http, port: 8080}]

            """
    }

    func write(_ name: String, _ services: [(index: Int, pods: Int)]) throws {
        let text = services.map { service($0.index, pods: $0.pods) }.joined()
        try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func name(_ index: Int) -> ObjectName { ObjectName(namespace: "bench", name: "svc-\(index)") }

    func testOneEndpointChangeRemapsOneServiceAndAppliesOneOperation() async throws {
        try write("a.yaml", [(1, 2), (2, 2), (3, 2)])
        try write("b.yaml", [(4, 2), (5, 2)])
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        var builder = DesiredStateBuilder(options: MappingOptions())
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()

        var snapshot = source.loadNow()
        var build = builder.build(snapshot)
        XCTAssertNil(build.changed) // The first build: everything.
        XCTAssertEqual(build.remapped.count, 5)
        XCTAssertEqual(build.realServerCount, 10)
        await reconciler.reconcile(build.state, changed: build.changed)
        XCTAssertEqual(ipvs.state.realServerCount, 10)
        XCTAssertEqual(vips.interfaces["kube-ipvs0"]?.count, 5)

        // One endpoint more for svc-2, in a.yaml only.
        try write("a.yaml", [(1, 2), (2, 3), (3, 2)])
        ipvs.applied = []
        vips.changes = []
        snapshot = await source.load(changed: [folder.appendingPathComponent("a.yaml").path])
        XCTAssertEqual(snapshot.changedServices, [name(2)])
        build = builder.build(snapshot)
        XCTAssertEqual(build.remapped, [name(2)])
        XCTAssertEqual(build.changed, [tcp("10.96.0.2", 80)])
        XCTAssertEqual(build.realServerCount, 11)
        var fresh = DesiredStateBuilder(options: MappingOptions())
        XCTAssertEqual(build.state, fresh.build(snapshot.objects).state)
        let report = await reconciler.reconcile(build.state, changed: build.changed)
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(ipvs.applied, [.addRealServer(server("10.244.2.3", 8080), service: tcp("10.96.0.2", 80))])
        XCTAssertEqual(vips.changes, [])

        // Every file read again (SIGHUP) with nothing changed: nothing mapped, nothing applied.
        ipvs.applied = []
        snapshot = await source.load(changed: nil)
        XCTAssertEqual(snapshot.changedServices, [])
        build = builder.build(snapshot)
        XCTAssertEqual(build.remapped, [])
        XCTAssertEqual(build.changed, [])
        await reconciler.reconcile(build.state, changed: build.changed)
        XCTAssertEqual(ipvs.applied, [])
    }

    func testServicesMovingBetweenFilesAndFilesGoingAway() async throws {
        try write("a.yaml", [(1, 1), (2, 1)])
        try write("b.yaml", [(3, 1)])
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        var builder = DesiredStateBuilder(options: MappingOptions())
        _ = builder.build(source.loadNow())

        // svc-2 moves from a.yaml to b.yaml unchanged: both files changed, the state did not.
        try write("a.yaml", [(1, 1)])
        try write("b.yaml", [(3, 1), (2, 1)])
        var snapshot = await source.load(changed: nil)
        var build = builder.build(snapshot)
        XCTAssertEqual(build.changed, [])
        XCTAssertEqual(build.state.services.count, 3)

        // b.yaml deleted: its Services go, and only their keys are reported.
        try FileManager.default.removeItem(at: folder.appendingPathComponent("b.yaml"))
        snapshot = await source.load(changed: [folder.appendingPathComponent("b.yaml").path])
        XCTAssertEqual(snapshot.changedServices, [name(2), name(3)])
        build = builder.build(snapshot)
        XCTAssertEqual(build.changed, [tcp("10.96.0.2", 80), tcp("10.96.0.3", 80)])
        XCTAssertEqual(build.state.addresses, [ip("10.96.0.1")])
        XCTAssertEqual(build.realServerCount, 1)
        var fresh = DesiredStateBuilder(options: MappingOptions())
        XCTAssertEqual(build.state, fresh.build(snapshot.objects).state)
    }

    func testASnapshotFromAnotherSourceOrASkippedOneIsBuiltInFull() async throws {
        try write("a.yaml", [(1, 1), (2, 1)])
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        var builder = DesiredStateBuilder(options: MappingOptions())
        _ = builder.build(source.loadNow())
        try write("a.yaml", [(1, 2), (2, 2)])
        _ = source.loadNow() // Not given to the builder: the next snapshot's changes are not relative to its state.
        try write("a.yaml", [(1, 2), (2, 3)])
        let snapshot = source.loadNow()
        XCTAssertEqual(snapshot.changedServices, [name(2)])
        let build = builder.build(snapshot)
        XCTAssertEqual(build.remapped, [name(1), name(2)])
        XCTAssertEqual(build.realServerCount, 5)
    }

    /// A cold build of 600 Services gives the state, issues and counts of a build made 100
    /// Services at a time (each step maps only the new ones).
    func testAColdBuildEqualsOneMadeInSteps() throws {
        let text = (1...600).map { service($0, pods: 3) }.joined()
        let decoding = ManifestDecoder.decode(text, file: "many.yaml")
        XCTAssertEqual(decoding.issues, [])
        XCTAssertEqual(decoding.objects.count, 1200)

        // 600 Services at once are mapped on every core, 100 at a time on the caller's thread: the
        // two ways must agree.
        XCTAssert((101...600).contains(DesiredStateBuilder.parallelMappingMinimum))
        var cold = DesiredStateBuilder(options: MappingOptions())
        let all = cold.build(decoding.objects)
        XCTAssertEqual(all.remapped.count, 600)
        XCTAssertEqual(all.realServerCount, 1800)

        var stepwise = DesiredStateBuilder(options: MappingOptions())
        var build = stepwise.build([])
        for end in stride(from: 200, through: 1200, by: 200) {
            build = stepwise.build(Array(decoding.objects[..<end]))
            XCTAssertEqual(build.remapped.count, 100)
        }
        XCTAssertEqual(build.state, all.state)
        XCTAssertEqual(build.issues, all.issues)
        XCTAssertEqual(build.realServerCount, all.realServerCount)
    }
}

extension IncrementalReloadTests {
    /// The nftables table's parts after a one-endpoint change: only the changed Service's part is
    /// mapped again (not every Service's), and it holds the new endpoint.
    func testOneEndpointChangeMapsOnlyThatServicesPacketFilterPart() async throws {
        try write("a.yaml", [(1, 2), (2, 2), (3, 2)])
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        var builder = DesiredStateBuilder(options: MappingOptions(nodeName: "node-1"))
        let options = PacketFilterOptions(clusterPrefixes: [AddressPrefix("10.244.0.0/14")!])
        _ = builder.build(source.loadNow())
        let first = PacketFilterMapper.parts(of: builder, names: builder.takeChangedServices(for: .packetFilter), options: options)
        XCTAssertEqual(Set(first.keys), ["--cluster-cidr", "bench/svc-1", "bench/svc-2", "bench/svc-3"])

        try write("a.yaml", [(1, 2), (2, 3), (3, 2)])
        _ = builder.build(await source.load(changed: [folder.appendingPathComponent("a.yaml").path]))
        let changed = PacketFilterMapper.parts(of: builder, names: builder.takeChangedServices(for: .packetFilter), options: options)
        XCTAssertEqual(Set(changed.keys), ["bench/svc-2"])
        XCTAssertEqual(changed["bench/svc-2"]?.hairpin.count, 3)
        XCTAssertEqual(changed["bench/svc-2"]?.guardedAddresses, [ip("10.96.0.2")])
        // Nothing changed since: nothing to map.
        XCTAssertEqual(PacketFilterMapper.parts(of: builder, names: builder.takeChangedServices(for: .packetFilter), options: options).count, 0)
    }
}
