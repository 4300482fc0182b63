import Foundation
import Logging
import XCTest
@testable import IPVSAgent

final class TextLogHandlerTests: XCTestCase {
    /// What `body` writes to standard error (file descriptor 2), read back from a file.
    func standardError(_ body: () -> Void) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID())").path
        let file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(file, 0)
        defer { close(file); unlink(path) }
        fflush(nil)
        let saved = dup(2)
        dup2(file, 2)
        body()
        fflush(nil)
        dup2(saved, 2)
        close(saved)
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    func testAValueCannotForgeALineOrDriveTheTerminal() throws {
        // An object named with a newline, in the message and in metadata of every kind.
        let forged = "web\n2026-12-06T00:00:00+0000 info ipvs-agent: forged\r\u{1B}[2J\u{85}\u{2028}\u{202E}"
        var logger = Logger(label: "ipvs-agent") { LogSetup.handler(format: .text, level: .info, label: $0) }
        logger[metadataKey: "file"] = "\(forged)"
        let output = try standardError {
            logger.error("bad Service \(forged)", metadata: ["object": "\(forged)", "list": ["a\nb"], "map": ["k": "c\nd"]])
        }
        XCTAssertEqual(output.filter { $0 == "\n" }.count, 1, output)
        XCTAssertTrue(output.hasSuffix("\n"))
        let escaped = #"web\n2026-12-06T00:00:00+0000 info ipvs-agent: forged\r\u{1B}[2J\u{0085}\u{2028}\u{202E}"#
        XCTAssertTrue(output.contains("bad Service \(escaped)"), output)
        XCTAssertTrue(output.contains("object=\(escaped)"), output)
        XCTAssertTrue(output.contains("file=\(escaped)"), output)
        // Lists and dictionaries as swift-log writes them (quoted, escaped), their backslashes escaped again.
        XCTAssertTrue(output.contains(#"list=["a\\nb"]"#) && output.contains(#"map=["k": "c\\nd"]"#), output)
    }

    func testPlainTextIsUnchangedAndBackslashesAreEscaped() {
        XCTAssertEqual(TextLogHandler.escaped("loaded manifests: 10 Services, café, 😀"), "loaded manifests: 10 Services, café, 😀")
        XCTAssertEqual(TextLogHandler.escaped(#"a\nb"#), #"a\\nb"#)
        XCTAssertEqual(TextLogHandler.escaped("tab\there\u{7F}\u{0}"), #"tab\there\u{7F}\0"#)
    }
}
