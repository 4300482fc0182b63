import Foundation
import HealthCheck
import IPVS
import XCTest
@testable import IPVSAgent

/// The one rule that turns health verdicts and the quorum into weights: the checker's states go through
/// `HealthLink`'s overlay and quorum, and `HealthOverlay` applies them to the mapped Service.
final class HealthOverlayTests: XCTestCase {
    // MARK: - Fixtures

    let web = tcp("10.96.0.10", 80)
    let time = Date(timeIntervalSince1970: 1_000_000)

    func backend(_ last: Int, weight: Int32 = 10) -> RealServer { server("10.244.1.\(last)", 8080, weight: weight) }

    func states(_ entries: [(Int, HealthStatus)], dynamicWeight: [Int: Int32] = [:]) -> [BackendID: HealthState] {
        Dictionary(uniqueKeysWithValues: entries.map { last, status in
            (BackendID(service: web, server: backend(last).id), HealthState(status: status, since: time, dynamicWeight: dynamicWeight[last]))
        })
    }

    func mapped(_ configured: [RealServer], _ configuration: HealthCheckConfiguration?) -> DesiredState {
        var service = desired(web, configured)
        service.health = configuration
        return DesiredState(services: [web: service])
    }

    /// The real servers the kernel gets for `configured` under `configuration` with the checker's `states`.
    func servers(_ configured: [RealServer], _ states: [BackendID: HealthState], _ configuration: HealthCheckConfiguration?) -> [RealServer] {
        let state = mapped(configured, configuration)
        let actions = Dictionary(HealthLink.targets(of: state).map { ($0.id, $0.configuration.failureAction) }, uniquingKeysWith: { first, _ in first })
        var overlay = HealthLink.overlay(states: states, actions: actions)
        overlay.quorum = HealthLink.quorum(states: states, services: state.services)
        return overlay.applied(to: state).services[web].map { Array($0.realServers.values) } ?? []
    }

    func weights(_ configured: [RealServer], _ states: [BackendID: HealthState], _ configuration: HealthCheckConfiguration?) -> [String: Int32] {
        Dictionary(uniqueKeysWithValues: servers(configured, states, configuration).map { ($0.id.description, $0.weight) })
    }

    // MARK: - Failure actions

    func testQuiesceSetsUnhealthyToZeroAndKeepsHealthyWeights() {
        XCTAssertEqual(weights([backend(1), backend(2), backend(3, weight: 5)], states([(1, .up), (2, .down), (3, .unknown)]),
                               HealthCheckConfiguration(failureAction: .quiesce)),
                       ["10.244.1.1:8080": 10, "10.244.1.2:8080": 0, "10.244.1.3:8080": 0])
    }

    func testRemoveLeavesUnhealthyOut() {
        XCTAssertEqual(weights([backend(1), backend(2)], states([(1, .up), (2, .down)]), HealthCheckConfiguration(failureAction: .remove)),
                       ["10.244.1.1:8080": 10])
    }

    func testUncheckedBackendsAndOtherServicesVerdictsKeepTheirWeight() {
        var verdicts = states([(1, .down)])
        verdicts[BackendID(service: tcp("10.96.0.11", 80), server: backend(2).id)] = HealthState(status: .down, since: time)
        XCTAssertEqual(weights([backend(1), backend(2)], verdicts, HealthCheckConfiguration(failureAction: .remove)),
                       ["10.244.1.2:8080": 10])
    }

    func testAServiceWithoutChecksIgnoresHealth() {
        XCTAssertEqual(weights([backend(1)], states([(1, .down)]), nil), ["10.244.1.1:8080": 10])
    }

    func testDynamicWeightReplacesConfiguredWeightWhileUp() {
        XCTAssertEqual(weights([backend(1), backend(2)], states([(1, .up), (2, .down)], dynamicWeight: [1: 3, 2: 7]), HealthCheckConfiguration()),
                       ["10.244.1.1:8080": 3, "10.244.1.2:8080": 0])
    }

    // MARK: - Quorum

    func testKeepAllBelowQuorumKeepsFailedBackendsAtTheirConfiguredWeight() {
        let config = HealthCheckConfiguration(failureAction: .remove, quorum: Quorum(minimumHealthy: 2, policy: .keepAll))
        XCTAssertEqual(weights([backend(1), backend(2), backend(3, weight: 4)], states([(1, .up), (2, .down), (3, .down)]), config),
                       ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10, "10.244.1.3:8080": 4])
        XCTAssertEqual(weights([backend(1), backend(2), backend(3)], states([(1, .up), (2, .up), (3, .down)]), config),
                       ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10], "the quorum is met: verdicts apply")
    }

    /// Under `keep-all` a serving backend keeps the weight its exec check asked for (keepalived's dynamic
    /// weight is the real server's weight while its check passes); only failed verdicts are set aside.
    func testKeepAllBelowQuorumKeepsTheDynamicWeightOfAServingBackend() {
        let config = HealthCheckConfiguration(failureAction: .quiesce, quorum: Quorum(minimumHealthy: 2, policy: .keepAll))
        XCTAssertEqual(weights([backend(1), backend(2), backend(3, weight: 4)],
                               states([(1, .up), (2, .down), (3, .down)], dynamicWeight: [1: 3, 2: 7]), config),
                       ["10.244.1.1:8080": 3, "10.244.1.2:8080": 10, "10.244.1.3:8080": 4])
    }

    func testAllDownWithDefaultQuorumKeepsAll() {
        let config = HealthCheckConfiguration(failureAction: .quiesce, quorum: Quorum())
        XCTAssertEqual(weights([backend(1), backend(2)], states([(1, .down), (2, .down)]), config),
                       ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10])
    }

    func testFallbackBelowQuorumSwitchesToTheSorryServer() {
        let sorry = FallbackServer(address: ip("10.0.0.9"), port: 8081, weight: 2)
        let quiesce = HealthCheckConfiguration(failureAction: .quiesce, quorum: Quorum(minimumHealthy: 2, policy: .fallback(sorry)))
        let lost = servers([backend(1), backend(2)], states([(1, .up), (2, .down)]), quiesce)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: lost.map { ($0.id.description, $0.weight) }),
                       ["10.244.1.1:8080": 0, "10.244.1.2:8080": 0, "10.0.0.9:8081": 2])
        XCTAssertEqual(lost.first { $0.id == sorry.id }?.forwarding, .masquerade)

        var remove = quiesce
        remove.failureAction = .remove
        XCTAssertEqual(weights([backend(1), backend(2)], states([(1, .up), (2, .down)]), remove), ["10.0.0.9:8081": 2])
        XCTAssertEqual(weights([backend(1), backend(2)], states([(1, .up), (2, .up)]), quiesce),
                       ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10])
    }

    func testFallbackServesAnEmptyServiceAndIsNotDuplicated() {
        let sorry = FallbackServer(address: ip("10.244.1.1"), port: 8080)
        let config = HealthCheckConfiguration(quorum: Quorum(minimumHealthy: 1, policy: .fallback(sorry)))
        XCTAssertEqual(weights([], [:], config), ["10.244.1.1:8080": 1])
        let same = servers([backend(1), backend(2)], states([(1, .down), (2, .down)]), config)
        XCTAssertEqual(same.count, 2, "the fallback that is also a backend appears once")
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: same.map { ($0.id.description, $0.weight) }), ["10.244.1.1:8080": 1, "10.244.1.2:8080": 0])
    }

    func testBackendsWithWeightZeroDoNotCountTowardsQuorum() throws {
        let state = mapped([backend(1, weight: 0), backend(2)], HealthCheckConfiguration(quorum: Quorum(minimumHealthy: 1, policy: .keepAll)))
        let count = QuorumCount(web, try XCTUnwrap(state.services[web]), states: states([(1, .up), (2, .down)]))
        XCTAssertEqual(count.healthy, 0)
        XCTAssertEqual(count.configured, 2)
        XCTAssertTrue(count.lost)
        let dynamicZero = QuorumCount(web, try XCTUnwrap(state.services[web]), states: states([(1, .up), (2, .up)], dynamicWeight: [2: 0]))
        XCTAssertEqual(dynamicZero.healthy, 0, "a dynamic weight of 0 is not healthy either")
    }
}
