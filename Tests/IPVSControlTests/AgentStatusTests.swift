import AgentStatus
import Foundation
import XCTest
@testable import IPVSControl

/// `ipvsctl status` against a canned `/status` document shaped as ipvs-agent writes it.
final class AgentStatusTests: XCTestCase {
    static let document = #"""
    {
      "addresses" : [
        "10.96.0.10"
      ],
      "health" : [
        {
          "backend" : "10.244.1.5:8080",
          "check" : "tcp",
          "consecutiveFailures" : 0,
          "consecutiveSuccesses" : 12,
          "kubernetesService" : "default/web:http",
          "lastLatencyMilliseconds" : 0.4123,
          "lastReason" : "connected",
          "service" : "TCP 10.96.0.10:80",
          "since" : "2026-11-30T23:10:15Z",
          "state" : "up"
        },
        {
          "backend" : "10.244.1.6:8080",
          "check" : "tcp",
          "consecutiveFailures" : 4,
          "consecutiveSuccesses" : 0,
          "kubernetesService" : "default/web:http",
          "lastReason" : "connect: connection refused \u00e9\/",
          "service" : "TCP 10.96.0.10:80",
          "since" : "2026-11-30T23:13:00Z",
          "state" : "down"
        }
      ],
      "quorum" : [
        {
          "configured" : 2,
          "fallback" : "10.244.9.9:8080",
          "healthy" : 1,
          "kubernetesService" : "default/web:http",
          "minimumHealthy" : 2,
          "policy" : "fallback",
          "quorumLost" : true,
          "service" : "TCP 10.96.0.10:80"
        }
      ],
      "services" : [
        {
          "kubernetesService" : "default/web",
          "realServers" : [
            { "address" : "10.244.1.5:8080", "draining" : false, "weight" : 0 },
            { "address" : "10.244.1.6:8080", "draining" : false, "weight" : 0 },
            { "address" : "10.244.9.9:8080", "draining" : false, "weight" : 1 }
          ],
          "scheduler" : "rr",
          "service" : "TCP 10.96.0.10:80"
        },
        {
          "kubernetesService" : "kube-system/dns",
          "realServers" : [ { "address" : "10.244.2.2:53", "draining" : true, "weight" : 0 } ],
          "scheduler" : "wrr",
          "service" : "UDP 10.96.0.53:53"
        }
      ]
    }
    """#

    func harness() -> Harness {
        let harness = Harness()
        harness.agentStatus = Array(Self.document.utf8)
        harness.now = 1_796_080_215 + 192
        return harness
    }

    func testTextShowsEachBackendsWeightStateAgeLatencyAndTheQuorum() {
        let harness = harness()
        XCTAssertEqual(harness.run(["status"]), ExitStatus.success, harness.error)
        XCTAssertEqual(harness.agentAddresses, ["127.0.0.1:10249"], "the agent's default --metrics-address")
        XCTAssertFalse(harness.backendOpened, "status does not touch the kernel")
        let lines = harness.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines[0], "ipvs-agent at 127.0.0.1:10249: 2 virtual services, 2 backends checked (1 up, 1 down)")
        XCTAssertEqual(lines[2], "TCP 10.96.0.10:80  default/web  rr")
        XCTAssertEqual(lines[3], "  quorum 2 (fallback 10.244.9.9:8080): LOST, 1 of 2 healthy; serving from the fallback only")
        XCTAssertEqual(lines[4].split(separator: " "), ["BACKEND", "WEIGHT", "CHECK", "STATE", "SINCE", "LATENCY", "LAST", "RESULT"])
        XCTAssertEqual(lines[5].split(separator: " ").map(String.init),
                       ["10.244.1.5:8080", "0", "tcp", "up", "2026-11-30T23:10:15Z", "(3m12s", "ago)", "0.412", "ms", "connected"])
        XCTAssertTrue(lines[6].hasPrefix("  10.244.1.6:8080  0"), lines[6])
        XCTAssertTrue(lines[6].contains("(27s ago)") && lines[6].hasSuffix("  connect: connection refused é/"), lines[6])
        XCTAssertTrue(lines[7].contains("10.244.9.9:8080") && lines[7].hasSuffix("(fallback server)"), lines[7])
        XCTAssertEqual(lines[9], "UDP 10.96.0.53:53  kube-system/dns  wrr")
        XCTAssertTrue(lines[11].hasSuffix("(not checked)") && lines[11].contains("0 draining"), lines[11])
        // Columns line up.
        XCTAssertEqual(lines[4].range(of: "STATE")?.lowerBound.utf16Offset(in: lines[4]),
                       lines[5].range(of: "up")?.lowerBound.utf16Offset(in: lines[5]))
    }

    func testServiceFilterAndJSONOutput() throws {
        let harness = harness()
        XCTAssertEqual(harness.run(["status", "--agent-address=[::1]:9999", "--service", "default/web", "--output", "json"]),
                       ExitStatus.success, harness.error)
        XCTAssertEqual(harness.agentAddresses, ["[::1]:9999"])
        let json = try JSONValue.parse(harness.output)
        XCTAssertEqual(json["agent"]?.string, "[::1]:9999")
        let services = try XCTUnwrap(json["services"]?.array)
        XCTAssertEqual(services.map { $0["service"]?.string }, ["TCP 10.96.0.10:80"])
        XCTAssertEqual(services[0]["quorum"]?["lost"]?.bool, true)
        let backends = try XCTUnwrap(services[0]["backends"]?.array)
        XCTAssertEqual(backends.map { $0["state"] }, [.string("up"), .string("down"), .null])
        XCTAssertEqual(backends[0]["latency_ms"]?.number, 0.412)
        XCTAssertEqual(backends[2]["fallback"]?.bool, true)
        XCTAssertEqual(backends[1]["consecutive_failures"]?.number, 4)

        XCTAssertEqual(harness.run(["status", "--service", "10.96.0.53:53"]), ExitStatus.success)
        XCTAssertTrue(harness.text.contains("UDP 10.96.0.53:53") && !harness.text.contains("TCP 10.96.0.10:80"), harness.text)
        XCTAssertEqual(harness.run(["status", "--service", "default/nothing"]), ExitStatus.success)
        XCTAssertTrue(harness.text.contains("no virtual service matches \"default/nothing\""), harness.text)
    }

    func testTheNftablesTableIsShownWhenTheAgentKeepsOne() throws {
        let harness = harness()
        let filter = #""packetFilter" : { "elements" : { "vips-v4" : 2, "accepted-v4" : 3 }, "failures" : 1, "replacements" : 2, "#
            + #""synced" : false, "table" : "inet ipvs-agent", "updates" : 14 },"#
        harness.agentStatus = Array(Self.document.replacingOccurrences(of: #""addresses" : ["#, with: filter + #""addresses" : ["#).utf8)
        XCTAssertEqual(harness.run(["status"]), ExitStatus.success, harness.error)
        let lines = harness.text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[1], "nftables table inet ipvs-agent: NOT in step (the next sync writes it whole); 2 whole writes, 14 updates, "
                       + "1 refused; elements: accepted-v4 3, vips-v4 2")
        XCTAssertEqual(harness.run(["status", "--output", "json"]), ExitStatus.success, harness.error)
        let nftables = try XCTUnwrap(try JSONValue.parse(harness.output)["nftables"])
        XCTAssertEqual(nftables["table"]?.string, "inet ipvs-agent")
        XCTAssertEqual(nftables["elements"]?["accepted-v4"]?.number, 3)
        XCTAssertEqual(nftables["updates"]?.number, 14)
        // Without a table: no line, and null in JSON.
        harness.agentStatus = Array(Self.document.utf8)
        XCTAssertEqual(harness.run(["status", "--output", "json"]), ExitStatus.success, harness.error)
        XCTAssertEqual(try JSONValue.parse(harness.output)["nftables"], .null)
    }

    func testUnreachableAgentSaysWhereAndWhatToDo() {
        let harness = Harness()
        // Port 1 on the loopback: nothing listens there.
        XCTAssertEqual(harness.run(["status", "--agent-address", "127.0.0.1:1"]), ExitStatus.listingFailed)
        XCTAssertTrue(harness.error.hasPrefix("ipvsctl: cannot reach ipvs-agent at 127.0.0.1:1: "), harness.error)
        XCTAssertTrue(harness.error.contains("--agent-address HOST:PORT"), harness.error)
        XCTAssertEqual(harness.output, [])
    }

    func testAnswersThatAreNotTheStatusAreRefused() throws {
        let harness = harness()
        harness.agentStatus = Array("not found; try /metrics".utf8)
        XCTAssertEqual(harness.run(["status"]), ExitStatus.listingFailed)
        XCTAssertTrue(harness.error.contains("something else than JSON"), harness.error)
        harness.agentStatus = Array(#"{"services": [{"realServers": []}]}"#.utf8)
        XCTAssertEqual(harness.run(["status"]), ExitStatus.listingFailed)
        XCTAssertTrue(harness.error.contains("no \"service\""), harness.error)

        let notFound = Array("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n".utf8)
        XCTAssertThrowsError(try AgentHTTPClient.body(of: notFound, path: "/status", address: "h:1")) { error in
            XCTAssertTrue("\(error)".contains("\"HTTP/1.1 404 Not Found\""), "\(error)")
        }
        let ok = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}".utf8)
        XCTAssertEqual(try AgentHTTPClient.body(of: ok, path: "/status", address: "h:1"), Array("{}".utf8))
    }

    func testCommandLine() throws {
        XCTAssertEqual(try AgentStatusCommand.parse([]), AgentStatusCommand())
        XCTAssertEqual(try AgentStatusCommand.parse(["--output=json", "--agent-address", "node-1:10249"]),
                       AgentStatusCommand(address: "node-1:10249", output: .json))
        XCTAssertThrowsError(try AgentStatusCommand.parse(["--agent-address", "10.0.0.1"]))
        XCTAssertThrowsError(try AgentStatusCommand.parse(["--agent-address", "fd00::1:80"]), "IPv6 needs brackets")
        XCTAssertThrowsError(try AgentStatusCommand.parse(["--output", "yaml"]))
        XCTAssertThrowsError(try AgentStatusCommand.parse(["--output"]))
        XCTAssertThrowsError(try AgentStatusCommand.parse(["-n"]))
        XCTAssertThrowsError(try AgentStatusCommand.parse(["--output", "json", "--output", "text"]))

        let harness = Harness()
        XCTAssertEqual(harness.run(["status", "--help"]), ExitStatus.success)
        XCTAssertTrue(harness.text.contains("ipvsctl status --agent-address [fd00::1]:10249 --service default/web"), harness.text)
        XCTAssertEqual(harness.agentAddresses, [])
        XCTAssertEqual(harness.run(["status", "--bogus"]), ExitStatus.badOption)
        XCTAssertTrue(harness.error.contains("status --help"), harness.error)
        XCTAssertEqual(harness.run(["--help"]), ExitStatus.success)
        XCTAssertTrue(harness.text.contains("ipvsctl status [--agent-address HOST:PORT]"))
        // "status" elsewhere is still an ipvsadm operand error, as before.
        XCTAssertNotEqual(harness.run(["-L", "status"]), ExitStatus.success)
        XCTAssertEqual(harness.agentAddresses, [])
    }

    func testJSONParser() throws {
        XCTAssertEqual(try JSONValue.parse(Array(#"{"a": [1, -2.5e1, true, null, "x\"\ud83d\ude00"]}"#.utf8)),
                       .object(["a": .array([.number(1), .number(-25), .bool(true), .null, .string("x\"😀")])]))
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "\"open", "tru", "{} x", "\"\u{01}\""] {
            XCTAssertThrowsError(try JSONValue.parse(Array(bad.utf8)), bad)
        }
        XCTAssertEqual(AgentStatusFormatter.epochSeconds("2026-11-30T23:10:15Z"), 1_796_080_215)
        XCTAssertEqual(AgentStatusFormatter.epochSeconds("1970-01-01T00:00:00.5Z"), 0, "fractions are ignored")
        XCTAssertNil(AgentStatusFormatter.epochSeconds("yesterday"))
        XCTAssertEqual(JSONWriter.thousandths(0.0004), "0.000")
        XCTAssertEqual(JSONWriter.thousandths(12.3456), "12.346")
    }

    /// The document as the agent encodes it (`StatusBox`: JSONEncoder, keys sorted) reads back
    /// into the same value: one definition for both sides.
    func testTheAgentsEncodingReadsBackWhole() throws {
        let written = AgentStatus(
            services: [AgentStatus.Service(service: "TCP 10.96.0.10:80", scheduler: "rr", kubernetesService: "default/web",
                                           realServers: [AgentStatus.RealServer(address: "10.244.1.5:8080", weight: 3, draining: true)]),
                       AgentStatus.Service(service: "UDP 10.96.0.53:53", scheduler: "wrr", kubernetesService: nil, realServers: [])],
            addresses: ["10.96.0.10"],
            health: [BackendHealthStatus(service: "TCP 10.96.0.10:80", kubernetesService: "default/web:http", backend: "10.244.1.5:8080",
                                         check: "tcp", state: "down", since: "2026-11-30T23:10:15Z", lastReason: "refused",
                                         lastLatencyMilliseconds: 0.25, consecutiveSuccesses: 0, consecutiveFailures: 4)],
            quorum: [ServiceQuorumStatus(service: "TCP 10.96.0.10:80", kubernetesService: "default/web:http", configured: 2,
                                         healthy: 1, minimumHealthy: 2, policy: "fallback", fallback: "10.244.9.9:8080", quorumLost: true)],
            packetFilter: PacketFilterStatus(table: "inet ipvs-agent", synced: true, elements: ["vips-v4": 1, "accepted-v4": 2],
                                             replacements: 1, updates: 3, failures: 0))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let read = try AgentStatusReader.read(try JSONValue.parse(Array(try encoder.encode(written))))
        XCTAssertEqual(read, written)
        XCTAssertEqual(try AgentStatusReader.read(try JSONValue.parse(Array(Self.document.utf8))).services.count, 2)
        XCTAssertThrowsError(try AgentStatusReader.read(try JSONValue.parse(Array(#"{"services": [{"scheduler": "rr"}]}"#.utf8)))) {
            XCTAssertTrue(($0 as? AgentFetchError)?.message.contains(#"no "service""#) == true, "\($0)")
        }
    }
}
