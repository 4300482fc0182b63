import XCTest
import Yams
@testable import IPVSAgent

/// The shortcuts `NodeReader` takes instead of Yams' general APIs give the same answers.
final class NodeReaderTests: XCTestCase {
    func testBooleanMatchesLowercasedComparison() {
        var texts = ["", "t", "tru", "truee", "yes ", " no", "of", "offf", "0", "1", "y", "n", "nope", "falsey",
                     "true\u{0}", "\u{0}on", "o\u{0}n", "ｔrue", "TRUÉ", "İ", "\u{212A}", "on\u{301}", "yes\u{0}\u{0}\u{0}"]
        // Every mix of upper and lower case of each word.
        for word in ["true", "yes", "on", "false", "no", "off"] {
            let letters = Array(word)
            for mask in 0..<(1 << letters.count) {
                texts.append(String(letters.enumerated().map { mask >> $0.offset & 1 == 1 ? Character($0.element.uppercased()) : $0.element }))
            }
        }
        var words = 0
        for text in texts {
            XCTAssertEqual(NodeReader.boolean(text), NodeReader.lowercasedBoolean(text), "«\(text)»")
            if NodeReader.lowercasedBoolean(text) != nil { words += 1 }
        }
        XCTAssertEqual(words, 16 + 8 + 4 + 32 + 4 + 8)
        XCTAssertEqual(NodeReader.boolean("TrUe"), true)
        XCTAssertEqual(NodeReader.boolean("oFF"), false)
        XCTAssertNil(NodeReader.boolean("\u{0}on"))
    }

    func testKeyLookupMatchesYamsSubscript() throws {
        let documents = [
            "{kind: a, apiVersion: v}", "{!foo kind: a, kind: b}", "{kind: b, !foo kind: a}", "{!!str kind: a}",
            "{\"kind\": a}", "{'kind': a}", "{! kind: a}", "{!!int kind: a}", "{? [kind] : a, kind: b}",
            "{kind: {x: 1}}", "{kind: [a]}", "{kind: ~}", "{other: a}", "{}", "[kind, a]", "kind", "{kind: !!value a}",
            "{kind: {!!value =: inner}}",
        ]
        for text in documents {
            let node = try XCTUnwrap(Yams.compose(yaml: text, Resolver.basic), text)
            XCTAssertEqual(NodeReader.text(of: "kind", in: node), node["kind"]?.string, text)
            XCTAssertEqual(NodeReader.value(of: "kind", in: node), node["kind"], text)
        }
        XCTAssertEqual(NodeReader.text(of: "kind", in: try XCTUnwrap(Yams.compose(yaml: "{!foo kind: a, kind: b}", Resolver.basic))), "b")
    }
}
