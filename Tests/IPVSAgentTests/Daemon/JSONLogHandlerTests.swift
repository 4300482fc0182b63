import Foundation
import Logging
import XCTest
@testable import IPVSAgent

final class JSONLogHandlerTests: XCTestCase {
    /// 2026-12-03T09:30:00Z.
    private let instant = 1_796_290_200

    func testALineHasItsKeysSortedAndEveryValueAsAString() {
        let line = JSONLogHandler.line(seconds: instant, milliseconds: 7, level: .info, label: "ipvs-agent",
                                       message: "applied changes",
                                       metadata: ["operations": "2", "milliseconds": .stringConvertible(1.25)])
        XCTAssertEqual(line, #"{"label":"ipvs-agent","level":"info","message":"applied changes","milliseconds":"1.25","#
            + #""operations":"2","time":"2026-12-03T09:30:00.007Z"}"#)
    }

    func testTheTimeIsUTCWithMilliseconds() {
        XCTAssertEqual(JSONLogHandler.timestamp(seconds: 0, milliseconds: 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(JSONLogHandler.timestamp(seconds: 951_825_599, milliseconds: 999), "2000-02-29T11:59:59.999Z")
        XCTAssertEqual(JSONLogHandler.timestamp(seconds: instant + 52_199, milliseconds: 120), "2026-12-03T23:59:59.120Z")
    }

    /// Quotes, backslashes and control characters are escaped; what a JSON parser reads back is the text given.
    func testTextIsEscapedSoThatAParserReadsItBack() throws {
        let nasty = "a \"quoted\" C:\\path\nnext\tline\r\u{1} and \u{1F} ünïcødé / 🚦"
        let line = JSONLogHandler.line(seconds: instant, milliseconds: 0, level: .error, label: "l", message: nasty,
                                       metadata: ["error": .string(nasty), "key \"x\"": "v"])
        XCTAssertFalse(line.contains("\n"), "one line per event")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        XCTAssertEqual(object["message"], nasty)
        XCTAssertEqual(object["error"], nasty)
        XCTAssertEqual(object["key \"x\""], "v")
        XCTAssertEqual(object["level"], "error")
        XCTAssertTrue(line.contains(#"\u0001"#) && line.contains(#"\u001f"#), line)
    }

    /// Metadata of the same name as a standard key replaces it, once: the line has each key once.
    func testMetadataReplacesAStandardKeyOfTheSameName() throws {
        let line = JSONLogHandler.line(seconds: instant, milliseconds: 0, level: .warning, label: "ipvs-agent",
                                       message: "m", metadata: ["label": "other"])
        XCTAssertEqual(line.components(separatedBy: #""label":"#).count, 2, line)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        XCTAssertEqual(object["label"], "other")
    }
}
