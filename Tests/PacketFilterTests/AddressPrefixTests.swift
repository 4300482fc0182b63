import IPVS
import PacketFilter
import XCTest

final class AddressPrefixTests: XCTestCase {
    func testTextIsParsedWithHostBitsCleared() {
        XCTAssertEqual(AddressPrefix("10.244.1.7/16")?.description, "10.244.0.0/16")
        XCTAssertEqual(AddressPrefix("10.244.1.7/21")?.description, "10.244.0.0/21")
        XCTAssertEqual(AddressPrefix("10.244.1.7/32")?.description, "10.244.1.7/32")
        XCTAssertEqual(AddressPrefix("fd00:1:2:3::9/48")?.description, "fd00:1:2::/48")
        XCTAssertEqual(AddressPrefix("0.0.0.0/0")?.description, "0.0.0.0/0")
    }

    func testTextThatIsNotAPrefixIsRefused() {
        for text in ["", "10.0.0.1", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/", "fd00::/129", "10.0.0.0/8/8", "web/8"] {
            XCTAssertNil(AddressPrefix(text), text)
        }
    }

    func testContainment() {
        let block = AddressPrefix("10.244.0.0/16")!
        XCTAssertTrue(block.contains(IPAddress("10.244.200.1")!))
        XCTAssertFalse(block.contains(IPAddress("10.245.0.1")!))
        XCTAssertFalse(block.contains(IPAddress("fd00::1")!))
        XCTAssertEqual(AddressPrefix.outermost([block, AddressPrefix("10.244.3.0/24")!, AddressPrefix("10.0.0.0/8")!, AddressPrefix("fd00::/8")!]),
                       [AddressPrefix("10.0.0.0/8")!, AddressPrefix("fd00::/8")!])
    }
}
