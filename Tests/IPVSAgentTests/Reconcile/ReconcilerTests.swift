import Foundation
import HealthCheck
import IPVS
import Logging
import TestSupport
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

    func makeReconciler(_ ipvs: FakeIPVS, _ vips: FakeVIPs, clock: ManualClock = ManualClock(),
                        logger: Logger = Logger(label: "test")) -> Reconciler {
        return Reconciler(ipvs: ipvs, vips: vips, store: OwnershipStore(path: folder.appendingPathComponent("state.json").path),
                          options: .init(interface: "kube-ipvs0", drainTimeout: .seconds(30)), logger: logger,
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

    /// A run killed after it claimed and created, before it saved: the next start owns what the
    /// kernel holds of the claims (so the reconcile removes what is no longer desired, here
    /// everything), forgets the rest, and never takes what someone else had there.
    func testARestartOwnsWhatAnInterruptedRunClaimedThatTheKernelHolds() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let foreign = VirtualService(key: tcp("192.0.2.1", 80)), created = VirtualService(key: tcp("10.96.0.10", 80))
        ipvs.state.services[foreign.key] = KernelState.Entry(service: foreign)
        ipvs.state.services[created.key] = KernelState.Entry(service: created, realServers: [server("10.244.1.5", 8080).id: server("10.244.1.5", 8080)])
        vips.interfaces["kube-ipvs0"] = [ip("192.0.2.1"), ip("10.96.0.10")]
        let path = folder.appendingPathComponent("state.json").path
        // The crash came after 10.96.0.10 was created, before 10.96.0.11 was.
        try OwnershipStore(path: path).claim(services: [created.key, tcp("10.96.0.11", 80)],
                                             addresses: [ip("10.96.0.10"), ip("10.96.0.11")])

        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let report = await reconciler.reconcile(DesiredState())
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(Array(ipvs.state.services.keys), [foreign.key])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("192.0.2.1")])
        XCTAssertEqual(try OwnershipStore(path: path).load(), Ownership())
    }

    /// Claims of an interrupted run whose Services are still desired are owned, so --cleanup
    /// removes them; a desired address someone else bound before stays theirs.
    func testCleanupRemovesWhatAnInterruptedRunClaimedAndCreated() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let created = VirtualService(key: tcp("10.96.0.10", 80))
        ipvs.state.services[created.key] = KernelState.Entry(service: created)
        vips.interfaces["kube-ipvs0"] = [ip("10.96.0.10"), ip("10.96.0.20")]
        let path = folder.appendingPathComponent("state.json").path
        try OwnershipStore(path: path).claim(services: [created.key], addresses: [ip("10.96.0.10")])

        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        var state = web(["10.244.1.5"])
        let other = tcp("10.96.0.20", 80)
        state.services[other] = desired(other, [])
        state.addresses.insert(ip("10.96.0.20"))
        let report = await reconciler.reconcile(state)
        XCTAssertEqual(report.failures, [])
        let owned = try OwnershipStore(path: path).load()
        XCTAssertEqual(owned.services, [created.key, other])
        XCTAssertEqual(owned.addresses, [ip("10.96.0.10")])
        XCTAssertEqual(owned.claimedServices, [])

        let cleanup = await reconciler.cleanup()
        XCTAssertEqual(cleanup.failures, [])
        XCTAssertEqual(ipvs.state.services.count, 0)
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.20")])
    }

    /// The interface the agent created is its own: recorded, kept over restarts, and deleted by
    /// --cleanup once nothing else is bound on it; one it found is never deleted.
    func testCleanupDeletesTheInterfaceItCreatedWhenNothingElseIsOnIt() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let store = OwnershipStore(path: folder.appendingPathComponent("state.json").path)
        try await makeReconciler(ipvs, vips).start()
        XCTAssertEqual(try store.load().interface, "kube-ipvs0")
        let restarted = makeReconciler(ipvs, vips)
        try await restarted.start()
        await restarted.reconcile(web(["10.244.1.5"]))
        XCTAssertEqual(try store.load().interface, "kube-ipvs0", "a restart keeps it recorded")
        let cleanup = await restarted.cleanup()
        XCTAssertEqual(cleanup.failures, [])
        XCTAssertNil(vips.interfaces["kube-ipvs0"])
        XCTAssertEqual(vips.changes.last, "delete kube-ipvs0")
        XCTAssertNil(try store.load().interface)

        // Created again, then someone else binds an address on it: it stays.
        let again = makeReconciler(ipvs, vips)
        try await again.start()
        vips.interfaces["kube-ipvs0"] = [ip("192.0.2.1")]
        _ = await again.cleanup()
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("192.0.2.1")])

        // Found there: never deleted.
        let foundVIPs = FakeVIPs()
        foundVIPs.interfaces["kube-ipvs0"] = []
        try? FileManager.default.removeItem(atPath: store.path)
        let found = makeReconciler(FakeIPVS(), foundVIPs)
        try await found.start()
        _ = await found.cleanup()
        XCTAssertEqual(foundVIPs.interfaces["kube-ipvs0"], [])
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

    /// A real server someone added to an owned service (`ipvsadm -a`) is drift: taken out (drained
    /// like a removed endpoint, so its connections finish) and counted as a repair.
    func testVerifyCountsARealServerSomeoneAddedAsDrift() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5"]))
        let key = tcp("10.96.0.10", 80), added = server("10.244.1.99", 8080)
        ipvs.state.services[key]?.realServers[added.id] = added
        ipvs.applied = []
        let report = await reconciler.verify()
        XCTAssertEqual(report.repairs, 1)
        XCTAssertEqual(ipvs.state.services[key]?.realServers[added.id]?.weight, 0, "drained, not cut off")
        XCTAssertEqual(ipvs.state.services[key]?.realServers.count, 2)
        // Its drain goes on as the agent's own: not a repair again.
        let again = await reconciler.verify()
        XCTAssertEqual(again.repairs, 0)
    }

    /// The interface is created down and set up by the first reconcile once its VIPs are bound:
    /// each address added to an up interface costs the kernel a walk of its routes.
    func testTheInterfaceIsCreatedDownAndSetUpAfterTheFirstReconcileBoundItsVIPs() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        XCTAssertEqual(vips.timeline, ["create kube-ipvs0"])
        XCTAssertEqual(vips.up, [])
        let report = await reconciler.reconcile(webAndAPI())
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.repairs, 0, "setting up the interface it created is no repair")
        XCTAssertEqual(Array(vips.timeline.prefix(1)), ["create kube-ipvs0"])
        XCTAssertEqual(Set(vips.timeline.dropFirst().prefix(2)), ["add 10.96.0.10", "add 10.96.0.11"])
        XCTAssertEqual(vips.timeline.dropFirst(3), ["up kube-ipvs0"])
        // Later reconciles bind on the up interface and set nothing up again.
        var more = webAndAPI()
        let extra = tcp("10.96.0.12", 80)
        more.services[extra] = desired(extra, [server("10.244.1.7", 8080)])
        more.addresses.insert(ip("10.96.0.12"))
        await reconciler.reconcile(more)
        XCTAssertEqual(vips.timeline.last, "add 10.96.0.12")
        XCTAssertEqual(vips.timeline.filter { $0.hasPrefix("up ") }.count, 1)
    }

    /// An interface that was there before the agent, down, is left down until the first reconcile
    /// bound the VIPs, then set up; it stays not the agent's own.
    func testAnExistingDownInterfaceIsSetUpAfterTheFirstReconcile() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        vips.interfaces["kube-ipvs0"] = []
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        XCTAssertEqual(vips.timeline, [])
        await reconciler.reconcile(web(["10.244.1.5"]))
        XCTAssertEqual(vips.timeline, ["add 10.96.0.10", "up kube-ipvs0"])
        XCTAssertNil(try OwnershipStore(path: folder.appendingPathComponent("state.json").path).load().interface,
                     "not created by the agent: --cleanup leaves it")
    }

    func testVerifyCreatesADeletedInterfaceAgainAndBindsItsVIPs() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        vips.requiresInterface = true
        vips.interfaces["kube-ipvs0"] = []            // there before the agent: not its own
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5"]))
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        vips.interfaces["kube-ipvs0"] = nil           // ip link del kube-ipvs0: the VIPs go with it
        let report = await reconciler.verify()
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.repairs, 2)            // the interface and its VIP
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        XCTAssertEqual(try OwnershipStore(path: folder.appendingPathComponent("state.json").path).load().interface, "kube-ipvs0",
                       "created by the agent: --cleanup deletes it")
        let again = await reconciler.verify()
        XCTAssertEqual(again.repairs, 0)
        XCTAssertEqual(again.applied, 0)
    }

    // MARK: - Verifying the VIPs alone (the dummy interface announced a change)

    /// Two Services, each with its VIP.
    func webAndAPI() -> DesiredState {
        var state = web(["10.244.1.5"])
        let api = tcp("10.96.0.11", 443)
        state.services[api] = desired(api, [server("10.244.1.6", 8443)])
        state.addresses.insert(ip("10.96.0.11"))
        return state
    }

    func testVerifyAddressesBindsADeletedVIPAgainWithoutReadingIPVS() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(webAndAPI())
        ipvs.state.services = [:]                     // IPVS drift waits for verify()
        vips.interfaces["kube-ipvs0"] = [ip("10.96.0.11")] // ip addr del 10.96.0.10/32
        vips.changes = []
        let reads = ipvs.tableReads
        let report = await reconciler.verifyAddresses(removed: [ip("10.96.0.10")])
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.repairs, 1)
        XCTAssertEqual(vips.changes, ["add 10.96.0.10"])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10"), ip("10.96.0.11")])
        XCTAssertEqual(ipvs.tableReads, reads)
        XCTAssertEqual(ipvs.state.services, [:])
        // Every address is checked when the removed ones are not known (notifications lost).
        vips.interfaces["kube-ipvs0"] = []
        let all = await reconciler.verifyAddresses(removed: nil)
        XCTAssertEqual(all.repairs, 2)
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10"), ip("10.96.0.11")])
    }

    /// The agent's own unbinds are announced too: an address it no longer wants is not drift.
    func testVerifyAddressesLeavesAnAddressTheAgentRemovedAlone() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(webAndAPI())
        await reconciler.reconcile(web(["10.244.1.5"]))  // Service api deleted: its VIP is unbound
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        vips.changes = []
        let report = await reconciler.verifyAddresses(removed: [ip("10.96.0.11")])
        XCTAssertEqual(report.repairs, 0)
        XCTAssertEqual(report.applied, 0)
        XCTAssertEqual(vips.changes, [])
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        let all = await reconciler.verifyAddresses(removed: nil)
        XCTAssertEqual(all.repairs, 0)
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
    }

    func testVerifyAddressesCreatesADeletedInterfaceAgainAndCountsOneSetDown() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        vips.requiresInterface = true
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5"]))
        vips.interfaces["kube-ipvs0"] = nil            // ip link del kube-ipvs0
        let deleted = await reconciler.verifyAddresses(removed: nil)
        XCTAssertEqual(deleted.failures, [])
        XCTAssertEqual(deleted.repairs, 2)            // the interface and its VIP
        XCTAssertEqual(vips.interfaces["kube-ipvs0"], [ip("10.96.0.10")])
        // ip link set kube-ipvs0 down: set up again (the fake has no link state), a repair.
        let down = await reconciler.verifyAddresses(removed: nil, interfaceWentDown: true)
        XCTAssertEqual(down.repairs, 1)
        let again = await reconciler.verifyAddresses(removed: nil)
        XCTAssertEqual(again.repairs, 0)
        XCTAssertEqual(again.applied, 0)
    }

    /// Before the first reconcile the desired VIPs are not known: nothing is bound or counted.
    func testVerifyAddressesBeforeTheFirstReconcileDoesNothing() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let report = await reconciler.verifyAddresses(removed: nil, interfaceWentDown: true)
        XCTAssertEqual(report.repairs, 0)
        XCTAssertEqual(vips.changes, [])
    }

    func testDrainWithInjectedClock() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs(), clock = ManualClock()
        let reconciler = makeReconciler(ipvs, vips, clock: clock)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        let key = tcp("10.96.0.10", 80)
        let gone = RealServerID(address: ip("10.244.1.6"), port: 8080)
        ipvs.connections[key, default: [:]][gone] = ConnectionCounts(active: 1)
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
    /// Under churn most removed endpoints have no connections: each is deleted without an info
    /// line. A drain worth knowing about (connections found) gets one when found and one when it ends.
    func testOnlyDrainsWithConnectionsAreLoggedAtInfoLevel() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs(), clock = ManualClock(), log = LogRecorder()
        let reconciler = makeReconciler(ipvs, vips, clock: clock, logger: Logger(label: "test", factory: { _ in log }))
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6", "10.244.1.7"]))
        let key = tcp("10.96.0.10", 80)
        let idle = RealServerID(address: ip("10.244.1.7"), port: 8080), busy = RealServerID(address: ip("10.244.1.6"), port: 8080)
        ipvs.connections[key, default: [:]][busy] = ConnectionCounts(active: 2, inactive: 1)
        log.clear()

        // What a sync pass does: the reconcile quiesces both, the drain check right after it reads them.
        await reconciler.reconcile(web(["10.244.1.5"]), changed: [key])
        await reconciler.checkDrains()
        XCTAssertNil(ipvs.state.services[key]?.realServers[idle], "no connections: deleted in the same pass")
        XCTAssertEqual(ipvs.state.services[key]?.realServers[busy]?.weight, 0)
        XCTAssertEqual(log.lines(at: .info), [
            #"draining removed endpoint active_connections=2 inactive_connections=1 real_server=10.244.1.6:8080 service=TCP 10.96.0.10:80"#])
        XCTAssertTrue(log.lines(at: .debug).contains { $0.hasPrefix("removed endpoint without connections real_server=10.244.1.7:8080") },
                      "\(log.lines(at: .debug))")

        // Still busy at the next checks: not logged again. Its connections gone: its end is logged.
        await reconciler.checkDrains()
        ipvs.connections[key]?[busy] = ConnectionCounts()
        await reconciler.checkDrains()
        XCTAssertNil(ipvs.state.services[key]?.realServers[busy])
        XCTAssertEqual(log.lines(at: .info).count, 2, "\(log.lines(at: .info))")
        XCTAssertEqual(log.lines(at: .info).last, "removed drained endpoint real_server=10.244.1.6:8080 service=TCP 10.96.0.10:80")
    }

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
        let sick = BackendID(service: tcp("10.96.0.10", 80), server: RealServerID(address: ip("10.244.1.6"), port: 8080))
        await reconciler.setHealth(HealthOverlay(adjustments: [sick: .quiesce]))
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.6", 8080, weight: 0), service: tcp("10.96.0.10", 80))])
        // Healthy again: the configured weight comes back.
        ipvs.applied = []
        await reconciler.setHealth(HealthOverlay())
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.6", 8080), service: tcp("10.96.0.10", 80))])
        // Quiesced again: a new mapping of the same endpoints keeps the overlay applied.
        await reconciler.setHealth(HealthOverlay(adjustments: [sick: .quiesce]))
        ipvs.applied = []
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        XCTAssertEqual(ipvs.applied, [])
    }

    /// `health-on-failure: remove` deletes the real server at once, even with connections (they
    /// stop too), and does not drain it; on recovery it is added again with its configured weight.
    func testHealthRemovalDeletesAtOnceWithoutDrainingAndRecoveryAddsItBack() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let key = tcp("10.96.0.10", 80)
        var mapped = web(["10.244.1.5"])
        mapped.services[key]?.realServers[RealServerID(address: ip("10.244.1.6"), port: 8080)] = server("10.244.1.6", 8080, weight: 3)
        await reconciler.reconcile(mapped)
        let sick = BackendID(service: key, server: RealServerID(address: ip("10.244.1.6"), port: 8080))
        ipvs.connections[key, default: [:]][sick.server] = ConnectionCounts(active: 2, inactive: 1)
        ipvs.applied = []
        let report = await reconciler.setHealth(HealthOverlay(adjustments: [sick: .remove]))
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(ipvs.applied, [.deleteRealServer(sick.server, service: key)], "deleted at once, not quiesced")
        let draining = await reconciler.isDraining
        XCTAssertFalse(draining, "a health removal does not drain")
        // A reload of the same endpoints keeps it out, and a drain check or verification changes nothing.
        ipvs.applied = []
        await reconciler.reconcile(mapped)
        await reconciler.checkDrains()
        await reconciler.verify()
        XCTAssertEqual(ipvs.applied, [])
        // Healthy again: added back with its configured weight.
        await reconciler.setHealth(HealthOverlay())
        XCTAssertEqual(ipvs.applied, [.addRealServer(server("10.244.1.6", 8080, weight: 3), service: key)])
        // Quiesced first, then removed: deleted at once from weight 0 too.
        await reconciler.setHealth(HealthOverlay(adjustments: [sick: .quiesce]))
        ipvs.applied = []
        await reconciler.setHealth(HealthOverlay(adjustments: [sick: .remove]))
        XCTAssertEqual(ipvs.applied, [.deleteRealServer(sick.server, service: key)])
    }

    func testADynamicWeightIsProgrammedAndTheConfiguredWeightRestored() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        let key = tcp("10.96.0.10", 80)
        let pod = BackendID(service: key, server: RealServerID(address: ip("10.244.1.6"), port: 8080))
        ipvs.applied = []
        await reconciler.setHealth(HealthOverlay(adjustments: [pod: .weight(5)]))
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.6", 8080, weight: 5), service: key)])
        ipvs.applied = []
        await reconciler.setHealth(HealthOverlay(adjustments: [pod: .weight(7)]))
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.6", 8080, weight: 7), service: key)])
        // A reload keeps the dynamic weight; no weight asked for any more: the configured one.
        ipvs.applied = []
        await reconciler.reconcile(web(["10.244.1.5", "10.244.1.6"]))
        XCTAssertEqual(ipvs.applied, [])
        await reconciler.setHealth(HealthOverlay())
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.6", 8080), service: key)])
    }

    func testHealthOverlayTouchesOnlyTheVirtualServiceWhoseVerdictChanged() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = makeReconciler(ipvs, vips)
        try await reconciler.start()
        let web = tcp("10.96.0.10", 80), api = tcp("10.96.0.11", 80)
        let pod = server("10.244.1.5", 8080)
        await reconciler.reconcile(DesiredState(services: [web: desired(web, [pod]), api: desired(api, [pod])],
                                                addresses: [ip("10.96.0.10"), ip("10.96.0.11")]))
        ipvs.applied = []
        await reconciler.setHealth(HealthOverlay(adjustments: [BackendID(service: web, server: pod.id): .quiesce]))
        XCTAssertEqual(ipvs.applied, [.updateRealServer(server("10.244.1.5", 8080, weight: 0), service: web)],
                       "the same pod behind another virtual service keeps its weight")
        XCTAssertEqual(ipvs.state.services[api]?.realServers[pod.id]?.weight, 1)
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
        let ipvs = FakeIPVS(), vips = RendezvousVIPs(FakeVIPs()), ipvsMeeting = Rendezvous()
        ipvs.beforeApply = { _ in ipvsMeeting.arrive() }
        ipvsMeeting.other = vips.meeting
        vips.meeting.other = ipvsMeeting
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        var state = DesiredState()
        for index in 0..<KernelApplier.concurrentBindingMinimum {
            let key = tcp("10.96.1.\(index)", 80)
            state.services[key] = desired(key, [server("10.244.1.\(index)", 8080)])
            state.addresses.insert(ip("10.96.1.\(index)"))
        }
        let report = await reconciler.reconcile(state)
        XCTAssertEqual(report.failures, [])
        XCTAssertEqual(report.applied, 3 * KernelApplier.concurrentBindingMinimum) // VIP, service, real server each
        XCTAssertEqual(vips.fake.interfaces["kube-ipvs0"], state.addresses)
        XCTAssertEqual(Set(ipvs.state.services.keys), Set(state.services.keys))
        XCTAssertFalse(ipvsMeeting.waitedInVain, "IPVS was programmed before the VIPs were bound, or after")
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

/// `FakeVIPs` whose binding of a list meets `meeting`'s other side first.
final class RendezvousVIPs: VIPBackend, @unchecked Sendable {
    let fake: FakeVIPs
    let meeting = Rendezvous()

    init(_ fake: FakeVIPs) { self.fake = fake }
    func ensureInterface(named name: String, up: Bool) throws -> Bool { try fake.ensureInterface(named: name, up: up) }
    func addresses(on name: String) throws -> Set<IPAddress> { try fake.addresses(on: name) }
    func add(_ address: IPAddress, to name: String) throws { try fake.add(address, to: name) }
    func remove(_ address: IPAddress, from name: String) throws { try fake.remove(address, from: name) }
    func deleteInterfaceIfUnused(named name: String) throws -> Bool { try fake.deleteInterfaceIfUnused(named: name) }
    func add(_ addresses: [IPAddress], to name: String) -> [Result<Void, any Error>] {
        meeting.arrive()
        return addresses.map { address in Result { try fake.add(address, to: name) } }
    }
}
