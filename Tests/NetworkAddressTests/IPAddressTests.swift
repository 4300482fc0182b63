import NetworkAddress
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

    func testSpecialPurposeAddressesAreClassified() {
        let expected: [String: IPAddress.SpecialPurpose?] = [
            "0.0.0.0": .unspecified, "::": .unspecified,
            "127.0.0.1": .loopback, "127.255.0.9": .loopback, "::1": .loopback, "::ffff:127.0.0.1": .loopback,
            "169.254.0.1": .linkLocal, "169.254.255.255": .linkLocal, "fe80::1": .linkLocal, "febf::1": .linkLocal,
            "224.0.0.1": .multicast, "239.255.255.255": .multicast, "ff02::1": .multicast, "ff0e::1": .multicast,
            "255.255.255.255": .broadcast,
            // Ordinary unicast addresses, some next to the reserved ranges.
            "10.96.0.10": nil, "126.255.255.255": nil, "128.0.0.0": nil, "169.253.255.255": nil, "169.255.0.0": nil,
            "223.255.255.255": nil, "240.0.0.1": nil, "255.255.255.254": nil, "192.168.1.255": nil,
            "fd00::1": nil, "fec0::1": nil, "fe7f::1": nil, "::2": nil, "::ffff:10.0.0.1": nil, "2001:db8::1": nil,
        ]
        for (text, purpose) in expected {
            XCTAssertEqual(IPAddress(text)!.specialPurpose, purpose, text)
        }
        XCTAssertEqual(IPAddress.SpecialPurpose.linkLocal.description, "link-local")
    }
}
