import Foundation
import IPVS
import XCTest

@testable import HealthCheck

final class HealthCheckConfigurationTests: XCTestCase {
    // MARK: - Validation

    func testDefaultsAreValid() throws {
        try HealthCheckConfiguration.default.validate()
    }

    func testValidationNamesTheFieldAndTheValue() {
        func message(_ change: (inout HealthCheckConfiguration) -> Void) -> String {
            var config = HealthCheckConfiguration.default
            change(&config)
            do {
                try config.validate()
                return "valid"
            } catch {
                return error.description
            }
        }
        XCTAssertEqual(message { $0.rise = 0 }, "rise must be >= 1, got 0")
        XCTAssertEqual(message { $0.fall = -1 }, "fall must be >= 1, got -1")
        XCTAssertEqual(message { $0.interval = .milliseconds(5) }, "interval must be >= 10ms, got 5ms")
        XCTAssertEqual(message { $0.timeout = .zero }, "timeout must be > 0, got 0s")
        XCTAssertEqual(message { $0.jitter = 1.5 }, "jitter must be between 0 and 1, got 1.5")
        XCTAssertEqual(message { $0.port = 0 }, "port must be between 1 and 65535, got 0")
        XCTAssertEqual(message { $0.kind = .http(HTTPHealthCheck(path: "healthz")) }, "http.path must start with / and contain no spaces, got \"healthz\"")
        XCTAssertEqual(message { $0.kind = .http(HTTPHealthCheck(expectedStatus: 200...700)) }, "http.expectedStatus must lie within 100-599, got 200-700")
        XCTAssertEqual(message { $0.kind = .exec(ExecHealthCheck(arguments: [])) }, "exec.arguments must name a program, got []")
        XCTAssertEqual(message { $0.kind = .exec(ExecHealthCheck(arguments: ["check.sh"])) }, "exec.arguments[0] must be an absolute path (no shell, no PATH search), got \"check.sh\"")
        XCTAssertEqual(message { $0.quorum = Quorum(minimumHealthy: 0) }, "quorum.minimumHealthy must be >= 1, got 0")
    }

    // MARK: - Durations

    func testDurationTextReadsGoDurations() {
        XCTAssertEqual(DurationText.parse("500ms"), .milliseconds(500))
        XCTAssertEqual(DurationText.parse("2s"), .seconds(2))
        XCTAssertEqual(DurationText.parse("1.5s"), .milliseconds(1_500))
        XCTAssertEqual(DurationText.parse("1m"), .seconds(60))
        XCTAssertEqual(DurationText.parse("1m30s"), .seconds(90))
        XCTAssertEqual(DurationText.parse("1m0s"), .seconds(60))
        XCTAssertEqual(DurationText.parse("1h2m3s"), .seconds(3_723))
        XCTAssertEqual(DurationText.parse(" 1h "), .seconds(3_600))
        XCTAssertEqual(DurationText.parse("0"), .zero)
        XCTAssertEqual(DurationText.parse(".5s"), .milliseconds(500))
        XCTAssertEqual(DurationText.parse("1.s"), .seconds(1))
        XCTAssertEqual(DurationText.parse("+2s"), .seconds(2))
        XCTAssertEqual(DurationText.parse("250us"), .microseconds(250))
        XCTAssertEqual(DurationText.parse("250\u{00B5}s"), .microseconds(250))
        XCTAssertEqual(DurationText.parse("7ns"), .nanoseconds(7))
        XCTAssertEqual(DurationText.parse("1.0000000019s"), .nanoseconds(1_000_000_001))
        for bad in ["", "5", "30", "fast", "1 s", "-1s", "1d", "s", ".s", "1.2.3s", "1m30", "3000000h"] {
            XCTAssertNil(DurationText.parse(bad), bad)
        }
    }

    func testDurationTextWritesWhatGoWrites() {
        XCTAssertEqual(DurationText.format(.milliseconds(500)), "500ms")
        XCTAssertEqual(DurationText.format(.seconds(2)), "2s")
        XCTAssertEqual(DurationText.format(.milliseconds(1_500)), "1.5s")
        XCTAssertEqual(DurationText.format(.milliseconds(1_050)), "1.05s")
        XCTAssertEqual(DurationText.format(.seconds(90)), "1m30s")
        XCTAssertEqual(DurationText.format(.seconds(120)), "2m0s")
        XCTAssertEqual(DurationText.format(.seconds(3_723)), "1h2m3s")
        XCTAssertEqual(DurationText.format(.seconds(3_600)), "1h0m0s")
        XCTAssertEqual(DurationText.format(.microseconds(1_500)), "1.5ms")
        XCTAssertEqual(DurationText.format(.nanoseconds(1_500)), "1.5\u{00B5}s")
        XCTAssertEqual(DurationText.format(.nanoseconds(7)), "7ns")
        XCTAssertEqual(DurationText.format(.zero), "0s")
        for text in ["500ms", "1m30s", "1h2m3.5s", "2m0s", "1.05s"] {
            XCTAssertEqual(DurationText.parse(text).map(DurationText.format), text)
        }
    }

    // MARK: - Schedule

    /// With any jitter the first checks spread over a whole interval (however small the jitter), so that
    /// backends added together are not checked together; without, the first comes right after the delay.
    func testFirstCheckWaitsForTheInitialDelayPlusARandomPartOfTheInterval() {
        let noJitter = CheckSchedule.firstDelay(initialDelay: .seconds(2), interval: .seconds(1), jitter: 0, random: 0.9)
        XCTAssertEqual(noJitter, .seconds(2))
        let low = CheckSchedule.firstDelay(initialDelay: .seconds(2), interval: .seconds(1), jitter: 0.1, random: 0)
        let high = CheckSchedule.firstDelay(initialDelay: .seconds(2), interval: .seconds(1), jitter: 0.1, random: 0.999)
        XCTAssertEqual(low, .seconds(2))
        XCTAssertGreaterThan(high, .milliseconds(2_990))
        XCTAssertLessThan(high, .milliseconds(3_000))
    }

    func testNextCheckIsOneJitteredIntervalAfterThePreviousStart() {
        let exact = CheckSchedule.nextDelay(interval: .seconds(1), jitter: 0.2, elapsed: .milliseconds(100), random: 0.5)
        XCTAssertEqual(exact, .milliseconds(900))
        let early = CheckSchedule.nextDelay(interval: .seconds(1), jitter: 0.2, elapsed: .zero, random: 0)
        let late = CheckSchedule.nextDelay(interval: .seconds(1), jitter: 0.2, elapsed: .zero, random: 1)
        XCTAssertEqual(early, .milliseconds(900))
        XCTAssertEqual(late, .milliseconds(1_100))
        let overdue = CheckSchedule.nextDelay(interval: .seconds(1), jitter: 0.1, elapsed: .seconds(3), random: 0.5)
        XCTAssertEqual(overdue, .zero, "a slow check is followed at once, never overlapped")
    }
}
