import IPVS
import TestSupport
import XCTest
@testable import IPVSControl

/// The restore fast path must never change what a line means: for every line it accepts, the
/// general parser builds the same operation, and it accepts no line the general parser rejects.
final class RestoreFastPathTests: XCTestCase {
    private let commands = ["-A", "-E", "-D", "-a", "-e", "-d", "--add-service", "-L", "-C", "-Z", "#", "ipvsadm"]
    private let serviceOptions = ["-t", "-u", "--tcp-service", "--udp-service", "--sctp-service", "-f", "-T", "--tcp"]
    private let endpoints = [
        "10.96.0.1:80", "10.244.1.1:8080", "0.0.0.0:1", "255.255.255.255:65535", "1.2.3.4:0", "1.2.3.4:65536",
        "1.2.3.4:080", "010.1.1.1:80", "256.1.1.1:80", "1.2.3:80", "1.2.3.4.5:80", "1.2.3.4", "1.2.3.4:", ":80",
        "[::1]:80", "localhost:80", "1.2.3.4:http", "1.2.3.4:8o", "1..3.4:80", "1.2.3.4:00080", "1.2.3.4:-1", "80",
    ]
    private let schedulers = ["rr", "wlc", "mh", "twos", "a_b-c", "Rr", "", "-t", "0123456789abcdef", "0123456789abcde"]
    private let weights = ["0", "1", "65535", "65536", "01", "-1", "x", "100000", " "]

    /// One of `list`; half of the time one of its first `common` entries, so that well-formed
    /// lines are frequent enough to exercise the fast path.
    private func word(_ list: [String], common: Int = 2, _ random: inout SplitMix64) -> String {
        let range = random.next() % 2 == 0 ? common : list.count
        return list[Int(random.next() % UInt64(range))]
    }

    /// A random line from the parts above, with options in random order, sometimes repeated or missing.
    private func randomLine(_ random: inout SplitMix64) -> String {
        var options: [[String]] = []
        if random.next() % 8 != 0 { options.append([word(serviceOptions, common: 5, &random), word(endpoints, &random)]) }
        if random.next() % 3 == 0 { options.append([random.next() % 2 == 0 ? "-s" : "--scheduler", word(schedulers, common: 5, &random)]) }
        if random.next() % 2 == 0 { options.append([random.next() % 2 == 0 ? "-r" : "--real-server", word(endpoints, &random)]) }
        if random.next() % 2 == 0 { options.append([word(["-m", "-g", "--masquerading", "--gatewaying", "-i", "-mw"], common: 4, &random)]) }
        if random.next() % 2 == 0 { options.append([random.next() % 2 == 0 ? "-w" : "--weight", word(weights, common: 3, &random)]) }
        if random.next() % 10 == 0 { options.append(options.randomElement() ?? ["-n"]) }
        if random.next() % 15 == 0 { options.append([word(["extra", "-p", "-x", "5", "#c", "-6"], &random)]) }
        options.shuffle(using: &random)
        let separator = random.next() % 10 == 0 ? "\t " : " "
        return ([word(commands, common: 6, &random)] + options.flatMap { $0 }).joined(separator: separator)
    }

    func testEveryAcceptedLineMeansWhatTheGeneralParserSays() {
        var random = SplitMix64(seed: 0x1B5)
        var accepted = 0
        var acceptedKinds = Set<String>()
        for _ in 0..<40_000 {
            let line = randomLine(&random)
            let bytes = Array(line.utf8)[...]
            let general = try? InvocationParser.parse(RestoreScript.tokens(bytes))
            guard let fast = RestoreFastPath.operation(bytes) else { continue }
            accepted += 1
            let kind = switch fast {
            case .addService: "addService"
            case .updateService: "updateService"
            case .deleteService: "deleteService"
            case .addRealServer: "addRealServer"
            case .updateRealServer: "updateRealServer"
            case .deleteRealServer: "deleteRealServer"
            case .zero, .flush: "other"
            }
            acceptedKinds.insert(kind)
            XCTAssertEqual(general, .change(fast), "line: \(line)")
        }
        // The generator must exercise the fast path, not only the fallback.
        XCTAssertGreaterThan(accepted, 1_000)
        XCTAssertEqual(acceptedKinds.count, 6, "\(acceptedKinds)")
    }

    func testTheLinesSaveAndTheBenchmarkWriteTakeTheFastPath() {
        for line in ["-A -t 10.96.0.1:80 -s rr", "-a -t 10.96.0.1:80 -r 10.244.1.1:8080 -m -w 1",
                     "-a -u 10.96.0.10:53 -r 10.244.0.7:53 -g -w 0", "-D -t 10.96.0.1:80", "-d -t 10.96.0.1:80 -r 10.244.1.1:8080",
                     "-E -u 10.96.0.1:53 -s wlc", "-e -t 10.96.0.1:80 -r 10.244.1.1:80 -m -w 65535"] {
            XCTAssertNotNil(RestoreFastPath.operation(Array(line.utf8)[...]), line)
        }
    }

    func testLinesOutsideTheSubsetAreLeftToTheGeneralParser() {
        for line in ["-A -t 10.96.0.1:80 -s rr -p 60", "-a -t 10.96.0.1:80 -r 10.244.1.1 -m", "-a -t [fd00::1]:80 -r [fd00::2]:80 -m",
                     "-A -t 10.96.0.1:80 -s rr # comment", "ipvsadm -A -t 10.96.0.1:80", "-a -t 10.96.0.1:80 -r 10.244.1.1:80 -mw 2",
                     "-A -t 10.96.0.1:0 -s rr", "-a -t 10.96.0.1:80 -r 10.244.1.1:80 -w 65536", "-A -t 10.96.0.1:80 -s rr -s wlc",
                     "-A -f 5 -s rr", "--set 1 2 3", "-C", ""] {
            XCTAssertNil(RestoreFastPath.operation(Array(line.utf8)[...]), line)
        }
    }
}
