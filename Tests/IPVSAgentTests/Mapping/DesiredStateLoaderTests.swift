import Foundation
import IPVS
import TestSupport
import Logging
import Synchronization
import XCTest
@testable import IPVSAgent

/// The one load step of every mode (`DesiredStateLoader`), over the files and over another source.
final class DesiredStateLoaderTests: XCTestCase {
    /// A source of desired state that is not files (as the API server will be): one snapshot, no
    /// decoded parts handed out.
    struct FixedSource: DesiredStateSource {
        let snapshot: SourceSnapshot
        func load() async -> SourceSnapshot { snapshot }
    }

    static let objects = ManifestDecoder.decode("""
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: ns}
        spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 80, targetPort: 8080}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-a, namespace: ns, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        endpoints: [{addresses: [10.244.1.1]}]
        ports: [{name: http, port: 8080}]
        """, file: "api").objects

    /// Another source plugs in beside the files: the same step maps it, reports its problems and
    /// turns what it cannot read into a hold; the reconcile programs it.
    func testAnotherSourceLoadsThroughTheSameStep() async throws {
        var snapshot = SourceSnapshot(objects: Self.objects, heldServices: [ObjectName(namespace: "ns", name: "db")])
        snapshot.issues = [ManifestIssue(file: "api", line: 1, field: "spec", message: "bad")]
        var loader = DesiredStateLoader(source: FixedSource(snapshot: snapshot), options: MappingOptions(), logger: Logger(label: "test"))
        let ipvs = FakeIPVS()
        let reconciler = Reconciler(ipvs: ipvs, vips: nil, store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        let basis = await reconciler.coldStartBasis()
        let coldStart = ColdStart(try XCTUnwrap(basis), ipvs: ipvs, vips: nil, options: MappingOptions())
        let loaded = await loader.load(reason: "test", coldStart: coldStart)

        XCTAssertEqual(Set(loaded.build.state.services.keys), [tcp("10.96.0.1", 80)])
        XCTAssertEqual(loaded.issues.map(\.field), ["spec"])
        XCTAssertEqual(loaded.hold, Reconciler.Hold(services: [ObjectName(namespace: "ns", name: "db")]))
        // The source handed out no decoded part: the cold start did nothing, the reconcile does it all.
        let result = try XCTUnwrap(loaded.coldStart)
        XCTAssertEqual(result.programmed.applied, 0)
        XCTAssertTrue(result.bound.isEmpty)
        XCTAssertEqual(ipvs.applied, [])
        let report = await reconciler.reconcile(loaded.build.state, changed: nil, hold: loaded.hold, coldStart: result)
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.applied, 2)
        XCTAssertEqual(ipvs.state.services[tcp("10.96.0.1", 80)]?.realServers.keys.map(\.address), [ip("10.244.1.1")])
    }

    /// The builder takes a cold start's mappings only when they were made with its own options (the
    /// API server's Node may give a zone after the cold start began): else it maps every Service.
    func testColdStartMappingsAreTakenOnlyWithTheSameOptions() async throws {
        for (coldOptions, remapped) in [(MappingOptions(), 0), (MappingOptions(zone: "zone-a"), 1)] {
            let ipvs = FakeIPVS()
            let reconciler = Reconciler(ipvs: ipvs, vips: nil, store: nil, options: .init(), logger: Logger(label: "test"))
            try await reconciler.start()
            let basis = await reconciler.coldStartBasis()
            let coldStart = ColdStart(try XCTUnwrap(basis), ipvs: ipvs, vips: nil, options: coldOptions)
            coldStart.program(Self.objects)
            var loader = DesiredStateLoader(source: FixedSource(snapshot: SourceSnapshot(objects: Self.objects)), options: MappingOptions(),
                                            logger: Logger(label: "test"))
            let loaded = await loader.load(reason: "test", coldStart: coldStart)
            XCTAssertEqual(loaded.build.remapped.count, remapped, "cold start mapped with \(coldOptions)")
            XCTAssertEqual(Set(loaded.build.state.services.keys), [tcp("10.96.0.1", 80)])
        }
    }
}

/// The worker thread of `AddressBinding` and `EarlyProgramming`.
final class WorkerThreadTests: XCTestCase {
    /// Every item handed over is worked on once, in order, and nothing is taken after `results()`.
    func testWorksThroughEveryItemAndTakesNoneAfterTheResults() {
        let worker = WorkerThread<Int, [Int]>(name: "test") { batch in batch.map { $0 * 10 } }
        for item in 1...5 { XCTAssertTrue(worker.add { $0.append(item) }) }
        XCTAssertTrue(worker.add { $0 += [6, 7] })
        XCTAssertEqual(Array(worker.results().joined()), [10, 20, 30, 40, 50, 60, 70])
        XCTAssertFalse(worker.add { $0.append(8) })
        XCTAssertEqual(Array(worker.results().joined()), [10, 20, 30, 40, 50, 60, 70])
    }

    func testResultsWithNothingHandedOver() {
        let worker = WorkerThread<Int, Int>(name: "test") { $0.count }
        XCTAssertEqual(worker.results(), [])
    }
}
