import ArgumentParser
import IPVS
import Logging
import XCTest
@testable import IPVSAgent

final class AgentCommandTests: XCTestCase {
    func testDefaultsAndDurations() throws {
        let command = try AgentCommand.parse(["--manifests", "Examples/"])
        XCTAssertEqual(command.interface, "kube-ipvs0")
        XCTAssertEqual(command.drainTimeout.duration, .seconds(60))
        // Settings a KubeProxyConfiguration may give too: unset on the command line, defaulted in ProxySettings.
        XCTAssertNil(command.scheduler)
        XCTAssertNil(command.syncPeriod)
        XCTAssertNil(command.metricsAddress)
        let settings = ProxySettings(command: command)
        XCTAssertEqual(settings.scheduler, .roundRobin)
        XCTAssertEqual(settings.syncPeriod, .seconds(30))
        XCTAssertEqual(settings.metricsAddress, "127.0.0.1:10249")
        XCTAssertEqual(settings.healthzAddress, "0.0.0.0:10256")
        XCTAssertEqual(command.stateFile, "/run/ipvs-agent/state.json")
    }

    /// Flags read durations as annotations and kubeadm's configuration write them (Go's format).
    func testDurationFlagsTakeGoDurations() throws {
        XCTAssertEqual(try AgentCommand.parse(["--manifests", "x", "--sync-period", "1m30s"]).syncPeriod?.duration, .seconds(90))
        XCTAssertEqual(try AgentCommand.parse(["--manifests", "x", "--drain-timeout", "1m0s"]).drainTimeout.duration, .seconds(60))
        XCTAssertEqual(DurationArgument(argument: "500ms")?.duration, .milliseconds(500))
        XCTAssertEqual(DurationArgument(argument: "1h2m3s")?.duration, .seconds(3_723))
        for bad in ["soon", "30", "1.5", "-1s"] {
            XCTAssertNil(DurationArgument(argument: bad), bad)
            XCTAssertThrowsError(try AgentCommand.parse(["--manifests", "x", "--sync-period", bad]), bad)
        }
        XCTAssertEqual(DurationArgument(.seconds(30)).defaultValueDescription, "30s")
    }

    /// `--scheduler` is parsed once, into the scheduler the mapping uses.
    func testSchedulerIsParsedIntoAScheduler() throws {
        XCTAssertEqual(try AgentCommand.parse(["--manifests", "x", "--scheduler", "mh"]).scheduler, .maglevHashing)
        XCTAssertEqual(try AgentCommand.parse(["--manifests", "x", "--scheduler", "wlc"]).scheduler, .weightedLeastConnection)
        XCTAssertThrowsError(try AgentCommand.parse(["--manifests", "x", "--scheduler", "MH"]))
    }

    func testInvalidCommandLinesAreRejectedWithAReason() {
        func message(_ arguments: [String]) -> String {
            do {
                _ = try AgentCommand.parse(arguments)
                return "accepted"
            } catch {
                return AgentCommand.message(for: error)
            }
        }
        XCTAssertTrue(message([]).contains("--manifests"))
        XCTAssertTrue(message([]).contains("--kubeconfig PATH or --in-cluster"))
        XCTAssertTrue(message(["--manifests", "x", "--kubeconfig", "k"]).contains("give one source of Services"))
        XCTAssertTrue(message(["--kubeconfig", "k", "--in-cluster"]).contains("give one source of Services"))
        XCTAssertTrue(message(["--in-cluster", "--once"]).contains("--once and --dry-run read --manifests only"))
        XCTAssertEqual(message(["--kubeconfig", "k", "--min-sync-period", "0s"]), "accepted")
        // The zone comes from the Node object with the API server, from --node-zone with files.
        XCTAssertTrue(message(["--in-cluster", "--node-zone", "zone-a"]).contains("topology.kubernetes.io/zone label of this node's Node object"))
        XCTAssertEqual(message(["--manifests", "x", "--node-zone", "zone-a"]), "accepted")
        XCTAssertTrue(message(["--manifests", "x", "--scheduler", "fastest"]).contains("unknown scheduler 'fastest'"))
        XCTAssertTrue(message(["--manifests", "x", "--node-ip", "10.0.0.300"]).contains("--node-ip"))
        XCTAssertTrue(message(["--manifests", "x", "--metrics-address", "localhost"]).contains("--metrics-address"))
        XCTAssertTrue(message(["--cleanup", "--once"]).contains("--cleanup runs alone"))
        XCTAssertEqual(message(["--cleanup"]), "accepted")
        XCTAssertEqual(message(["--manifests", "x", "--metrics-address", "none"]), "accepted")
        // kube-proxy's flags are checked as the agent's own.
        XCTAssertTrue(message(["--manifests", "x", "--ipvs-scheduler", "fastest"]).contains("unknown scheduler 'fastest'"))
        XCTAssertTrue(message(["--manifests", "x", "--healthz-bind-address", "here"]).contains("--healthz-bind-address"))
        XCTAssertTrue(message(["--manifests", "x", "--ipvs-exclude-cidrs", "10.0.0.0/8,10.1.0.0"]).contains("'10.1.0.0' is not a CIDR"))
        XCTAssertTrue(message(["--manifests", "x", "--ipvs-sync-period", "10ms"]).contains("at least 100ms"))
        XCTAssertEqual(message(["--manifests", "x", "--metrics-bind-address", "0.0.0.0", "--healthz-bind-address", "[::]:10256",
                                "--ipvs-strict-arp", "--ipvs-min-sync-period", "1s", "--ipvs-tcpfin-timeout", "2m0s",
                                "--ipvs-exclude-cidrs", "10.0.0.0/8,fd00::/8", "--bind-address-hard-fail", "--hostname-override", "n1"]),
                       "accepted")
        XCTAssertTrue(message(["--manifests", "x", "--cluster-cidr", "10.244.0.0/16,10.244.0.300/8"])
            .contains("--cluster-cidr: '10.244.0.300/8' is not an address range"))
        XCTAssertTrue(message(["--manifests", "x", "--nodeport-addresses", "192.168.0.1"]).contains("--nodeport-addresses: '192.168.0.1'"))
        XCTAssertTrue(message(["--manifests", "x", "--nodeport-addresses", "192.168.0.0/33"]).contains("--nodeport-addresses: '192.168.0.0/33'"))
        XCTAssertTrue(message(["--manifests", "x", "--nodeport-addresses", "10.0.0.0/8", "--node-ip", "10.0.0.1"]).contains("not both"))
        XCTAssertEqual(message(["--manifests", "x", "--cluster-cidr", "10.244.0.0/16, fd00:10:244::/56", "--masquerade-all"]), "accepted")
    }

    /// `--version` alone prints the project's version and exits 0, without asking for --manifests.
    func testVersionNeedsNoOtherArgument() {
        XCTAssertThrowsError(try AgentCommand.parse(["--version"])) { error in
            XCTAssertEqual(AgentCommand.message(for: error), "ipvs-agent \(ProjectVersion.current)")
            XCTAssertEqual(AgentCommand.exitCode(for: error), .success)
        }
    }

    func testNetfilterFlagsTakeCommaSeparatedRanges() throws {
        let command = try AgentCommand.parse(["--manifests", "x", "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/56",
                                              "--nodeport-addresses", "192.168.1.0/24", "--nodeport-addresses", "127.0.0.0/8"])
        XCTAssertEqual(command.clusterPrefixes.map(\.description), ["10.244.0.0/16", "fd00:10:244::/56"])
        XCTAssertEqual(command.nodePortAddresses(among: [ip("192.168.1.10"), ip("10.0.0.1"), ip("127.0.0.1"), ip("::1")]),
                       [ip("192.168.1.10"), ip("127.0.0.1")])
        XCTAssertFalse(command.packetFilterOptions.masqueradeAll)
    }

    func testMetricsAddressParsing() {
        XCTAssertEqual(MetricsServer.parse("127.0.0.1:10249")?.0, "127.0.0.1")
        XCTAssertEqual(MetricsServer.parse("[::1]:9100")?.0, "::1")
        XCTAssertEqual(MetricsServer.parse("[::1]:9100")?.1, 9100)
        XCTAssertNil(MetricsServer.parse("127.0.0.1"))
        XCTAssertNil(MetricsServer.parse(":80"))
    }

    /// With files, the zone of the slices' zone hints is `--node-zone` (kube-proxy takes it from its
    /// Node, which files do not have).
    func testNodeZoneIsTheMappingsZone() throws {
        func zone(_ arguments: [String]) throws -> String? {
            let command = try AgentCommand.parse(arguments)
            return AgentRunner(command: command, configurationFile: nil, logger: Logger(label: "test"))
                .mappingOptions(links: nil, configuration: AgentConfiguration(healthDefault: command.baseHealth),
                                settings: ProxySettings(command: command)).zone
        }
        XCTAssertEqual(try zone(["--manifests", "x", "--node-zone", "zone-a"]), "zone-a")
        XCTAssertNil(try zone(["--manifests", "x"]))
    }

    func testHelpTeachesWithExamples() {
        let help = AgentCommand.helpMessage()
        for part in ["--dry-run", "--once", "--cleanup", "ipvs.swift.dev/scheduler", "connection refused", "Examples:"] {
            XCTAssertTrue(help.contains(part), "help lacks \(part)")
        }
        // What --once exits with (AgentRunner: ExitCode(1) after problems, ExitCode(2) before start).
        let once = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for part in ["0 success", "1 applied with errors", "2 could not start"] {
            XCTAssertTrue(once.contains(part), "--once help lacks \(part)")
        }
    }
}
