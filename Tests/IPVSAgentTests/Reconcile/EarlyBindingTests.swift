import Foundation
import IPVS
import Logging
import Synchronization
import TestSupport
import XCTest
@testable import IPVSAgent

/// VIPs bound while the manifests of a first start are still decoded (`ColdStart`,
/// `AddressBinding`), and the first reconcile taking over what was bound.
final class EarlyBindingTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ipvs-agent-early-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func makeReconciler(_ ipvs: FakeIPVS, _ vips: FakeVIPs) -> Reconciler {
        Reconciler(ipvs: ipvs, vips: vips, store: OwnershipStore(path: folder.appendingPathComponent("state.json").path),
                   options: .init(interface: "kube-ipvs0"), logger: Logger(label: "test"))
    }

    /// A cold start of `reconciler`, over the same fake kernel (its own socket, on a node).
    func coldStart(_ reconciler: Reconciler, _ ipvs: FakeIPVS, _ vips: FakeVIPs) async throws -> ColdStart {
        let basis = await reconciler.coldStartBasis()
        return ColdStart(try XCTUnwrap(basis), ipvs: ipvs, vips: vips, options: MappingOptions())
    }

    /// Decoded Service objects with these cluster IPs (port 80, no endpoints), as a file hands them over.
    func services(_ addresses: [String]) -> [ManifestObject] {
        ManifestDecoder.decode(addresses.map { address in
            """
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: svc-\(address.replacingOccurrences(of: ".", with: "-")), namespace: ns}
            spec: {clusterIP: \(address), ports: [{port: 80}]}

            """
        }.joined(), file: "a.yaml").objects
    }

    func state(_ addresses: [String]) -> DesiredState {
        var state = DesiredState()
        for address in addresses {
            let key = tcp(address, 80)
            state.services[key] = desired(key, [server("10.244.1.5", 8080)])
            state.addresses.insert(ip(address))
        }
        return state
    }

    func testBindsBeforeTheReconcileWhichBindsTheRestAndRemovesWhatNoServiceUses() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let early = try await coldStart(reconciler, ipvs, vips)
        early.decoded(services(["10.96.0.10", "10.96.0.99", "10.96.0.10"]))
        // Bound now, before any reconcile: the binding does not wait for the desired state.
        XCTAssertEqual(vips.bound.wait(timeout: .now() + 5), DispatchTimeoutResult.success)
        XCTAssertEqual(vips.bound.wait(timeout: .now() + 5), DispatchTimeoutResult.success)

        // 10.96.0.99 was handed over from a Service object that the desired state does not use
        // (a later file replaced it); 10.96.0.11 was never handed over.
        let report = await reconciler.reconcile(state(["10.96.0.10", "10.96.0.11"]), changed: nil, hold: .init(),
                                                coldStart: early.finish())
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(vips.changes, ["add 10.96.0.10", "add 10.96.0.99", "add 10.96.0.11", "remove 10.96.0.99"])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10"), ip("10.96.0.11")])
        let owned = try OwnershipStore(path: folder.appendingPathComponent("state.json").path).load()
        XCTAssertEqual(owned.addresses, [ip("10.96.0.10"), ip("10.96.0.11")])
        XCTAssertEqual(Set(ipvs.state.services.keys), [tcp("10.96.0.10", 80), tcp("10.96.0.11", 80)])
        // Only the first load of a start has a cold start.
        let later = await reconciler.coldStartBasis()
        XCTAssertNil(later)
    }

    func testAddressesAlreadyOnTheInterfaceAreNotBoundAgainNorRemoved() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        // One from an earlier run of the agent, one someone else put there.
        vips.interfaces["kube-ipvs0"] = [ip("10.96.0.10"), ip("192.0.2.7")]
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let early = try await coldStart(reconciler, ipvs, vips)
        early.decoded(services(["10.96.0.10", "192.0.2.7"]))
        let report = await reconciler.reconcile(state(["10.96.0.10"]), changed: nil, hold: .init(), coldStart: early.finish())
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(vips.changes, [])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10"), ip("192.0.2.7")])
    }

    /// An address handed over early that the desired state does not use is not worth a failure
    /// when the kernel refuses it; a desired one is.
    func testAFailedEarlyBindingCountsOnlyForDesiredAddresses() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        vips.refused = [ip("10.96.0.99"), ip("10.96.0.11")]
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let early = try await coldStart(reconciler, ipvs, vips)
        early.decoded(services(["10.96.0.10", "10.96.0.99"]))
        let report = await reconciler.reconcile(state(["10.96.0.10", "10.96.0.11"]), changed: nil, hold: .init(),
                                                coldStart: early.finish())
        XCTAssertEqual(report.failures, ["cannot bind 10.96.0.11 on kube-ipvs0: refused 10.96.0.11"])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
    }

    /// A first load of many manifests can outlast `--sync-period`; a verification before the first
    /// reconcile would compare the kernel with an empty desired state and remove what an earlier
    /// run programmed.
    func testVerifyBeforeTheFirstReconcileChangesNothing() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let first = makeReconciler(ipvs, vips)
        try await first.start()
        await first.reconcile(state(["10.96.0.10"]))
        ipvs.applied = []
        vips.changes = []

        let restarted = makeReconciler(ipvs, vips)
        try await restarted.start()
        let report = await restarted.verify()
        XCTAssertEqual(report.applied, 0)
        XCTAssertEqual(ipvs.applied, [])
        XCTAssertEqual(vips.changes, [])
        XCTAssertEqual(Set(ipvs.state.services.keys), [tcp("10.96.0.10", 80)])
    }

    /// Every VIP is claimed in the state file before it is bound, early or by a reconcile, so a
    /// `kill -9` between the two leaks nothing; the saves that record the outcome settle the claims.
    func testEveryVIPIsClaimedInTheStateFileBeforeItIsBound() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let path = folder.appendingPathComponent("state.json").path
        let unclaimed = Unclaimed()
        vips.beforeAdd = { address in
            let recorded = try? OwnershipStore(path: path).load()
            if recorded?.claimedAddresses.contains(address) != true { unclaimed.items.withLock { $0.append("\(address)") } }
        }
        ipvs.beforeApply = { operations in
            let recorded = try? OwnershipStore(path: path).load()
            for case .addService(let service) in operations where recorded?.claimedServices.contains(service.key) != true {
                unclaimed.items.withLock { $0.append("\(service.key)") }
            }
        }
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let early = try await coldStart(reconciler, ipvs, vips)
        early.decoded(services(["10.96.0.10"]))
        // 10.96.0.11 is bound by the reconcile, after the cold start.
        var report = await reconciler.reconcile(state(["10.96.0.10", "10.96.0.11"]), changed: nil, hold: .init(),
                                                coldStart: early.finish())
        XCTAssertEqual(report.failures, [])
        // A later change binds on the reconciler's thread, after the reconcile claimed it.
        report = await reconciler.reconcile(state(["10.96.0.10", "10.96.0.11", "10.96.0.12"]))
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(vips.changes, ["add 10.96.0.10", "add 10.96.0.11", "add 10.96.0.12"])
        XCTAssertEqual(unclaimed.items.withLock { $0 }, [])
        let recorded = try OwnershipStore(path: path).load()
        XCTAssertEqual(recorded.addresses, [ip("10.96.0.10"), ip("10.96.0.11"), ip("10.96.0.12")])
        XCTAssertEqual(recorded.claimedAddresses, [])
        XCTAssertEqual(recorded.claimedServices, [])
    }

    /// A VIP whose claim cannot be written is not bound, and the reconcile says why.
    func testAVIPThatCannotBeClaimedIsNotBound() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        vips.interfaces["kube-ipvs0"] = []
        // The state file's folder is a file: no claim can be written.
        _ = FileManager.default.createFile(atPath: folder.appendingPathComponent("blocked").path, contents: Data())
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: OwnershipStore(path: folder.appendingPathComponent("blocked/state.json").path),
                                    options: .init(interface: "kube-ipvs0"), logger: Logger(label: "test"))
        try await reconciler.start()
        let early = try await coldStart(reconciler, ipvs, vips)
        early.decoded(services(["10.96.0.10"]))
        let report = await reconciler.reconcile(state(["10.96.0.10"]), changed: nil, hold: .init(), coldStart: early.finish())
        XCTAssertEqual(vips.changes, [])
        XCTAssertEqual(ipvs.state.services.count, 0)
        // The cold start could not claim it; the reconcile tries again, and says why it cannot.
        XCTAssertTrue(report.failures.contains { $0.contains("bound no address") && $0.contains("cannot write the state file") },
                      "\(report.failures)")
    }

    final class Unclaimed: Sendable {
        let items = Mutex<[String]>([])
    }

    /// The source tells its handler about each file as it is decoded (files decode on several
    /// threads), and nothing about a file that is not YAML.
    func testManifestSourceHandsOverEachDecodedFile() throws {
        for index in 0..<3 {
            try """
                apiVersion: v1
                kind: Service
                metadata: {name: svc-\(index), namespace: default}
                spec: {clusterIP: 10.96.0.\(index + 1), externalIPs: [192.0.2.\(index + 1)], ports: [{port: 80}]}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: headless-\(index), namespace: default}
                spec: {clusterIP: None, ports: [{port: 80}]}
                """.write(to: folder.appendingPathComponent("svc-\(index).yaml"), atomically: true, encoding: .utf8)
        }
        try "{ not: [yaml".write(to: folder.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
        let seen = Mutex<[IPAddress]>([])
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        let snapshot = source.loadNow { objects in
            seen.withLock { $0 += ServiceMapper.addresses(in: objects, options: MappingOptions()) }
        }
        XCTAssertEqual(snapshot.objects.count, 6)
        XCTAssertEqual(Set(seen.withLock { $0 }), Set((1...3).flatMap { [ip("10.96.0.\($0)"), ip("192.0.2.\($0)")] }))
        XCTAssertEqual(seen.withLock { $0 }.count, 6)
    }
}
