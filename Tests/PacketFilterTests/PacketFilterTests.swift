import IPVS
@testable import PacketFilter
import XCTest

/// The table on the host's nftables, each test in a fresh network namespace.
final class PacketFilterTests: XCTestCase {
    private static func frontend(_ address: String, _ port: UInt16, _ transport: TransportProtocol = .tcp) -> Frontend {
        Frontend(IPAddress(address)!, transport, port)
    }

    /// 100 ClusterIP Services with one endpoint each, one load-balancer IP with source ranges.
    private static func state(endpoint lastEndpoint: String = "10.244.1.100") -> PacketFilterState {
        var state = PacketFilterState(clusterPrefixes: [AddressPrefix("10.244.0.0/16")!, AddressPrefix("fd00:244::/64")!])
        for index in 1...100 {
            let vip = frontend("10.96.0.\(index)", 80)
            state.guardedAddresses.insert(vip.address)
            state.accepted.insert(vip)
            state.masqueradeOutsideCluster.insert(vip)
            state.hairpin.insert(frontend(index == 100 ? lastEndpoint : "10.244.1.\(index)", 8080))
        }
        let balancer = frontend("192.0.2.10", 443)
        state.guardedAddresses.insert(balancer.address)
        state.accepted.insert(balancer)
        state.masquerade.insert(balancer)
        state.sourceRanges[balancer] = [AddressPrefix("198.51.100.0/24")!, AddressPrefix("198.51.100.7/32")!, AddressPrefix("203.0.113.9/32")!]
        let v6 = frontend("fd00:96::1", 53, .udp)
        state.guardedAddresses.insert(v6.address)
        state.accepted.insert(v6)
        state.masqueradeOutsideCluster.insert(v6)
        return state
    }

    /// The ruleset of the namespace with handles, and the table's lines without set elements
    /// (each chain, set and rule with its handle).
    private static func handles(_ context: NFTablesContext) throws -> (ruleset: String, structure: [String]) {
        let ruleset = try context.run("list ruleset\n", operation: "list")
        let structure = ruleset.split(separator: "\n").map(String.init).filter { $0.contains("# handle") }
        return (ruleset, structure)
    }

    func testFirstSyncCreatesTheTableWithItsRulesAndElements() throws {
        try inNewNetworkNamespace {
            let filter = try PacketFilter()
            XCTAssertNil(try filter.listing())
            XCTAssertFalse(filter.isSynced)
            XCTAssertEqual(filter.elementCounts, [:])
            XCTAssertEqual(try filter.sync(Self.state()), .replaced)
            XCTAssertTrue(filter.isSynced)
            let counts = filter.elementCounts
            XCTAssertEqual([counts["vips-v4"], counts["vips-v6"], counts["hairpin-v4"], counts["hairpin-v6"]], [101, 1, 100, nil], "\(counts)")
            let listing = try XCTUnwrap(filter.listing())
            XCTAssertTrue(listing.hasPrefix("table inet ipvs-agent {"), listing)
            for expected in ["10.96.0.42 . tcp . 80", "192.0.2.10 . tcp . 443 . 198.51.100.0/24", "192.0.2.10 . tcp . 443 . 203.0.113.9",
                             "10.244.1.100 . tcp . 8080 . 10.244.1.100", "fd00:96::1 . udp . 53", "fd00:244::/64",
                             "hook prerouting priority dstnat", "hook postrouting priority srcnat", "masquerade fully-random"] {
                XCTAssertTrue(listing.contains(expected), "missing \(expected) in\n\(listing)")
            }
            // 198.51.100.7/32 lies inside 198.51.100.0/24: an interval set refuses overlaps, so it is left out.
            XCTAssertFalse(listing.contains("198.51.100.7"), listing)
            XCTAssertEqual(try filter.sync(Self.state()), .unchanged)
            XCTAssertEqual(filter.statistics, PacketFilterStatistics(replacements: 1, updates: 0, failures: 0))
        }
    }

    func testAnEndpointChangeChangesTwoElementsAndNoRule() throws {
        try inNewNetworkNamespace {
            let filter = try PacketFilter()
            let observer = try NFTablesContext(handles: true)
            try filter.sync(Self.state())
            let before = try Self.handles(observer)
            XCTAssertEqual(try filter.sync(Self.state(endpoint: "10.244.2.7")), .updated(changedElements: 2))
            let after = try Self.handles(observer)
            // The same table, sets, chains and rules (same handles): only elements changed.
            XCTAssertEqual(before.structure, after.structure)
            XCTAssertGreaterThan(before.structure.count, 20)
            XCTAssertTrue(after.ruleset.contains("10.244.2.7 . tcp . 8080 . 10.244.2.7"), after.ruleset)
            XCTAssertFalse(after.ruleset.contains("10.244.1.100 . tcp"), after.ruleset)
            XCTAssertEqual(filter.statistics, PacketFilterStatistics(replacements: 1, updates: 1, failures: 0))
        }
    }

    func testPartsShareElementsAndAnUpdateTouchesOnlyTheGivenParts() throws {
        try inNewNetworkNamespace {
            let filter = try PacketFilter()
            let vip = Self.frontend("10.96.0.1", 80)
            func part(_ endpoint: String) -> PacketFilterState {
                PacketFilterState(guardedAddresses: [vip.address], accepted: [vip], hairpin: [Self.frontend(endpoint, 8080)])
            }
            XCTAssertEqual(try filter.sync(parts: ["a": part("10.244.1.1"), "b": part("10.244.1.2")]), .replaced)
            // Part a's endpoint moves: its old hairpin element goes, the new one comes, the shared VIP stays.
            XCTAssertEqual(try filter.update(["a": part("10.244.1.3")]), .updated(changedElements: 2))
            XCTAssertEqual(try filter.update(["a": part("10.244.1.3")]), .unchanged)
            // Part b goes: the VIP stays while part a holds it, and goes with a.
            XCTAssertEqual(try filter.update(["b": PacketFilterState()]), .updated(changedElements: 1))
            var listing = try XCTUnwrap(filter.listing())
            XCTAssertTrue(listing.contains("10.96.0.1 . tcp . 80"), listing)
            XCTAssertFalse(listing.contains("10.244.1.2 ") || listing.contains("10.244.1.1 "), listing)
            XCTAssertEqual(try filter.update(["a": PacketFilterState()]), .updated(changedElements: 3))
            listing = try XCTUnwrap(filter.listing())
            XCTAssertFalse(listing.contains("10.96.0.1"), listing)
            // The repair writes what the parts hold.
            XCTAssertEqual(try filter.update(["c": part("10.244.1.4")]), .updated(changedElements: 3))
            XCTAssertEqual(try filter.repair(), .replaced)
            XCTAssertTrue(try XCTUnwrap(filter.listing()).contains("10.244.1.4 . tcp . 8080"))
        }
    }

    func testForeignTablesSurviveSyncsAndDeletion() throws {
        try inNewNetworkNamespace {
            let other = try NFTablesContext()
            let foreign = """
                table ip foreign { chain input { type filter hook input priority 0; policy accept; tcp dport 22 accept; }; }
                table inet ipvs-agent-other { set s { type ipv4_addr; elements = { 10.0.0.1 }; }; }

                """
            _ = try other.run(foreign, operation: "add foreign tables")
            let filter = try PacketFilter()
            try filter.sync(Self.state())
            try filter.sync(Self.state(endpoint: "10.244.3.3"))
            try filter.sync(Self.state(), replace: true)
            try filter.delete()
            XCTAssertNil(try filter.listing())
            let ruleset = try other.run("list ruleset\n", operation: "list")
            XCTAssertTrue(ruleset.contains("table ip foreign"), ruleset)
            XCTAssertTrue(ruleset.contains("tcp dport 22 accept"), ruleset)
            XCTAssertTrue(ruleset.contains("table inet ipvs-agent-other"), ruleset)
            XCTAssertTrue(ruleset.contains("10.0.0.1"), ruleset)
            XCTAssertFalse(ruleset.contains("table inet ipvs-agent {"), ruleset)
            // Deleting a table that is not there is no error (a second --cleanup).
            try filter.delete()
        }
    }

    func testATableChangedBehindTheFilterIsWrittenAgain() throws {
        try inNewNetworkNamespace {
            let filter = try PacketFilter()
            let other = try NFTablesContext()
            try filter.sync(Self.state())
            _ = try other.run("delete table inet ipvs-agent\n", operation: "delete")
            // The update fails (the sets are gone), so the whole table is written in its place.
            XCTAssertEqual(try filter.sync(Self.state(endpoint: "10.244.9.9")), .replaced)
            XCTAssertTrue(try XCTUnwrap(filter.listing()).contains("10.244.9.9 . tcp . 8080"))
            XCTAssertEqual(filter.statistics, PacketFilterStatistics(replacements: 2, updates: 0, failures: 1))
            // A replace on request restores elements deleted by hand.
            _ = try other.run("flush set inet ipvs-agent vips-v4\n", operation: "flush")
            XCTAssertEqual(try filter.sync(Self.state(endpoint: "10.244.9.9")), .unchanged)
            XCTAssertEqual(try filter.sync(Self.state(endpoint: "10.244.9.9"), replace: true), .replaced)
            XCTAssertTrue(try XCTUnwrap(filter.listing()).contains("10.96.0.77"))
        }
    }

    func testATableNameNftCannotParseIsRefused() {
        for name in ["", "1abc", "a b", "a;flush ruleset", "é"] {
            XCTAssertThrowsError(try PacketFilter(table: name), name) { error in
                XCTAssertTrue("\(error)".contains("a table name is a letter"), "\(error)")
            }
        }
    }
}
