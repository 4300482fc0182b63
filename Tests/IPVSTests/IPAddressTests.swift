import IPVS
import XCTest

final class IPAddressTests: XCTestCase {
    func testTextIsParsedIntoTheAddressItNames() {
        XCTAssertEqual(IPAddress("10.1.2.3"), .v4(0x0A01_0203))
        XCTAssertEqual(IPAddress("255.255.255.255"), .v4(0xFFFF_FFFF))
        XCTAssertEqual(IPAddress("fd00::1"), .v6(0xFD00 << 48, 1))
        XCTAssertEqual(IPAddress("2001:db8:1:2:3:4:5:6"), .v6(0x2001_0DB8_0001_0002, 0x0003_0004_0005_0006))
        XCTAssertEqual(IPAddress("::ffff:10.0.0.1"), .v6(0, 0xFFFF_0A00_0001))
        XCTAssertEqual(IPAddress("::"), .v6(0, 0))
    }

    func testTextThatIsNotOneAddressIsRefused() {
        for text in ["", "10.0.0", "10.0.0.256", "10.0.0.1:80", "[fd00::1]", "fd00::1%eth0", "fd00:::1", "10.0.0.1/32", " 10.0.0.1"] {
            XCTAssertNil(IPAddress(text), text)
        }
    }

    func testTextRoundTrips() {
        for text in ["10.96.0.1", "0.0.0.0", "fd00::1", "2001:db8::8:800:200c:417a", "::ffff:10.0.0.1"] {
            XCTAssertEqual(IPAddress(text)?.description, text)
            XCTAssertEqual(IPAddress(text), IPAddress(bytes: IPAddress(text)!.bytes), text)
        }
    }
}
