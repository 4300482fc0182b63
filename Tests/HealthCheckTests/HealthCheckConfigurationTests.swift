import Foundation
import IPVS
import XCTest

@testable import HealthCheck

final class HealthCheckConfigurationTests: XCTestCase {
    let prefix = "ipvs.swift.dev/"

    /// Reads `annotations` (names without the prefix) as the node's operator wrote them, unless `author` says otherwise.
    func parse(_ annotations: [String: String], defaults: HealthCheckConfiguration = .default,
               author: SettingsAuthor = .nodeOperator) throws -> HealthCheckConfiguration {
        try HealthCheckConfiguration(
            annotations: Dictionary(uniqueKeysWithValues: annotations.map { (prefix + $0.key, $0.value) }),
            prefix: prefix, defaults: defaults, author: author)
    }

    func assertError(_ annotations: [String: String], _ expected: String, author: SettingsAuthor = .nodeOperator,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(annotations, author: author), file: file, line: line) { error in
            XCTAssertEqual("\(error)", expected, file: file, line: line)
        }
    }

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

    // MARK: - Annotations

    func testNoAnnotationsGiveTheDefaults() throws {
        XCTAssertEqual(try parse([:]), .default)
        XCTAssertEqual(try parse(["other-annotation": "x"]), .default, "only health- annotations are read")
    }

    func testHTTPAnnotations() throws {
        let config = try parse([
            "health-check": "https", "health-path": "/healthz", "health-host": "web.example.com",
            "health-status": "200-299", "health-body": "ok", "health-insecure-skip-verify": "true",
            "health-interval": "500ms", "health-timeout": "300ms", "health-rise": "3", "health-fall": "1",
            "health-initial-delay": "2s", "health-jitter": "20%", "health-port": "8443", "health-on-failure": "remove",
            "health-initial-state": "down",
        ])
        XCTAssertEqual(config.kind, .http(HTTPHealthCheck(
            tls: true, path: "/healthz", host: "web.example.com", expectedStatus: 200...299, bodyContains: "ok",
            insecureSkipVerify: true)))
        XCTAssertEqual(config.interval, .milliseconds(500))
        XCTAssertEqual(config.timeout, .milliseconds(300))
        XCTAssertEqual(config.rise, 3)
        XCTAssertEqual(config.fall, 1)
        XCTAssertEqual(config.initialDelay, .seconds(2))
        XCTAssertEqual(config.jitter, 0.2, accuracy: 1e-9)
        XCTAssertEqual(config.port, 8443)
        XCTAssertEqual(config.failureAction, .remove)
        XCTAssertEqual(config.initialState, .down)
    }

    func testUDPExecAndQuorumAnnotations() throws {
        let udp = try parse(["health-check": "udp", "health-udp-send": "ping", "health-udp-expect": "pong"])
        XCTAssertEqual(udp.kind, .udp(UDPHealthCheck(payload: Array("ping".utf8), expectedReply: Array("pong".utf8))))

        let json = try parse(["health-check": "exec", "health-exec": #"["/usr/local/bin/check", "--name", "a b"]"#, "health-exec-dynamic-weight": "true"])
        XCTAssertEqual(json.kind, .exec(ExecHealthCheck(arguments: ["/usr/local/bin/check", "--name", "a b"], dynamicWeight: true)))
        let words = try parse(["health-check": "exec", "health-exec": "/bin/check --fast"])
        XCTAssertEqual(words.kind, .exec(ExecHealthCheck(arguments: ["/bin/check", "--fast"])))

        let fallback = try parse(["health-quorum": "2", "health-fallback": "[fd00::9]:8080"])
        XCTAssertEqual(fallback.quorum, Quorum(minimumHealthy: 2, policy: .fallback(FallbackServer(address: IPAddress("fd00::9")!, port: 8080))))
        let keepAll = try parse(["health-quorum": "3", "health-quorum-policy": "keep-all"])
        XCTAssertEqual(keepAll.quorum, Quorum(minimumHealthy: 3, policy: .keepAll))

        XCTAssertEqual(try parse(["health-check": "none"]).kind, .disabled)
    }

    func testKindAnnotationsApplyToAnHTTPDefault() throws {
        let defaults = HealthCheckConfiguration(kind: .http(HTTPHealthCheck(path: "/ready")))
        let config = try parse(["health-host": "a.example"], defaults: defaults)
        XCTAssertEqual(config.kind, .http(HTTPHealthCheck(path: "/ready", host: "a.example")))
    }

    func testAnnotationErrorsNameTheKeyAndValue() {
        assertError(["health-interval": "fast"], #"annotation ipvs.swift.dev/health-interval: "fast" is not a duration; use a number and a unit (ns, us, ms, s, m, h), as Go writes durations: 500ms, 30s, 1m30s"#)
        assertError(["health-interval": "5"], #"annotation ipvs.swift.dev/health-interval: "5" is not a duration; use a number and a unit (ns, us, ms, s, m, h), as Go writes durations: 500ms, 30s, 1m30s"#)
        assertError(["health-rise": "0"], #"annotation ipvs.swift.dev/health-rise: "0" must be >= 1"#)
        assertError(["health-rise": "two"], #"annotation ipvs.swift.dev/health-rise: "two" is not a whole number; use e.g. "2""#)
        assertError(["health-check": "icmp"], #"annotation ipvs.swift.dev/health-check: "icmp" is not a check kind; use tcp, http, https, udp, exec or none"#)
        assertError(["health-path": "/x"], #"annotation ipvs.swift.dev/health-path: "/x" does not apply to a tcp check; set ipvs.swift.dev/health-check"#)
        assertError(["health-check": "http", "health-path": "x"], #"annotation ipvs.swift.dev/health-path: "x" must start with / and contain no spaces"#)
        assertError(["health-check": "http", "health-status": "2xx"], #"annotation ipvs.swift.dev/health-status: "2xx" is not a status range; use e.g. 200-399 or 200"#)
        assertError(["health-port": "70000"], #"annotation ipvs.swift.dev/health-port: "70000" is not a port number; use 1 to 65535"#)
        assertError(["health-on-failure": "drain"], #"annotation ipvs.swift.dev/health-on-failure: "drain" is not one of quiesce, remove"#)
        assertError(["health-check": "exec"], #"annotation ipvs.swift.dev/health-check: "exec" needs the annotation ipvs.swift.dev/health-exec naming the program"#)
        assertError(["health-check": "exec", "health-exec": "[1, 2]"], #"annotation ipvs.swift.dev/health-exec: "[1, 2]" is not a JSON array of strings; use e.g. ["/usr/local/bin/check", "--fast"]"#)
        assertError(["health-check": "exec", "health-exec": "check.sh"], #"annotation ipvs.swift.dev/health-exec: "check.sh" must be an absolute path (no shell, no PATH search)"#)
        assertError(["health-fallback": "fd00::9:80"], #"annotation ipvs.swift.dev/health-fallback: "fd00::9:80" is not an address and port; use e.g. 10.0.0.9:8080 or [fd00::9]:8080"#)
        assertError(["health-quorum-policy": "fallback"], #"annotation ipvs.swift.dev/health-quorum-policy: "fallback" needs ipvs.swift.dev/health-fallback: <address>:<port>"#)
        assertError(["health-jitter": "2"], #"annotation ipvs.swift.dev/health-jitter: "2" is not a fraction between 0 and 1; use e.g. 0.1 or 10%"#)
        XCTAssertThrowsError(try parse(["health-intervall": "1s"])) { error in
            XCTAssertTrue("\(error)".hasPrefix(#"annotation ipvs.swift.dev/health-intervall: "1s" is not a known health annotation; known: health-check,"#), "\(error)")
        }
    }

    // MARK: - What a tenant may choose

    /// A Service's owner may not name a program or a fallback server: only the names the node's operator allows.
    func testATenantOnlyChoosesAmongTheOperatorsExecChecksAndFallbacks() throws {
        let nobody = ProcessUser(name: "nobody", uid: 65534, gid: 65534)
        let dns = ExecHealthCheck(arguments: ["/usr/local/lib/check-dns", "--fast"], user: nobody)
        let sorry = FallbackServer(address: IPAddress("10.0.0.9")!, port: 8080)
        let allowed = SettingsAuthor.tenant(allowed: OperatorAllowances(execChecks: ["check-dns": dns], fallbacks: ["sorry": sorry]))

        let exec = try parse(["health-check": "exec", "health-exec": "check-dns"], author: allowed)
        XCTAssertEqual(exec.kind, .exec(dns))
        let dynamic = try parse(["health-check": "exec", "health-exec": "check-dns", "health-exec-dynamic-weight": "true"], author: allowed)
        XCTAssertEqual(dynamic.kind, .exec(ExecHealthCheck(arguments: dns.arguments, dynamicWeight: true, user: nobody)))
        XCTAssertEqual(try parse(["health-quorum": "2", "health-fallback": "sorry"], author: allowed).quorum,
                       Quorum(minimumHealthy: 2, policy: .fallback(sorry)))
        XCTAssertEqual(try parse(["health-quorum": "2", "health-fallback": "10.0.0.9:8080"], author: allowed).quorum,
                       Quorum(minimumHealthy: 2, policy: .fallback(sorry)), "the address of an allowed fallback names it too")

        assertError(["health-check": "exec", "health-exec": "/bin/sh -c reboot"],
                    #"annotation ipvs.swift.dev/health-exec: "/bin/sh -c reboot" is not an exec check this node allows; an annotation may only name one of check-dns (healthChecks.allowed.exec in the agent's --config)"#,
                    author: allowed)
        assertError(["health-check": "exec"],
                    #"annotation ipvs.swift.dev/health-check: "exec" needs the annotation ipvs.swift.dev/health-exec naming an exec check; an annotation may only name one of check-dns (healthChecks.allowed.exec in the agent's --config)"#,
                    author: allowed)
        assertError(["health-quorum": "2", "health-fallback": "192.0.2.66:22"],
                    #"annotation ipvs.swift.dev/health-fallback: "192.0.2.66:22" is not a fallback server this node allows; an annotation may only name one of sorry (healthChecks.allowed.fallback in the agent's --config)"#,
                    author: allowed)
        let nothing = SettingsAuthor.tenant(allowed: .none)
        assertError(["health-check": "exec", "health-exec": "/usr/local/lib/check-dns"],
                    #"annotation ipvs.swift.dev/health-exec: "/usr/local/lib/check-dns" is not an exec check this node allows; an annotation may only name one the node's operator allows in healthChecks.allowed.exec of the agent's --config, and it allows none"#,
                    author: nothing)
        assertError(["health-quorum": "2", "health-fallback": "10.0.0.9:8080"],
                    #"annotation ipvs.swift.dev/health-fallback: "10.0.0.9:8080" is not a fallback server this node allows; an annotation may only name one the node's operator allows in healthChecks.allowed.fallback of the agent's --config, and it allows none"#,
                    author: nothing)
    }

    /// An exec check the operator set for a Service stays when its owner's annotations only tune it.
    func testATenantKeepsTheOperatorsExecCheck() throws {
        let operatorCheck = HealthCheckConfiguration(kind: .exec(ExecHealthCheck(arguments: ["/usr/local/lib/check"])))
        let tuned = try parse(["health-check": "exec", "health-interval": "2s"], defaults: operatorCheck, author: .tenant(allowed: .none))
        XCTAssertEqual(tuned.kind, operatorCheck.kind)
        XCTAssertEqual(tuned.interval, .seconds(2))
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
