import Foundation
import IPVS
import XCTest

@testable import HealthCheck

final class EffectiveBackendsTests: XCTestCase {
    // MARK: - Fixtures

    let service = ServiceKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)
    let time = Date(timeIntervalSince1970: 1_000_000)

    func server(_ last: Int, weight: Int32 = 10) -> RealServer {
        RealServer(address: IPAddress("10.244.1.\(last)")!, port: 8080, forwarding: .masquerade, weight: weight)
    }

    func health(_ entries: [(Int, HealthStatus)], dynamicWeight: [Int: Int32] = [:]) -> [BackendID: HealthState] {
        Dictionary(uniqueKeysWithValues: entries.map { last, status in
            (BackendID(service: service, server: server(last).id),
             HealthState(status: status, since: time, dynamicWeight: dynamicWeight[last]))
        })
    }

    func weights(_ result: EffectiveBackends) -> [String: Int32] {
        Dictionary(uniqueKeysWithValues: result.servers.map { ($0.id.description, $0.weight) })
    }

    // MARK: - Failure actions

    func testQuiesceSetsUnhealthyToZeroAndKeepsHealthyWeights() {
        let result = EffectiveBackends(
            service: service, configured: [server(1), server(2), server(3, weight: 5)],
            health: health([(1, .up), (2, .down), (3, .unknown)]),
            configuration: HealthCheckConfiguration(failureAction: .quiesce))
        XCTAssertEqual(weights(result), ["10.244.1.1:8080": 10, "10.244.1.2:8080": 0, "10.244.1.3:8080": 0])
        XCTAssertEqual(result.healthy, 1)
        XCTAssertEqual(result.configured, 3)
        XCTAssertFalse(result.quorumLost)
        XCTAssertNil(result.fallback)
    }

    func testRemoveLeavesUnhealthyOut() {
        let result = EffectiveBackends(
            service: service, configured: [server(1), server(2)], health: health([(1, .up), (2, .down)]),
            configuration: HealthCheckConfiguration(failureAction: .remove))
        XCTAssertEqual(weights(result), ["10.244.1.1:8080": 10])
    }

    func testUncheckedBackendsAndOtherServicesEntriesCountAsHealthy() {
        var states = health([(1, .down)])
        let otherService = ServiceKey.address(.tcp, IPAddress("10.96.0.11")!, port: 80)
        states[BackendID(service: otherService, server: server(2).id)] = HealthState(status: .down, since: time)
        let result = EffectiveBackends(
            service: service, configured: [server(1), server(2)], health: states,
            configuration: HealthCheckConfiguration(failureAction: .remove))
        XCTAssertEqual(weights(result), ["10.244.1.2:8080": 10])
    }

    func testDisabledCheckIgnoresHealth() {
        let result = EffectiveBackends(
            service: service, configured: [server(1)], health: health([(1, .down)]),
            configuration: HealthCheckConfiguration(kind: .disabled, failureAction: .remove, quorum: Quorum(minimumHealthy: 5)))
        XCTAssertEqual(weights(result), ["10.244.1.1:8080": 10])
        XCTAssertFalse(result.quorumLost)
    }

    func testDynamicWeightReplacesConfiguredWeightWhileUp() {
        let result = EffectiveBackends(
            service: service, configured: [server(1), server(2)],
            health: health([(1, .up), (2, .down)], dynamicWeight: [1: 3, 2: 7]),
            configuration: HealthCheckConfiguration())
        XCTAssertEqual(weights(result), ["10.244.1.1:8080": 3, "10.244.1.2:8080": 0])
    }

    // MARK: - Quorum

    func testKeepAllBelowQuorumKeepsEveryBackendAtItsConfiguredWeight() {
        let config = HealthCheckConfiguration(failureAction: .remove, quorum: Quorum(minimumHealthy: 2, policy: .keepAll))
        let lost = EffectiveBackends(
            service: service, configured: [server(1), server(2), server(3, weight: 4)],
            health: health([(1, .up), (2, .down), (3, .down)]), configuration: config)
        XCTAssertTrue(lost.quorumLost)
        XCTAssertEqual(lost.healthy, 1)
        XCTAssertEqual(weights(lost), ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10, "10.244.1.3:8080": 4])

        let kept = EffectiveBackends(
            service: service, configured: [server(1), server(2), server(3)],
            health: health([(1, .up), (2, .up), (3, .down)]), configuration: config)
        XCTAssertFalse(kept.quorumLost)
        XCTAssertEqual(weights(kept), ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10])
    }

    func testAllDownWithDefaultQuorumKeepsAll() {
        let config = HealthCheckConfiguration(failureAction: .quiesce, quorum: Quorum())
        let result = EffectiveBackends(
            service: service, configured: [server(1), server(2)], health: health([(1, .down), (2, .down)]), configuration: config)
        XCTAssertTrue(result.quorumLost)
        XCTAssertEqual(weights(result), ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10])
    }

    func testFallbackBelowQuorumSwitchesToTheSorryServer() {
        let sorry = FallbackServer(address: IPAddress("10.0.0.9")!, port: 8081, weight: 2)
        let quiesce = HealthCheckConfiguration(failureAction: .quiesce, quorum: Quorum(minimumHealthy: 2, policy: .fallback(sorry)))
        let result = EffectiveBackends(
            service: service, configured: [server(1), server(2)], health: health([(1, .up), (2, .down)]), configuration: quiesce)
        XCTAssertTrue(result.quorumLost)
        XCTAssertEqual(weights(result), ["10.244.1.1:8080": 0, "10.244.1.2:8080": 0, "10.0.0.9:8081": 2])
        XCTAssertEqual(result.fallback?.id, sorry.id)
        XCTAssertEqual(result.servers.last?.id, sorry.id, "the fallback comes last")
        XCTAssertEqual(result.fallback?.forwarding, .masquerade)

        var remove = quiesce
        remove.failureAction = .remove
        let removed = EffectiveBackends(
            service: service, configured: [server(1), server(2)], health: health([(1, .up), (2, .down)]), configuration: remove)
        XCTAssertEqual(weights(removed), ["10.0.0.9:8081": 2])

        let healthy = EffectiveBackends(
            service: service, configured: [server(1), server(2)], health: health([(1, .up), (2, .up)]), configuration: quiesce)
        XCTAssertFalse(healthy.quorumLost)
        XCTAssertNil(healthy.fallback)
        XCTAssertEqual(weights(healthy), ["10.244.1.1:8080": 10, "10.244.1.2:8080": 10])
    }

    func testFallbackServesAnEmptyServiceAndIsNotDuplicated() {
        let sorry = FallbackServer(address: IPAddress("10.244.1.1")!, port: 8080)
        let config = HealthCheckConfiguration(quorum: Quorum(minimumHealthy: 1, policy: .fallback(sorry)))
        let empty = EffectiveBackends(service: service, configured: [], health: [:], configuration: config)
        XCTAssertEqual(weights(empty), ["10.244.1.1:8080": 1])

        let same = EffectiveBackends(
            service: service, configured: [server(1), server(2)], health: health([(1, .down), (2, .down)]), configuration: config)
        XCTAssertEqual(same.servers.count, 2, "the fallback that is also a backend appears once")
        XCTAssertEqual(weights(same), ["10.244.1.1:8080": 1, "10.244.1.2:8080": 0])
    }

    func testBackendsWithWeightZeroDoNotCountTowardsQuorum() {
        let config = HealthCheckConfiguration(quorum: Quorum(minimumHealthy: 1, policy: .keepAll))
        let result = EffectiveBackends(
            service: service, configured: [server(1, weight: 0), server(2)],
            health: health([(1, .up), (2, .down)]), configuration: config)
        XCTAssertEqual(result.healthy, 0)
        XCTAssertTrue(result.quorumLost)
    }
}
