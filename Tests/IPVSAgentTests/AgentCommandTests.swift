import ArgumentParser
import XCTest
@testable import IPVSAgent

final class AgentCommandTests: XCTestCase {
    func testDefaultsAndDurations() throws {
        let command = try AgentCommand.parse(["--manifests", "Examples/"])
        XCTAssertEqual(command.scheduler, "rr")
        XCTAssertEqual(command.interface, "kube-ipvs0")
        XCTAssertEqual(command.syncPeriod.duration, .seconds(30))
        XCTAssertEqual(command.drainTimeout.duration, .seconds(60))
        XCTAssertEqual(command.metricsAddress, "127.0.0.1:10249")
        XCTAssertEqual(command.stateFile, "/run/ipvs-agent/state.json")
    }

    /// Flags read durations as annotations and kubeadm's configuration write them (Go's format).
    func testDurationFlagsTakeGoDurations() throws {
        XCTAssertEqual(try AgentCommand.parse(["--manifests", "x", "--sync-period", "1m30s"]).syncPeriod.duration, .seconds(90))
        XCTAssertEqual(try AgentCommand.parse(["--manifests", "x", "--drain-timeout", "1m0s"]).drainTimeout.duration, .seconds(60))
        XCTAssertEqual(DurationArgument(argument: "500ms")?.duration, .milliseconds(500))
        XCTAssertEqual(DurationArgument(argument: "1h2m3s")?.duration, .seconds(3_723))
        for bad in ["soon", "30", "1.5", "-1s"] {
            XCTAssertNil(DurationArgument(argument: bad), bad)
            XCTAssertThrowsError(try AgentCommand.parse(["--manifests", "x", "--sync-period", bad]), bad)
        }
        XCTAssertEqual(DurationArgument(.seconds(30)).defaultValueDescription, "30s")
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
        XCTAssertTrue(message(["--manifests", "x", "--scheduler", "fastest"]).contains("unknown scheduler 'fastest'"))
        XCTAssertTrue(message(["--manifests", "x", "--node-ip", "10.0.0.300"]).contains("--node-ip"))
        XCTAssertTrue(message(["--manifests", "x", "--metrics-address", "localhost"]).contains("--metrics-address"))
        XCTAssertTrue(message(["--cleanup", "--once"]).contains("--cleanup runs alone"))
        XCTAssertEqual(message(["--cleanup"]), "accepted")
        XCTAssertEqual(message(["--manifests", "x", "--metrics-address", "none"]), "accepted")
        XCTAssertTrue(message(["--manifests", "x", "--cluster-cidr", "10.244.0.0/16,10.244.0.300/8"])
            .contains("--cluster-cidr: '10.244.0.300/8' is not an address range"))
        XCTAssertTrue(message(["--manifests", "x", "--nodeport-addresses", "192.168.0.1"]).contains("--nodeport-addresses: '192.168.0.1'"))
        XCTAssertTrue(message(["--manifests", "x", "--nodeport-addresses", "192.168.0.0/33"]).contains("--nodeport-addresses: '192.168.0.0/33'"))
        XCTAssertTrue(message(["--manifests", "x", "--nodeport-addresses", "10.0.0.0/8", "--node-ip", "10.0.0.1"]).contains("not both"))
        XCTAssertEqual(message(["--manifests", "x", "--cluster-cidr", "10.244.0.0/16, fd00:10:244::/56", "--masquerade-all"]), "accepted")
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
