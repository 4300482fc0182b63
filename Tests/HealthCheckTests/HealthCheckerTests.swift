import Foundation
import IPVS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

@testable import HealthCheck

/// The checker end to end against loopback servers. Timed assertions only bound from below (a scheduled check
/// never runs early) or with generous upper margins, and otherwise assert order and counts.
final class HealthCheckerTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    override func tearDown() async throws {
        try await group.shutdownGracefully()
    }

    // MARK: - Helpers

    let service = ServiceKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)

    func target(port: Int, _ config: HealthCheckConfiguration) -> HealthTarget {
        HealthTarget(
            id: BackendID(service: service, server: RealServerID(address: IPAddress("127.0.0.1")!, port: UInt16(port))),
            serviceName: "test/web", configuration: config)
    }

    func fast(rise: Int = 2, fall: Int = 2, initialState: InitialHealth = .up, initialDelay: Duration = .zero) -> HealthCheckConfiguration {
        HealthCheckConfiguration(
            kind: .tcp, interval: .milliseconds(100), timeout: .milliseconds(200), rise: rise, fall: fall,
            initialDelay: initialDelay, jitter: 0.1, initialState: initialState)
    }

    /// Runs `checker` and collects its transitions until the returned task is cancelled.
    func start(_ checker: HealthChecker) -> (run: Task<Void, any Error>, seen: NIOLockedValueBox<[HealthTransition]>) {
        let seen = NIOLockedValueBox<[HealthTransition]>([])
        let run = Task {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await checker.run() }
                tasks.addTask { for await transition in checker.transitions { seen.withLockedValue { $0.append(transition) } } }
                try await tasks.waitForAll()
            }
        }
        return (run, seen)
    }

    /// Polls `condition` every 10 ms for up to `limit`.
    @discardableResult
    func eventually(within limit: Duration = .seconds(10), _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    // MARK: - Detection

    func testABackendThatStopsAnsweringGoesDownByTimeout() async throws {
        // Its accept queue is full, so the kernel drops the SYNs: every connect hangs until the timeout.
        let listener = try FullBacklogListener()
        defer { listener.closeAll() }
        let checker = HealthChecker(eventLoopGroup: group)
        let config = fast(rise: 2, fall: 2)
        try checker.update(targets: [target(port: listener.port, config)])
        let (run, seen) = start(checker)
        defer { run.cancel() }

        try await eventually { seen.withLockedValue { $0.count } >= 1 }
        let down = try XCTUnwrap(seen.withLockedValue { $0.first })
        XCTAssertEqual(down.to, .down)
        XCTAssertEqual(down.reason, "timeout after 200ms")
        XCTAssertEqual(down.consecutive, 2)
        XCTAssertGreaterThanOrEqual(down.latency, .milliseconds(200), "the check that failed waited the whole timeout")
    }

    func testDetectsAStoppedServerWithinTheBoundAndBringsItBackAfterRise() async throws {
        var server = try await TestServers.tcp(group: group)
        let port = server.localAddress!.port!
        let checker = HealthChecker(eventLoopGroup: group)
        let config = fast(rise: 2, fall: 2)
        try checker.update(targets: [target(port: port, config)])
        let (run, seen) = start(checker)
        defer { run.cancel() }
        let id = target(port: port, config).id

        try await eventually { (checker.state(of: id)?.consecutiveSuccesses ?? 0) >= 2 }
        XCTAssertEqual(checker.state(of: id)?.status, .up)
        XCTAssertTrue(seen.withLockedValue { $0.isEmpty }, "an initially up backend that stays up makes no transition")

        try await server.close()
        let stopped = ContinuousClock.now
        try await eventually { seen.withLockedValue { $0.count } >= 1 }
        let detection = ContinuousClock.now - stopped
        let down = try XCTUnwrap(seen.withLockedValue { $0.first })
        XCTAssertEqual(down.to, .down)
        XCTAssertEqual(down.from, .up)
        XCTAssertEqual(down.reason, "connect: connection refused")
        XCTAssertEqual(down.consecutive, 2)
        XCTAssertEqual(down.backend, id)
        // Bound: fall × interval (+ jitter) + timeout = 2 × 105 ms + 200 ms; generous margin for a loaded machine.
        XCTAssertLessThan(detection, .milliseconds(410) + .seconds(3), "detected in \(detection)")
        let downState = try XCTUnwrap(checker.state(of: id))
        XCTAssertEqual(downState.status, .down)
        XCTAssertEqual(downState.since, down.time)

        server = try await TestServers.tcp(group: group, port: port)
        defer { server.close(promise: nil) }
        try await eventually { seen.withLockedValue { $0.count } >= 2 }
        let up = try XCTUnwrap(seen.withLockedValue { $0.count >= 2 ? $0[1] : nil })
        XCTAssertEqual(up.from, .down)
        XCTAssertEqual(up.to, .up)
        XCTAssertEqual(up.consecutive, 2, "up after exactly rise successes")
        XCTAssertEqual(up.previousSince, down.time)
        XCTAssertGreaterThanOrEqual(up.time.timeIntervalSince(down.time), 0.09 * 2, "rise 2 needs two checks an interval apart")
    }

    func testInitialDelayAndInitialDownHoldTrafficUntilTheFirstSuccess() async throws {
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let port = server.localAddress!.port!
        let checker = HealthChecker(eventLoopGroup: group)
        let id = target(port: port, fast()).id
        try checker.update(targets: [target(port: port, fast(initialState: .down, initialDelay: .milliseconds(300)))])
        XCTAssertEqual(checker.state(of: id)?.status, .unknown)
        let begun = Date()
        let (run, seen) = start(checker)
        defer { run.cancel() }

        try await eventually { seen.withLockedValue { !$0.isEmpty } }
        let first = try XCTUnwrap(seen.withLockedValue { $0.first })
        XCTAssertEqual(first.from, .unknown)
        XCTAssertEqual(first.to, .up)
        XCTAssertEqual(first.consecutive, 1)
        XCTAssertGreaterThanOrEqual(first.time.timeIntervalSince(begun), 0.3, "no check before the initial delay")
    }

    // MARK: - Targets

    func testUpdateAddsAndRemovesTargetsWithoutRestartingUnchangedOnes() async throws {
        let serverA = try await TestServers.tcp(group: group)
        let serverB = try await TestServers.tcp(group: group)
        let serverC = try await TestServers.tcp(group: group)
        defer { [serverA, serverB, serverC].forEach { $0.close(promise: nil) } }
        let a = target(port: serverA.localAddress!.port!, fast())
        let b = target(port: serverB.localAddress!.port!, fast())
        let c = target(port: serverC.localAddress!.port!, fast())

        let checker = HealthChecker(eventLoopGroup: group)
        try checker.update(targets: [a, b])
        let (run, _) = start(checker)
        defer { run.cancel() }
        try await eventually { (checker.state(of: a.id)?.checks ?? 0) >= 3 && (checker.state(of: b.id)?.checks ?? 0) >= 1 }
        let runnerA = try XCTUnwrap(checker.runner(for: a.id))
        let checksBefore = try XCTUnwrap(checker.state(of: a.id)?.checks)

        try checker.update(targets: [a, c])
        XCTAssertTrue(checker.runner(for: a.id) === runnerA, "an unchanged target keeps its runner and schedule")
        XCTAssertNil(checker.state(of: b.id), "a removed target is forgotten")
        XCTAssertEqual(checker.status().map(\.backend), [a.id, c.id].sorted())
        XCTAssertEqual(Set(checker.healthStates(of: service).keys), [a.id, c.id])
        XCTAssertTrue(checker.healthStates(of: .address(.udp, IPAddress("10.96.0.10")!, port: 80)).isEmpty)
        try await eventually { (checker.state(of: c.id)?.checks ?? 0) >= 1 }
        XCTAssertGreaterThanOrEqual(checker.state(of: a.id)?.checks ?? 0, checksBefore)

        var changed = a
        changed.configuration.rise = 5
        try checker.update(targets: [changed, c])
        XCTAssertFalse(checker.runner(for: a.id) === runnerA, "a changed configuration restarts the checks")
        XCTAssertGreaterThanOrEqual(checker.state(of: a.id)?.checks ?? 0, checksBefore, "…but keeps the state")
    }

    func testAnInvalidTargetIsRejectedAndNothingChanges() throws {
        let checker = HealthChecker(eventLoopGroup: group)
        let good = target(port: 1000, fast())
        try checker.update(targets: [good])
        var bad = target(port: 1001, fast())
        bad.configuration.fall = 0
        XCTAssertThrowsError(try checker.update(targets: [bad])) { error in
            XCTAssertEqual("\(error)", "cannot health-check backend 127.0.0.1:1001 of service test/web (TCP 10.96.0.10:80): fall must be >= 1, got 0; fix the service's health check configuration")
        }
        XCTAssertEqual(checker.status().map(\.backend), [good.id])
        var disabled = target(port: 1002, fast())
        disabled.configuration.kind = .disabled
        try checker.update(targets: [good, disabled])
        XCTAssertEqual(checker.status().map(\.backend), [good.id], "disabled targets are not tracked")
    }

    // MARK: - Lifecycle and status

    func testCancellingRunStopsChecksAndFinishesTransitions() async throws {
        let checker = HealthChecker(eventLoopGroup: group)
        try checker.update(targets: [target(port: 1000, fast())])
        let (run, _) = start(checker)
        try await eventually { (checker.status().first?.state.checks ?? 0) >= 1 }
        run.cancel()
        try await run.value
        XCTAssertTrue(checker.status().isEmpty, "a stopped checker has no targets")
    }

    func testStatusEncodesAsJSON() throws {
        let health = BackendHealth(
            backend: target(port: 8080, fast()).id, serviceName: "test/web", checkKind: "tcp",
            state: HealthState(
                status: .down, since: Date(timeIntervalSince1970: 0), consecutiveFailures: 2,
                lastReason: "connect: connection refused", lastLatency: .microseconds(1_500), checks: 9))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let json = String(decoding: try encoder.encode(health), as: UTF8.self)
        XCTAssertEqual(json, #"{"backend":"127.0.0.1:8080","check":"tcp","checks":9,"consecutiveFailures":2,"consecutiveSuccesses":0,"lastLatencyMs":1.5,"lastReason":"connect: connection refused","service":"TCP 10.96.0.10:80","serviceName":"test/web","since":"1970-01-01T00:00:00Z","state":"down"}"#)
    }
}
