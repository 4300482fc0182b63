import Foundation
import IPVS
import TestSupport
import XCTest

@testable import HealthCheck

final class HealthStateMachineTests: XCTestCase {
    // MARK: - Fixtures

    static let backend = BackendID(
        service: .address(.tcp, IPAddress("10.96.0.10")!, port: 80),
        server: RealServerID(address: IPAddress("10.244.1.7")!, port: 8080))

    /// A controllable clock: every result is stamped one interval after the previous one.
    struct TestClock {
        var time = Date(timeIntervalSince1970: 1_000_000)
        mutating func tick(_ seconds: Double = 1) -> Date {
            time += seconds
            return time
        }
    }

    var clock = TestClock()

    func machine(rise: Int = 2, fall: Int = 3, initial: InitialHealth = .up) -> HealthStateMachine {
        HealthStateMachine(backend: Self.backend, serviceName: "default/web", rise: rise, fall: fall, initialState: initial, at: clock.time)
    }

    func ok(_ weight: Int32? = nil) -> CheckResult {
        CheckResult(.success(reason: "connected", weight: weight), latency: .milliseconds(1), at: clock.tick())
    }

    func fail(_ reason: String = "connect: connection refused") -> CheckResult {
        CheckResult(.failure(reason: reason), latency: .milliseconds(2), at: clock.tick())
    }

    // MARK: - Rise and fall

    func testUpGoesDownAfterFallFailuresInARow() {
        var machine = machine(fall: 3)
        XCTAssertEqual(machine.state.status, .up)
        XCTAssertNil(machine.record(fail()))
        XCTAssertNil(machine.record(fail()))
        let transition = machine.record(fail("HTTP 503"))
        XCTAssertEqual(transition?.from, .up)
        XCTAssertEqual(transition?.to, .down)
        XCTAssertEqual(transition?.reason, "HTTP 503")
        XCTAssertEqual(transition?.consecutive, 3)
        XCTAssertEqual(transition?.latency, .milliseconds(2))
        XCTAssertEqual(transition?.previousSince, Date(timeIntervalSince1970: 1_000_000))
        XCTAssertEqual(transition?.time, clock.time)
        XCTAssertEqual(machine.state.status, .down)
        XCTAssertEqual(machine.state.since, clock.time)
        XCTAssertEqual(machine.state.consecutiveFailures, 3)
        XCTAssertNil(machine.record(fail()), "a down backend does not go down again")
    }

    func testAFailureStreakBrokenBySuccessStartsOver() {
        var machine = machine(fall: 3)
        XCTAssertNil(machine.record(fail()))
        XCTAssertNil(machine.record(fail()))
        XCTAssertNil(machine.record(ok()))
        XCTAssertNil(machine.record(fail()))
        XCTAssertNil(machine.record(fail()))
        XCTAssertEqual(machine.state.status, .up)
        XCTAssertEqual(machine.record(fail())?.to, .down)
    }

    func testDownComesUpAfterRiseSuccessesInARow() {
        var machine = machine(rise: 2, fall: 1)
        XCTAssertEqual(machine.record(fail())?.to, .down)
        let downSince = machine.state.since
        XCTAssertNil(machine.record(ok()))
        XCTAssertNil(machine.record(fail()), "failure resets the success streak")
        XCTAssertNil(machine.record(ok()))
        let up = machine.record(ok())
        XCTAssertEqual(up?.from, .down)
        XCTAssertEqual(up?.to, .up)
        XCTAssertEqual(up?.consecutive, 2)
        XCTAssertEqual(up?.previousSince, downSince)
        XCTAssertEqual(machine.state.status, .up)
        XCTAssertEqual(machine.state.checks, 5)
        XCTAssertEqual(machine.state.lastReason, "connected")
    }

    func testFlappingBackendNeverTransitionsFasterThanRiseAndFallAllow() {
        // Alternating results never build a streak of 2: no transition at all.
        var machine = machine(rise: 2, fall: 2)
        for index in 0..<100 {
            XCTAssertNil(machine.record(index.isMultiple(of: 2) ? fail() : ok()))
        }
        XCTAssertEqual(machine.state.status, .up)

        // Any sequence: transitions are at least min(rise, fall) checks apart.
        var random = SplitMix64(seed: 42)
        var flappy = self.machine(rise: 3, fall: 2)
        var lastTransition = -100
        var transitions = 0
        for index in 0..<2_000 {
            let result = random.next() % 3 == 0 ? fail() : ok()
            if let transition = flappy.record(result) {
                transitions += 1
                let needed = transition.to == .down ? 2 : 3
                XCTAssertGreaterThanOrEqual(index - lastTransition, needed)
                XCTAssertGreaterThanOrEqual(transition.consecutive, needed)
                lastTransition = index
            }
        }
        XCTAssertGreaterThan(transitions, 10, "the sequence should flap some")
    }

    // MARK: - Initial state

    func testInitialDownIsUnknownUntilFirstSuccess() {
        var machine = machine(rise: 3, fall: 2, initial: .down)
        XCTAssertEqual(machine.state.status, .unknown)
        XCTAssertFalse(machine.state.status.isServing)
        let up = machine.record(ok())
        XCTAssertEqual(up?.from, .unknown)
        XCTAssertEqual(up?.to, .up, "one success is enough from unknown, rise applies only after down")
    }

    func testInitialDownGoesDownAfterFallFailuresWithTheReason() {
        var machine = machine(rise: 2, fall: 2, initial: .down)
        XCTAssertNil(machine.record(fail()))
        let down = machine.record(fail("timeout after 500ms"))
        XCTAssertEqual(down?.from, .unknown)
        XCTAssertEqual(down?.to, .down)
        XCTAssertEqual(down?.reason, "timeout after 500ms")
        XCTAssertNil(machine.record(ok()))
        XCTAssertEqual(machine.record(ok())?.to, .up)
    }

    // MARK: - Dynamic weight and reconfiguration

    func testDynamicWeightChangeWhileUpIsAnUpToUpTransition() {
        var machine = machine()
        let first = machine.record(ok(5))
        XCTAssertEqual(first?.from, .up)
        XCTAssertEqual(first?.to, .up)
        XCTAssertEqual(first?.dynamicWeight, 5)
        XCTAssertNil(machine.record(ok(5)), "same weight: nothing to do")
        XCTAssertEqual(machine.record(ok(0))?.dynamicWeight, 0)
        XCTAssertEqual(machine.state.dynamicWeight, 0)
        XCTAssertNotNil(machine.record(ok()), "back to the configured weight")
        XCTAssertNil(machine.state.dynamicWeight)
    }

    func testReconfigureKeepsStatusAndCounters() {
        var machine = machine(rise: 2, fall: 1)
        XCTAssertEqual(machine.record(fail())?.to, .down)
        XCTAssertNil(machine.record(ok()))
        machine.reconfigure(rise: 5, fall: 1, serviceName: "default/web2")
        XCTAssertEqual(machine.state.status, .down)
        XCTAssertEqual(machine.state.consecutiveSuccesses, 1)
        for _ in 0..<3 { XCTAssertNil(machine.record(ok())) }
        XCTAssertEqual(machine.record(ok())?.serviceName, "default/web2")
    }

    func testThresholdsBelowOneAreClampedToOne() {
        var machine = HealthStateMachine(backend: Self.backend, serviceName: "s", rise: 0, fall: -3, initialState: .up, at: clock.time)
        XCTAssertEqual(machine.record(fail())?.to, .down)
        XCTAssertEqual(machine.record(ok())?.to, .up)
    }
}
