import TestSupport
import XCTest
@testable import Netlink

final class NetlinkAttributesTests: XCTestCase {
    func testParsesIntegersStringsAndNesting() throws {
        // u16 7, u32 0x01020304, string "rr", nested { u64 5 }
        let bytes = hex("""
            0600 0100 0700 0000
            0800 0200 0403 0201
            0700 0300 7272 0000
            1000 0480 0c00 0100 0500 0000 0000 0000
            """)
        let attributes = try NetlinkAttributes(bytes[...])
        XCTAssertEqual(try attributes[1]?.uint16(), 7)
        XCTAssertEqual(try attributes[2]?.uint32(), 0x0102_0304)
        XCTAssertEqual(try attributes[3]?.string(), "rr")
        XCTAssertEqual(try attributes[4]?.nested()[1]?.uint64(), 5)
        XCTAssertNil(attributes[9])
        XCTAssertEqual(attributes.types, [1, 2, 3, 4])
    }

    func testBuilderRoundTripsThroughParser() throws {
        var builder = NetlinkMessageBuilder(type: 0x24, flags: [.request, .acknowledge], sequence: 9)
        builder.appendGenericHeader(command: 1, version: 1)
        builder.append(1, uint16: 2)
        builder.append(2, bigEndianUInt16: 80)
        builder.append(3, string: "wlc")
        builder.appendNested(4) { nested in
            nested.append(1, uint32: 42)
            nested.append(2, bytes: [1, 2, 3])
        }
        let bytes = builder.finish()
        XCTAssertEqual(bytes.count % 4, 0)
        let messages = try NetlinkMessage.parse(bytes[...])
        XCTAssertEqual(messages.count, 1)
        let message = messages[0]
        XCTAssertEqual(message.type, 0x24)
        XCTAssertEqual(message.sequence, 9)
        XCTAssertEqual(message.flags, [.request, .acknowledge])
        XCTAssertEqual(Array(message.payload.prefix(4)), [1, 1, 0, 0])
        let attributes = try NetlinkAttributes(message.payload.dropFirst(4))
        XCTAssertEqual(try attributes[1]?.uint16(), 2)
        XCTAssertEqual(try attributes[2]?.bigEndianUInt16(), 80)
        XCTAssertEqual(Array(attributes[2]!.payload), [0x00, 0x50])
        XCTAssertEqual(try attributes[3]?.string(), "wlc")
        let nested = try attributes[4]!.nested()
        XCTAssertEqual(try nested[1]?.uint32(), 42)
        XCTAssertEqual(Array(nested[2]!.payload), [1, 2, 3])
    }

    /// A type sent twice reads as its last one, and two streams are equal when their types read the
    /// same payloads, whatever their order.
    func testARepeatedTypeReadsAsItsLastAndEqualityIgnoresOrder() throws {
        let repeated = try NetlinkAttributes(hex("0600 0100 0700 0000 0600 0200 0100 0000 0600 0100 0900 0000")[...])
        XCTAssertEqual(try repeated[1]?.uint16(), 9)
        XCTAssertEqual(repeated.types, [1, 2])
        let reordered = try NetlinkAttributes(hex("0600 0200 0100 0000 0600 0100 0900 0000")[...])
        XCTAssertEqual(repeated, reordered)
        XCTAssertNotEqual(repeated, try NetlinkAttributes(hex("0600 0200 0100 0000 0600 0100 0700 0000")[...]))
        XCTAssertNotEqual(repeated, try NetlinkAttributes(hex("0600 0100 0900 0000")[...]))
    }

    func testRejectsTruncatedAttributes() {
        // Length 8 but only 6 bytes present.
        XCTAssertThrowsError(try NetlinkAttributes(hex("0800 0100 0102")[...]))
        // Length shorter than the header.
        XCTAssertThrowsError(try NetlinkAttributes(hex("0200 0100")[...]))
        // Trailing bytes too short for a header.
        XCTAssertThrowsError(try NetlinkAttributes(hex("0500 0100 07 000000 01")[...]))
    }

    func testRejectsOversizedValuesForTheirType() throws {
        let attributes = try NetlinkAttributes(hex("0500 0100 07 000000")[...])
        XCTAssertEqual(try attributes[1]?.uint8(), 7)
        XCTAssertThrowsError(try attributes[1]?.uint16())
        XCTAssertThrowsError(try attributes[1]?.uint32())
        XCTAssertThrowsError(try attributes[1]?.uint64())
        XCTAssertThrowsError(try attributes[1]?.nested())
    }

    func testOversizedLengthFieldIsAnError() {
        XCTAssertThrowsError(try NetlinkAttributes(hex("ffff 0100 0000 0000")[...])) { error in
            XCTAssertTrue("\(error)".contains("65535"), "\(error)")
        }
    }

    func testUnalignedSliceStartIsHandled() throws {
        let bytes = hex("00 0600 0100 0700 0000")
        let attributes = try NetlinkAttributes(bytes[1...])
        XCTAssertEqual(try attributes[1]?.uint16(), 7)
    }

    /// Random and mutated input must produce a value or an error, never a trap.
    func testRandomInputNeverTraps() throws {
        var generator = SplitMix64(seed: 0x1905)
        var seen = (parsed: 0, rejected: 0)
        let valid = hex("0600 0100 0700 0000 0800 0200 0403 0201 1000 0480 0c00 0100 0500 0000 0000 0000")
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                bytes = valid
                for _ in 0..<(1 + generator.next() % 4) {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            }
            do {
                let attributes = try NetlinkAttributes(bytes[...])
                for type in attributes.types {
                    let attribute = attributes[type]!
                    _ = try? attribute.uint8(); _ = try? attribute.uint16(); _ = try? attribute.uint32()
                    _ = try? attribute.uint64(); _ = try? attribute.string(); _ = try? attribute.nested()
                }
                _ = try? NetlinkMessage.parse(bytes[...])
                seen.parsed += 1
            } catch {
                XCTAssertTrue(error is NetlinkDecodingError)
                seen.rejected += 1
            }
        }
        // Both outcomes must occur, or the generator is not exercising the parser.
        XCTAssertGreaterThan(seen.parsed, 1000)
        XCTAssertGreaterThan(seen.rejected, 1000)
    }
}
