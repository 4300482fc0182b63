import Foundation
import HealthCheck
import IPVS
import Logging
import TestSupport
import XCTest
@testable import IPVSAgent

/// A Service's health quorum in the agent: the count of healthy backends becomes a `QuorumOverride`
/// in the health overlay, and the reconciler programs it on the in-memory IPVS.
final class HealthQuorumTests: XCTestCase {
    let web = tcp("10.96.0.10", 80)
    let sorry = FallbackServer(address: ip("10.244.9.9"), port: 8080, weight: 3)
    var folder: URL!

    override func setUp() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ipvs-agent-quorum-\(UUID())")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func state(_ status: HealthStatus) -> HealthState { HealthState(status: status, since: Date(timeIntervalSince1970: 0)) }

    func service(_ policy: QuorumPolicy, minimum: Int = 2, action: FailureAction = .quiesce) -> DesiredState {
        var service = desired(web, [server("10.244.1.5", 8080), server("10.244.1.6", 8080), server("10.244.1.7", 8080, weight: 2)])
        service.health = HealthCheckConfiguration(failureAction: action, quorum: Quorum(minimumHealthy: minimum, policy: policy))
        return DesiredState(services: [web: service], addresses: [ip("10.96.0.10")])
    }

    func states(down: [String]) -> [BackendID: HealthState] {
        Dictionary(uniqueKeysWithValues: ["10.244.1.5", "10.244.1.6", "10.244.1.7"].map {
            (BackendID(service: web, server: RealServerID(address: ip($0), port: 8080)), state(down.contains($0) ? .down : .up))
        })
    }

    // MARK: - The decision (pure)

    func testQuorumOverridesFollowThePolicy() {
        let fallback = service(.fallback(sorry))
        XCTAssertEqual(HealthLink.quorum(states: states(down: ["10.244.1.5"]), services: fallback.services), [:],
                       "2 of 3 healthy meets a quorum of 2")
        let expected = RealServer(address: ip("10.244.9.9"), port: 8080, forwarding: .masquerade, weight: 3)
        XCTAssertEqual(HealthLink.quorum(states: states(down: ["10.244.1.5", "10.244.1.6"]), services: fallback.services),
                       [web: .fallback(expected, others: .quiesce)])
        XCTAssertEqual(HealthLink.quorum(states: states(down: ["10.244.1.5", "10.244.1.6"]),
                                         services: service(.fallback(sorry), action: .remove).services),
                       [web: .fallback(expected, others: .remove)])
        XCTAssertEqual(HealthLink.quorum(states: states(down: ["10.244.1.5", "10.244.1.6"]), services: service(.keepAll).services),
                       [web: .keepAll])
        XCTAssertEqual(HealthLink.quorum(states: states(down: ["10.244.1.5", "10.244.1.6", "10.244.1.7"]),
                                         services: service(.keepAll, minimum: 1).services), [web: .keepAll])
        var unchecked = service(.keepAll)
        unchecked.services[web]?.health?.quorum = nil
        XCTAssertEqual(HealthLink.quorum(states: states(down: ["10.244.1.5", "10.244.1.6"]), services: unchecked.services), [:],
                       "no quorum annotation: no override")
    }

    func testQuorumReasonSaysHowManyAreHealthy() throws {
        let desired = try XCTUnwrap(service(.fallback(sorry)).services[web])
        let configuration = try XCTUnwrap(desired.health)
        let count = QuorumCount(web, desired, states: states(down: ["10.244.1.5", "10.244.1.6"]))
        XCTAssertEqual(HealthLink.quorumReason(count, configuration), "1 of 3 backends healthy, fewer than the quorum of 2")
    }

    func testOverrideReplacesTheHealthAdjustmentsOfItsServiceOnly() {
        let other = tcp("10.96.0.11", 80)
        var state = service(.keepAll)
        state.services[other] = desired(other, [server("10.244.1.5", 8080)])
        let sick = RealServerID(address: ip("10.244.1.5"), port: 8080)
        let adjustments: [BackendID: HealthAdjustment] = [BackendID(service: web, server: sick): .quiesce,
                                                          BackendID(service: other, server: sick): .quiesce]
        let applied = HealthOverlay(adjustments: adjustments, quorum: [web: .keepAll]).applied(to: state)
        XCTAssertEqual(applied.services[web]?.realServers, state.services[web]?.realServers, "keep-all keeps configured weights")
        XCTAssertEqual(applied.services[other]?.realServers[sick]?.weight, 0, "other Services still follow their own verdicts")
    }

    func testAVerdictOfOneServiceDoesNotLeakIntoAnotherServiceOfTheSamePod() {
        let other = tcp("10.96.0.11", 80)
        var state = service(.keepAll)
        state.services[other] = desired(other, [server("10.244.1.5", 8080)])
        let sick = RealServerID(address: ip("10.244.1.5"), port: 8080)
        // web's check failed on the pod; `other` checks it differently (or not at all) and has no verdict.
        let applied = HealthOverlay(adjustments: [BackendID(service: web, server: sick): .quiesce]).applied(to: state)
        XCTAssertEqual(applied.services[web]?.realServers[sick]?.weight, 0)
        XCTAssertEqual(applied.services[other], state.services[other], "the other Service keeps the pod at its weight")
    }

    /// A fallback under `health-on-failure: remove` deletes the backends at once (they do not drain).
    func testAFallbackWithRemoveMarksTheBackendsRemovedByHealth() throws {
        let state = service(.fallback(sorry), action: .remove)
        let sorryServer = RealServer(address: sorry.address, port: sorry.port, weight: sorry.weight)
        let applied = HealthOverlay(quorum: [web: .fallback(sorryServer, others: .remove)]).applied(to: state)
        let result = try XCTUnwrap(applied.services[web])
        XCTAssertEqual(Array(result.realServers.keys), [sorry.id])
        XCTAssertEqual(result.removedByHealth, Set(state.services[web]!.realServers.keys))
        let quiesced = HealthOverlay(quorum: [web: .fallback(sorryServer, others: .quiesce)]).applied(to: state)
        XCTAssertEqual(quiesced.services[web]?.removedByHealth, [])
    }

    // MARK: - On the in-memory IPVS

    func testFallbackTakesOverWhenQuorumIsLostAndBackendsComeBack() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: OwnershipStore(path: folder.appendingPathComponent("state.json").path),
                                    options: .init(drainTimeout: .seconds(30)), logger: Logger(label: "test"))
        try await reconciler.start()
        let mapped = service(.fallback(sorry))
        await reconciler.reconcile(mapped)
        let lost = states(down: ["10.244.1.5", "10.244.1.6"])
        let overlay = HealthOverlay(adjustments: HealthLink.overlay(states: lost, actions: [:]).adjustments,
                                    quorum: HealthLink.quorum(states: lost, services: mapped.services))
        ipvs.applied = []
        let report = await reconciler.setHealth(overlay)
        XCTAssertTrue(report.succeeded, "\(report.failures)")
        var weights = ipvs.state.services[web]?.realServers.mapValues(\.weight)
        XCTAssertEqual(weights, [RealServerID(address: ip("10.244.1.5"), port: 8080): 0, RealServerID(address: ip("10.244.1.6"), port: 8080): 0,
                                 RealServerID(address: ip("10.244.1.7"), port: 8080): 0, sorry.id: 3],
                       "only the fallback has a weight while the quorum is lost")

        // A reload of the same endpoints keeps the fallback in place.
        ipvs.applied = []
        await reconciler.reconcile(mapped)
        XCTAssertEqual(ipvs.applied, [])

        // Recovery: configured weights come back, the fallback is quiesced and drained away.
        await reconciler.setHealth(HealthOverlay())
        weights = ipvs.state.services[web]?.realServers.mapValues(\.weight)
        XCTAssertEqual(weights?[RealServerID(address: ip("10.244.1.7"), port: 8080)], 2)
        XCTAssertEqual(weights?[RealServerID(address: ip("10.244.1.5"), port: 8080)], 1)
        XCTAssertEqual(weights?[sorry.id], 0, "the fallback gets no new connections")
        await reconciler.checkDrains()
        XCTAssertNil(ipvs.state.services[web]?.realServers[sorry.id], "the idle fallback is deleted")
    }

    func testKeepAllKeepsEveryBackendAtItsConfiguredWeight() async throws {
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        let mapped = service(.keepAll)
        await reconciler.reconcile(mapped)
        let lost = states(down: ["10.244.1.5", "10.244.1.6"])
        let adjustments = HealthLink.overlay(states: lost, actions: Dictionary(uniqueKeysWithValues: lost.keys.map { ($0, .quiesce) }))
        // Without the quorum, the verdicts quiesce two backends ...
        await reconciler.setHealth(adjustments)
        XCTAssertEqual(ipvs.state.services[web]?.realServers.values.filter { $0.weight == 0 }.count, 2)
        // ... with it, every backend keeps its weight.
        ipvs.applied = []
        await reconciler.setHealth(HealthOverlay(adjustments: adjustments.adjustments,
                                                 quorum: HealthLink.quorum(states: lost, services: mapped.services)))
        XCTAssertEqual(ipvs.state.services[web]?.realServers.mapValues(\.weight), mapped.services[web]?.realServers.mapValues(\.weight))
        XCTAssertEqual(ipvs.applied.count, 2, "\(ipvs.applied)")
    }
}
