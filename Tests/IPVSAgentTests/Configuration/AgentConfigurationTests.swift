import Foundation
import HealthCheck
import IPVS
@testable import IPVSAgent
import TestSupport
import XCTest

/// The agent's configuration file (`--config`): its health sections, their layering and its errors.
final class AgentConfigurationTests: XCTestCase {
    private let header = "apiVersion: ipvs.swift.dev/v1alpha1\nkind: AgentConfiguration\n"
    private let web = ObjectName(namespace: "shop", name: "web")

    private func parse(_ body: String, base: HealthCheckConfiguration = MappingOptions.noHealthChecks) throws -> AgentConfiguration {
        try AgentConfiguration.parse(header + body, file: "agent.yaml", base: base)
    }

    /// The problems of a file that must be refused, as their descriptions.
    private func problems(_ text: String, base: HealthCheckConfiguration = MappingOptions.noHealthChecks) -> [String] {
        do {
            _ = try AgentConfiguration.parse(text, file: "agent.yaml", base: base)
            XCTFail("accepted:\n\(text)")
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    // MARK: - Layers

    func testWithoutHealthChecksEveryServiceGetsTheBase() throws {
        let configuration = try parse("")
        XCTAssertEqual(configuration.healthDefault, MappingOptions.noHealthChecks)
        XCTAssertEqual(configuration.serviceHealth, [:])
    }

    /// Sections left empty (every entry commented out) are empty, not errors.
    func testEmptySectionsAreEmpty() throws {
        let configuration = try parse("healthChecks:\n  default:\n  services:\n    # shop/web: {check: http}\n", base: .default)
        XCTAssertEqual(configuration, AgentConfiguration(healthDefault: .default))
    }

    func testTheDefaultOverridesTheBaseFieldByField() throws {
        let configuration = try parse("""
            healthChecks:
              default:
                interval: 2s
                fall: 3
                jitter: 5%
                on-failure: remove
            """, base: .default)
        var expected = HealthCheckConfiguration.default // --health-check tcp
        expected.interval = .seconds(2)
        expected.fall = 3
        expected.jitter = 0.05
        expected.failureAction = .remove
        XCTAssertEqual(configuration.healthDefault, expected)
    }

    /// A Service's entry builds on the default wherever the default stands in the file.
    func testAServiceEntryBuildsOnTheDefault() throws {
        let configuration = try parse("""
            healthChecks:
              services:
                shop/web:
                  check: http
                  path: /healthz
                  status: 200-299
                  quorum: 2
                  fallback: 10.0.0.9:8080
              default:
                check: tcp
                interval: 3s
            """)
        XCTAssertEqual(configuration.healthDefault.kind, .tcp)
        let health = try XCTUnwrap(configuration.serviceHealth[web])
        XCTAssertEqual(health.interval, .seconds(3))
        guard case .http(let http) = health.kind else { return XCTFail("\(health.kind)") }
        XCTAssertEqual(http.path, "/healthz")
        XCTAssertEqual(http.expectedStatus, 200...299)
        XCTAssertEqual(health.quorum, Quorum(minimumHealthy: 2, policy: .fallback(FallbackServer(address: ip("10.0.0.9"), port: 8080))))
    }

    func testExecTakesAYAMLListOrAString() throws {
        let configuration = try parse("""
            healthChecks:
              services:
                a/list: {check: exec, exec: [/usr/local/bin/check, --name, "two words"]}
                a/text: {check: exec, exec: /usr/local/bin/check --fast, exec-dynamic-weight: true}
            """)
        let nobody = try ProcessUser.named("nobody")
        XCTAssertEqual(configuration.serviceHealth[ObjectName(namespace: "a", name: "list")]?.kind,
                       .exec(ExecHealthCheck(arguments: ["/usr/local/bin/check", "--name", "two words"], user: nobody)))
        XCTAssertEqual(configuration.serviceHealth[ObjectName(namespace: "a", name: "text")]?.kind,
                       .exec(ExecHealthCheck(arguments: ["/usr/local/bin/check", "--fast"], dynamicWeight: true, user: nobody)))
    }

    /// Exec checks run as `execUser` (nobody unless named); annotations may name only the `allowed` entries.
    func testExecUserAndWhatAnnotationsMayName() throws {
        let configuration = try parse("""
            healthChecks:
              allowed:
                exec:
                  check-dns: [/usr/local/lib/check-dns, --fast]
                fallback:
                  sorry: 10.0.0.9:8080
              default: {check: exec, exec: /usr/local/lib/check-all}
              execUser: daemon
            """)
        let daemon = try ProcessUser.named("daemon")
        XCTAssertEqual(configuration.healthDefault.kind, .exec(ExecHealthCheck(arguments: ["/usr/local/lib/check-all"], user: daemon)))
        XCTAssertEqual(configuration.allowed, OperatorAllowances(
            execChecks: ["check-dns": ExecHealthCheck(arguments: ["/usr/local/lib/check-dns", "--fast"], user: daemon)],
            fallbacks: ["sorry": FallbackServer(address: ip("10.0.0.9"), port: 8080)]))
        XCTAssertEqual(try parse("healthChecks: {}").allowed, .none, "nothing is allowed unless listed")

        XCTAssertEqual(problems(header + """
            healthChecks:
              execUser: root
              allowed:
                exec:
                  relative: check-dns
                  "bad name": /bin/true
                  fine: /bin/true
                fallback:
                  nowhere: 10.0.0.9
                script: {}
            """), [
            #"agent.yaml:7: healthChecks.allowed.exec.relative: "check-dns" must be an absolute path (no shell, no PATH search)"#,
            "agent.yaml:8: healthChecks.allowed.exec.bad name: is not a name an annotation can give; use letters, digits, -, _ and .",
            #"agent.yaml:4: healthChecks.execUser: "root" is root (uid 0); exec checks run as an unprivileged user"#,
            #"agent.yaml:11: healthChecks.allowed.fallback.nowhere: "10.0.0.9" is not an address and port; use e.g. 10.0.0.9:8080 or [fd00::9]:8080"#,
            "agent.yaml:12: healthChecks.allowed.script: is not a field of healthChecks.allowed; known: exec, fallback",
        ])
    }

    /// A Service's annotations reach only what the operator allowed; a refused one is a problem naming it.
    func testTheMapperRefusesAnExecCheckOrFallbackTheOperatorDidNotAllow() throws {
        let configuration = try parse("""
            healthChecks:
              allowed:
                exec: {check-dns: /usr/local/lib/check-dns}
            """)
        let options = MappingOptions(health: configuration.healthDefault, allowed: configuration.allowed)
        func mapped(_ annotations: [String: String]) -> ServiceMapping {
            let service = KubeService(name: web, annotations: annotations, clusterIPs: [ip("10.96.0.10")], ports: [ServicePort(port: 80)])
            return ServiceMapper.map(service, slices: [], options: options)
        }
        let allowed = mapped(["ipvs.swift.dev/health-check": "exec", "ipvs.swift.dev/health-exec": "check-dns"])
        XCTAssertEqual(allowed.issues, [])
        XCTAssertEqual(allowed.services.values.first?.health?.kind,
                       .exec(ExecHealthCheck(arguments: ["/usr/local/lib/check-dns"], user: try ProcessUser.named("nobody"))))

        let program = mapped(["ipvs.swift.dev/health-check": "exec", "ipvs.swift.dev/health-exec": "/bin/sh -c id"])
        XCTAssertNil(program.services.values.first?.health, "no check runs")
        XCTAssertEqual(program.issues.map(\.field), ["metadata.annotations[ipvs.swift.dev/health-exec]"])
        XCTAssertTrue(program.issues.first?.message.contains("is not an exec check this node allows") ?? false, "\(program.issues)")

        let fallback = mapped(["ipvs.swift.dev/health-quorum": "1", "ipvs.swift.dev/health-fallback": "192.0.2.66:22",
                               "ipvs.swift.dev/health-check": "tcp"])
        XCTAssertNil(fallback.services.values.first?.health)
        XCTAssertEqual(fallback.issues.map(\.field), ["metadata.annotations[ipvs.swift.dev/health-fallback]"])
    }

    /// The mapping uses a Service's entry instead of the default, and its annotations over either.
    func testTheMapperLayersTheServiceEntryUnderTheAnnotations() throws {
        let configuration = try parse("""
            healthChecks:
              default: {check: tcp}
              services:
                shop/web: {check: http, path: /healthz, interval: 5s}
            """)
        let options = MappingOptions(health: configuration.healthDefault, serviceHealth: configuration.serviceHealth)
        func health(_ name: ObjectName, annotations: [String: String] = [:]) -> HealthCheckConfiguration? {
            let service = KubeService(name: name, annotations: annotations, clusterIPs: [ip("10.96.0.10")],
                                      ports: [ServicePort(port: 80, targetPort: .number(8080))])
            let slice = EndpointSlice(name: ObjectName(namespace: name.namespace, name: "\(name.name)-1"), serviceName: name.name,
                                      addressFamily: .inet, endpoints: [Endpoint(addresses: [ip("10.244.1.5")])],
                                      ports: [EndpointPort(port: 8080)])
            return ServiceMapper.map(service, slices: [slice], options: options).services.values.first?.health
        }
        XCTAssertEqual(health(ObjectName(namespace: "shop", name: "other"))?.kind, .tcp, "the default")
        let fromFile = try XCTUnwrap(health(web))
        XCTAssertEqual(fromFile.kind, .http(HTTPHealthCheck(path: "/healthz")))
        XCTAssertEqual(fromFile.interval, .seconds(5))
        let annotated = try XCTUnwrap(health(web, annotations: ["ipvs.swift.dev/health-path": "/ready"]))
        XCTAssertEqual(annotated.kind, .http(HTTPHealthCheck(path: "/ready")), "the annotation wins")
        XCTAssertEqual(annotated.interval, .seconds(5), "the file's entry stays under it")
    }

    // MARK: - Errors

    func testABadValueNamesTheFileLineAndSetting() {
        XCTAssertEqual(problems(header + """
            healthChecks:
              services:
                shop/web:
                  check: http
                  interval: fast
            """), [#"agent.yaml:7: healthChecks.services[shop/web].interval: "fast" is not a duration; use a number and a unit (ns, us, ms, s, m, h), as Go writes durations: 500ms, 30s, 1m30s"#])
    }

    /// Every problem is reported at once, not only the first.
    func testEveryProblemIsReportedWithItsLine() {
        XCTAssertEqual(problems("""
            apiVersion: ipvs.swift.dev/v2
            kind: AgentConfiguration
            scheduler: rr
            healthChecks:
              default:
                chek: tcp
              services:
                web: {check: tcp}
                shop/web: {check: tcp, path: /healthz}
                shop/api: {check: exec}
                shop/dns: {check: exec, exec: {program: /bin/true}}
                shop/list: {rise: [1, 2]}
                shop/empty: {path: }
              extra: 1
            """), [
            #"agent.yaml:1: apiVersion: is "ipvs.swift.dev/v2"; this agent reads ipvs.swift.dev/v1alpha1"#,
            "agent.yaml:3: scheduler: is not a field of AgentConfiguration; known: apiVersion, kind, healthChecks",
            "agent.yaml:6: healthChecks.default.chek: is not a health check setting; known: " + Self.settings,
            "agent.yaml:8: healthChecks.services[web]: is not a Service name; use namespace/name, e.g. default/web",
            #"agent.yaml:9: healthChecks.services[shop/web].path: "/healthz" does not apply to a tcp check; set check"#,
            #"agent.yaml:10: healthChecks.services[shop/api].check: "exec" needs the setting exec naming the program"#,
            "agent.yaml:11: healthChecks.services[shop/dns].exec: must be a string or a list of strings",
            "agent.yaml:12: healthChecks.services[shop/list].rise: must be a single value, not a list",
            "agent.yaml:13: healthChecks.services[shop/empty].path: has no value",
            "agent.yaml:14: healthChecks.extra: is not a field of healthChecks; known: default, services, execUser, allowed",
        ])
    }

    private static let settings = "check, port, interval, timeout, rise, fall, initial-delay, jitter, on-failure, initial-state, "
        + "path, host, status, body, insecure-skip-verify, udp-send, udp-expect, exec, exec-dynamic-weight, quorum, quorum-policy, fallback"

    func testAValueThatFailsValidationNamesItsSetting() {
        XCTAssertEqual(problems(header + "healthChecks:\n  default:\n    check: tcp\n    rise: 0\n"),
                       [#"agent.yaml:6: healthChecks.default.rise: "0" must be >= 1"#])
    }

    func testTheDocumentMustBeAnAgentConfiguration() {
        XCTAssertEqual(problems("kind: Service\n"), [
            #"agent.yaml:1: kind: is "Service"; a configuration file is kind: AgentConfiguration, or kube-proxy's kind: KubeProxyConfiguration"#,
            "agent.yaml:1: apiVersion: is missing; a configuration file starts with apiVersion: ipvs.swift.dev/v1alpha1 and kind: AgentConfiguration",
        ])
        XCTAssertEqual(problems("- a\n"), [
            "agent.yaml:1: is not a mapping; start with apiVersion: ipvs.swift.dev/v1alpha1 and kind: AgentConfiguration",
        ])
        XCTAssertEqual(problems(header + "---\n" + header), ["agent.yaml:1: holds 2 documents; a configuration file holds one"])
        XCTAssertEqual(problems(header + "healthChecks: [\n"), ["agent.yaml:4: not YAML or JSON: did not find expected node content (while parsing a flow node at line 4)"])
    }

    func testAMissingFileSaysSo() {
        XCTAssertThrowsError(try AgentConfiguration.load(path: "/nonexistent/agent.yaml", base: .default)) { error in
            XCTAssertEqual("\(error)", "/nonexistent/agent.yaml: cannot read the configuration file: No such file or directory")
        }
        let folder = NSTemporaryDirectory()
        XCTAssertThrowsError(try AgentConfiguration.load(path: folder, base: .default)) { error in
            XCTAssertEqual("\(error)", "\(folder): cannot read the configuration file: it is a folder; name the file")
        }
    }

    /// The example in Examples/ is valid, and says what its comments say.
    func testTheExampleFileIsValid() throws {
        let path = repositoryPath("Examples/agent-config.yaml")
        let configuration = try AgentConfiguration.load(path: path, base: MappingOptions.noHealthChecks)
        XCTAssertEqual(configuration.healthDefault.kind, .tcp)
        XCTAssertEqual(configuration.healthDefault.fall, 3)
        XCTAssertEqual(configuration.serviceHealth[web]?.quorum, Quorum(minimumHealthy: 2, policy: .keepAll))
        XCTAssertEqual(configuration.serviceHealth[ObjectName(namespace: "shop", name: "legacy")]?.kind, .disabled)
        guard case .exec(let exec)? = configuration.serviceHealth[ObjectName(namespace: "kube-system", name: "kube-dns")]?.kind else {
            return XCTFail("kube-dns is not an exec check")
        }
        XCTAssertEqual(exec.arguments, ["/usr/local/bin/check-dns", "--timeout", "1"])
        XCTAssertEqual(exec.user?.name, "nobody")
        XCTAssertEqual(configuration.allowed.execChecks["check-dns"], exec)
        XCTAssertEqual(configuration.allowed.fallbacks, ["sorry": FallbackServer(address: ip("10.0.0.9"), port: 8080)])
    }
}
