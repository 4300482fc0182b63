import XCTest
import Yams
@testable import IPVSAgent

/// The shortcuts `NodeReader` takes give the answers of the general ways (Yams' subscript, `lowercased()`).
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
            "{\"kind\": a}", "{'kind': a}", "{! kind: a}", "{!!int kind: a}",
            "{kind: {x: 1}}", "{kind: [a]}", "{kind: ~}", "{other: a}", "{}", "[kind, a]", "kind", "{kind: !!value a}",
        ]
        // Not kept: Yams read the YAML 1.1 value key (`{kind: {!!value =: inner}}` as "inner"); a
        // Kubernetes field is never written so, and the decoder takes such a mapping for a mapping.
        for text in documents {
            let yams = try XCTUnwrap(Yams.compose(yaml: text, Resolver.basic), text)
            let node = try XCTUnwrap(YAMLTree.parse(text).roots.first, text)
            XCTAssertEqual(NodeReader.text(of: "kind", in: node), yams["kind"]?.string, text)
            XCTAssertEqual(NodeReader.value(of: "kind", in: node).map { YAMLTreeTests.shape($0) }, yams["kind"].map(YAMLTreeTests.shape), text)
        }
        XCTAssertEqual(NodeReader.text(of: "kind", in: try XCTUnwrap(YAMLTree.parse("{!foo kind: a, kind: b}").roots.first)), "b")
    }
}
