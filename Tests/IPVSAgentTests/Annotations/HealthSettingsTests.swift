import Foundation
import HealthCheck
import IPVS
import XCTest

@testable import IPVSAgent

/// A Service's `ipvs.swift.dev/health-*` annotations read into a health check configuration, and what a
/// tenant may choose among the operator's allowances.
final class HealthSettingsTests: XCTestCase {
    let prefix = "ipvs.swift.dev/"

    /// Reads `annotations` (names without the prefix) as the node's operator wrote them, unless `author` says otherwise.
    func parse(_ annotations: [String: String], defaults: HealthCheckConfiguration = .default,
               author: SettingsAuthor = .nodeOperator) throws -> HealthCheckConfiguration {
        try HealthSettings.configuration(
            annotations: Dictionary(uniqueKeysWithValues: annotations.map { (prefix + $0.key, $0.value) }),
            prefix: prefix, defaults: defaults, author: author)
    }

    /// The error as the agent reports it: `annotation <key>: "<value>" <problem>`.
    func message(_ error: Error) -> String {
        switch error as? HealthSettingsError {
        case .setting(let setting, let value, let problem)?: "annotation \(prefix + setting.annotationName): \"\(value)\" \(problem)"
        case .unknown(let key, let value, let problem)?: "annotation \(key): \"\(value)\" \(problem)"
        case .defaults(let invalid)?: invalid.description
        case nil: "\(error)"
        }
    }

    func assertError(_ annotations: [String: String], _ expected: String, author: SettingsAuthor = .nodeOperator,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(annotations, author: author), file: file, line: line) { error in
            XCTAssertEqual(message(error), expected, file: file, line: line)
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
            XCTAssertTrue(message(error).hasPrefix(#"annotation ipvs.swift.dev/health-intervall: "1s" is not a known health annotation; known: health-check,"#), "\(error)")
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
}
