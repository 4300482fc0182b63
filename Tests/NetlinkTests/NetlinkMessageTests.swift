import TestSupport
import XCTest
@testable import Netlink

final class NetlinkMessageTests: XCTestCase {
    func testSplitsSeveralMessages() throws {
        // Two NLMSG_ERROR acknowledgements (error 0) for sequences 7 and 8, as the kernel sends
        // them with NETLINK_CAP_ACK: header, error code, echoed request header.
        let bytes = hex("""
            2400 0000 0200 0001 0700 0000 0000 0000  0000 0000 1400 0000 2400 0500 0700 0000 0000 0000
            2400 0000 0200 0001 0800 0000 0000 0000  efff ffff 1400 0000 2400 0500 0800 0000 0000 0000
            """)
        let messages = try NetlinkMessage.parse(bytes[...])
        XCTAssertEqual(messages.map(\.sequence), [7, 8])
        XCTAssertEqual(messages.map(\.type), [NetlinkConstants.messageError, NetlinkConstants.messageError])
        XCTAssertEqual(messages[0].flags, .capped)
        XCTAssertEqual(try messages[0].acknowledgement().errno, 0)
        XCTAssertEqual(try messages[1].acknowledgement().errno, 17) // -EEXIST
    }

    func testExtendedAcknowledgementMessageIsRead() throws {
        // NLMSG_ERROR, flags CAPPED|ACK_TLVS, error -22, echoed header, NLMSGERR_ATTR_MSG "bad".
        let bytes = hex("""
            2c00 0000 0200 0003 0100 0000 0000 0000
            eaff ffff 1400 0000 2400 0500 0100 0000 0000 0000
            0800 0100 6261 6400
            """)
        let message = try NetlinkMessage.parse(bytes[...])[0]
        let ack = try message.acknowledgement()
        XCTAssertEqual(ack.errno, 22)
        XCTAssertEqual(ack.kernelMessage, "bad")
    }

    func testRejectsMalformedHeaders() {
        XCTAssertThrowsError(try NetlinkMessage.parse(hex("0800 0000 0300 0000 0000 0000 0000 0000")[...]))
        XCTAssertThrowsError(try NetlinkMessage.parse(hex("4000 0000 0300 0000 0000 0000 0000 0000")[...]))
        XCTAssertThrowsError(try NetlinkMessage.parse(hex("1000 0000 0300 0000 0000 0000 0000 0000 01")[...]))
        XCTAssertThrowsError(try NetlinkMessage.parse(hex("1000 0000 0200 0000 0000 0000 0000 0000")[...]).first?.acknowledgement())
    }

    func testEmptyBufferHasNoMessages() throws {
        XCTAssertEqual(try NetlinkMessage.parse([][...]), [])
    }

    func testAlignment() {
        XCTAssertEqual(NetlinkConstants.align(0), 0)
        XCTAssertEqual(NetlinkConstants.align(5), 8)
        XCTAssertEqual(NetlinkConstants.align(8), 8)
    }
}
