import Conntrack
import IPVS
import XCTest

/// Which entries a filter matches, and the `conntrack -D` arguments it prints (no kernel needed).
final class ConntrackFilterTests: XCTestCase {
    let vip = IPAddress("10.96.0.10")!, pod = IPAddress("10.244.1.5")!, other = IPAddress("10.244.2.7")!

    func entry(_ protocolNumber: UInt8 = 17, _ destination: String = "10.96.0.10", _ port: UInt16 = 53, reply: String = "10.244.1.5") -> ConntrackEntry {
        ConntrackEntry(protocolNumber: protocolNumber, destination: IPAddress(destination)!, port: port, replySource: IPAddress(reply)!)
    }

    func testAnEndpointFilterMatchesOnlyItsFrontendAndEndpoint() {
        let filter = ConntrackFilter(transport: .udp, destination: vip, port: 53, replySource: pod)
        XCTAssertTrue(filter.matches(entry()))
        XCTAssertFalse(filter.matches(entry(reply: "10.244.2.7")), "another endpoint's flow stays")
        XCTAssertFalse(filter.matches(entry(6)), "a TCP flow stays")
        XCTAssertFalse(filter.matches(entry(17, "10.96.0.10", 54)), "another port of the VIP stays")
        XCTAssertFalse(filter.matches(entry(17, "10.96.0.11")), "another VIP stays")
        XCTAssertEqual(filter.description, "-p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.5")
    }

    func testAFrontendFilterMatchesEveryReplySource() {
        let filter = ConntrackFilter(transport: .udp, destination: vip, port: 53)
        XCTAssertTrue(filter.matches(entry(reply: "10.96.0.10")), "the entry cached while nothing served the VIP")
        XCTAssertTrue(filter.matches(entry(reply: "10.244.2.7")))
        XCTAssertFalse(filter.matches(entry(132)))
        XCTAssertEqual(filter.description, "-p udp --orig-dst 10.96.0.10 --orig-port-dst 53")
    }

    func testIPv6() {
        let filter = ConntrackFilter(transport: .udp, destination: IPAddress("fd00::a")!, port: 53, replySource: IPAddress("fd00:1::5")!)
        XCTAssertEqual(filter.family, .inet6)
        XCTAssertTrue(filter.matches(entry(17, "fd00::a", 53, reply: "fd00:1::5")))
        XCTAssertFalse(filter.matches(entry(17, "fd00::a", 53, reply: "fd00:1::6")))
    }
}
