import IPVS
@testable import PacketFilter
import XCTest

/// The text handed to nft, without a kernel.
final class PacketFilterRulesetTests: XCTestCase {
    private let ruleset = PacketFilterRuleset(table: "ipvs-agent")

    func testAnUpdateDeletesAndAddsElementsOnly() throws {
        let old = ruleset.elements(of: PacketFilterState(hairpin: [Frontend(IPAddress("10.244.1.5")!, .tcp, 8080)]))
        let new = ruleset.elements(of: PacketFilterState(hairpin: [Frontend(IPAddress("10.244.1.6")!, .tcp, 8080)]))
        let update = try XCTUnwrap(ruleset.update(deleting: old, adding: new))
        XCTAssertEqual(update, """
            delete element inet ipvs-agent hairpin-v4 { 10.244.1.5 . tcp . 8080 . 10.244.1.5 }
            add element inet ipvs-agent hairpin-v4 { 10.244.1.6 . tcp . 8080 . 10.244.1.6 }

            """)
        XCTAssertNil(ruleset.update(deleting: [:], adding: [.init(kind: .hairpin, family: .inet): []]))
    }

    func testSourceRangesOfTheOtherFamilyAndEmptyRangesAddNoFirewall() {
        let v4 = Frontend(IPAddress("192.0.2.1")!, .tcp, 80), v6 = Frontend(IPAddress("2001:db8::1")!, .tcp, 80)
        let elements = ruleset.elements(of: PacketFilterState(sourceRanges: [v4: [AddressPrefix("2001:db8::/32")!], v6: []]))
        XCTAssertEqual(elements[.init(kind: .firewall, family: .inet)], ["192.0.2.1 . tcp . 80"])
        XCTAssertNil(elements[.init(kind: .firewallAllow, family: .inet)])
        XCTAssertNil(elements[.init(kind: .firewall, family: .inet6)])
    }
}
