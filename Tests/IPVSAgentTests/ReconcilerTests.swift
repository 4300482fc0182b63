import Foundation
import IPVS
import Logging
import XCTest
@testable import IPVSAgent

final class ReconcilerTests: XCTestCase {
    final class ManualClock: @unchecked Sendable {
        var now = ContinuousClock.now
    }

    var folder: URL!

    override func setUp() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ipvs-agent-\(UUID())")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func makeReconciler(_ ipvs: FakeIPVS, _ vips: FakeVIPs, clock: ManualClock = ManualClock()) -> Reconciler {
        return Reconciler(ipvs: ipvs, vips: vips, store: OwnershipStore(path: folder.appendingPathComponent("state.json").path),
                          options: .init(interface: "kube-ipvs0", drainTimeout: .seconds(30)), logger: Logger(label: "test"),
                          now: { clock.now })
    }

    func web(_ endpoints: [String]) -> DesiredState {
        let key = tcp("10.96.0.10", 80)
        return DesiredState(services: [key: desired(key, endpoints.map { server($0, 8080) })], addresses: [ip("10.96.0.10")])
    }

    func testReconcileRecordsOwnershipAndCleanupRemovesOnlyOwned() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let foreign = VirtualService(key: tcp("192.0.2.1", 80))
        ipvs.state.services[foreign.key] = KernelState.Entry(service: foreign)
        vips.interfaces["kube-ipvs0"] = [ip("192.0.2.1")]
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let report = await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.applied, 4) // VIP, service, two real servers
        let owned = try OwnershipStore(path: folder.appendingPathComponent("state.json").path).load()
        XCTAssertEqual(owned, Ownership(services: [tcp("10.96.0.10", 80)], addresses: [ip("10.96.0.10")],
                                        origins: [tcp("10.96.0.10", 80): ObjectName(namespace: "default", name: "test")]))

        let cleanup = await reconciler.cleanup()
        XCTAssertEqual(cleanup.failures, [])
        XCTAssertEqual(Array(ipvs.state.services.keys), [foreign.key])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("192.0.2.1")])
    }

    func testRestartAdoptsWithoutChangesAndIncrementalChangeIsOneOperation() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        var reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        // A new agent process: same kernel, same state file.
        ipvs.applied = []
        vips.changes = []
        reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let report = await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        XCTAssertEqual(report.applied, 0)
        XCTAssertEqual(ipvs.applied, [])
        XCTAssertEqual(vips.changes, [])
        // One new endpoint, scoped to its service: one operation, no table read.
        let reads = ipvs.tableReads
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6", "10.244.1.7"]), changed: [tcp("10.96.0.10", 80)])
        XCTAssertEqual(ipvs.applied, [.addRealServer(server("10.244.1.7", 8080), service: tcp("10.96.0.10", 80))])
        XCTAssertEqual(ipvs.tableReads, reads)
    }

    func testVerifyRepairsDrift() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5"]))
        ipvs.state.services = [:]                    // ipvsadm -C behind our back
        vips.interfaces["kube-ipvs0"] = []            // and the VIP removed
        let report = await reconciler.verify()
        XCTAssertEqual(report.repairs, 3)
        XCTAssertEqual(ipvs.state.services[tcp("10.96.0.10", 80)]?.realServers.count, 1)
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        let again = await reconciler.verify()
        XCTAssertEqual(again.repairs, 0)
        XCTAssertEqual(again.applied, 0)
    }

    func testVerifyCreatesADeletedInterfaceAgainAndBindsItsVIPs() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        vips.requiresInterface = true
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5"]))
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        vips.interfaces["kube-ipvs0"] = nil           // ip link del kube-ipvs0: the VIPs go with it
        let report = await reconciler.verify()
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.repairs, 2)            // the interface and its VIP
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        let again = await reconciler.verify()
        XCTAssertEqual(again.repairs, 0)
        XCTAssertEqual(again.applied, 0)
    }

    func testDrainWithInjectedClock() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs(), clock = ManualClock()
        let reconciler = makeReconciler(ipvs, vips, clock: clock)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        let key = tcp("10.96.0.10", 80)
        let gone = RealServerID(address: ip("10.244.1.6"), port: 8080)
        ipvs.connections[RealServerRef(service: key, server: gone)] = ConnectionCounts(active: 1)
        await reconciler.reconcile(web(["10.244.1.5"]), changed: [key])
        XCTAssertEqual(ipvs.state.services[key]?.realServers[gone]?.weight, 0)
        var draining = await reconciler.isDraining
        XCTAssertTrue(draining)
        clock.now += .seconds(10)
        await reconciler.checkDrains()
        XCTAssertNotNil(ipvs.state.services[key]?.realServers[gone], "busy and before its deadline")
        clock.now += .seconds(21)
        await reconciler.checkDrains()
        XCTAssertNil(ipvs.state.services[key]?.realServers[gone], "past its deadline")
        draining = await reconciler.isDraining
        XCTAssertFalse(draining)
    }
}

extension ReconcilerTests {
    func testInvalidManifestsHoldTheirServicesInsteadOfRemovingThem() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5"]))
        let web = ObjectName(namespace: "default", name: "test")
        // The Service's object became invalid (so it is missing from the desired state): kept.
        await reconciler.reconcile(DesiredState(), hold: .init(services: [web]))
        XCTAssertEqual(ipvs.state.services[tcp("10.96.0.10", 80)]?.realServers.count, 1)
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        // A file could not be read at all: nothing is removed.
        await reconciler.reconcile(DesiredState(), hold: .init(everything: true))
        XCTAssertNotNil(ipvs.state.services[tcp("10.96.0.10", 80)])
        // Fixed (and the Service really removed): now it goes.
        await reconciler.reconcile(DesiredState())
        XCTAssertNil(ipvs.state.services[tcp("10.96.0.10", 80)])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [])
    }
}

extension ReconcilerTests {
    func testHealthOverlayAdjustsOnlyTheAffectedWeights() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        ipvs.applied = []
        let sick = RealServerID(address: ip("10.244.1.6"), port: 8080)
        await reconciler.setHealth(HealthOverlay(adjustments: [sick: .quiesce]))
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.6", 8080, weight: 0), service: tcp("10.96.0.10", 80))])
        // Healthy again: the configured weight comes back; a new mapping keeps the overlay applied.
        ipvs.applied = []
        await reconciler.setHealth(HealthOverlay())
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.6", 8080), service: tcp("10.96.0.10", 80))])
        await reconciler.setHealth(HealthOverlay(adjustments: [sick: .remove]))
        ipvs.applied = []
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        XCTAssertEqual(ipvs.applied, [])
    }

    func testDryRunChangesNothing() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start(createInterface: false)
        let plan = await reconciler.dryRun(web(["10.244.1.5"]))
        XCTAssertEqual(IPVSSaveFormatter.lines(plan, interface: "kube-ipvs0"), [
            "# ip address add 10.96.0.10/32 dev kube-ipvs0",
            "-A -t 10.96.0.10:80 -s rr",
            "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
        ])
        XCTAssertEqual(ipvs.applied, [])
        XCTAssertEqual(vips.changes, [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("state.json").path))
    }

    /// A large plan binds its VIPs while IPVS is programmed: each side waits for the other to have
    /// started, which one after the other never happens (the first waits out its timeout).
    func testALargePlanBindsVIPsWhileProgrammingIPVS() async throws {
        let ipvs = RendezvousIPVS(FakeIPVS()), vips = RendezvousVIPs(FakeVIPs())
        ipvs.meeting.other = vips.meeting
        vips.meeting.other = ipvs.meeting
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        var state = DesiredState()
        for index in 0..<Reconciler.concurrentBindingMinimum {
            let key = tcp("10.96.1.\(index)", 80)
            state.services[key] = desired(key, [server("10.244.1.\(index)", 8080)])
            state.addresses.insert(ip("10.96.1.\(index)"))
        }
        let report = await reconciler.reconcile(state)
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.applied, 3 * Reconciler.concurrentBindingMinimum) // VIP, service, real server each
        XCTAssertEqual(vips.fake.interfaces["kube-ipvs0"], state.addresses)
        XCTAssertEqual(Set(ipvs.fake.state.services.keys), Set(state.services.keys))
        XCTAssertFalse(ipvs.meeting.waitedInVain, "IPVS was programmed before the VIPs were bound, or after")
        XCTAssertFalse(vips.meeting.waitedInVain, "the VIPs were bound before IPVS was programmed, or after")
    }
}

/// One side of a meeting of two threads: `arrive()` says this side has started, then waits (at
/// most 5 s) for `other` to have started too.
final class Rendezvous: @unchecked Sendable {
    private let started = DispatchSemaphore(value: 0)
    weak var other: Rendezvous?
    /// Whether `arrive()` gave up waiting for the other side.
    private(set) var waitedInVain = false

    func arrive() {
        started.signal()
        if other?.started.wait(timeout: .now() + 5) == .timedOut { waitedInVain = true }
    }
}

/// `FakeIPVS` whose `apply` meets `meeting`'s other side first.
final class RendezvousIPVS: IPVSBackend, @unchecked Sendable {
    let fake: FakeIPVS
    let meeting = Rendezvous()

    init(_ fake: FakeIPVS) { self.fake = fake }
    func table() throws -> [ServiceTableEntry] { try fake.table() }
    func realServers(of key: ServiceKey) throws -> [RealServer] { try fake.realServers(of: key) }
    func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] {
        meeting.arrive()
        return fake.apply(operations)
    }
}

/// `FakeVIPs` whose binding of a list meets `meeting`'s other side first.
final class RendezvousVIPs: VIPBackend, @unchecked Sendable {
    let fake: FakeVIPs
    let meeting = Rendezvous()

    init(_ fake: FakeVIPs) { self.fake = fake }
    func ensureInterface(named name: String) throws -> Bool { try fake.ensureInterface(named: name) }
    func addresses(on name: String) throws -> Set<IPAddress> { try fake.addresses(on: name) }
    func add(_ address: IPAddress, to name: String) throws { try fake.add(address, to: name) }
    func remove(_ address: IPAddress, from name: String) throws { try fake.remove(address, from: name) }
    func add(_ addresses: [IPAddress], to name: String) -> [Result<Void, any Error>] {
        meeting.arrive()
        return addresses.map { address in Result { try fake.add(address, to: name) } }
    }
}
