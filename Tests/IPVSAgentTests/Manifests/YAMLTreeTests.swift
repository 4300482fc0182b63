import XCTest
import Yams
@testable import IPVSAgent

/// `YAMLTree` reads YAML as Yams' `compose_all` with the basic resolver did (the decoder's reference
/// before it read libyaml's events itself): same documents, nodes, text, styles, tags and lines,
/// and the same errors at the same lines.
final class YAMLTreeTests: XCTestCase {
    /// One line per node: kind, line, plain or not, tag, text; children indented below. Keys (and
    /// what is in them) show their resolved tag: Yams resolves every key's tag when it looks for
    /// duplicates, and the decoder only asks whether a key resolves to text.
    static func shape(_ node: YAMLNode, key: Bool = false) -> String {
        let tag = key ? node.resolvedTag : node.tag ?? ""
        switch node.kind {
        case .scalar:
            return "scalar@\(node.line) \(node.isPlain ? "plain" : "styled") tag=\(tag) «\(node.scalar!)»"
        case .sequence:
            let entries = (0..<node.count).map { shape(node.element($0), key: key) }
            return indented("sequence@\(node.line) tag=\(tag)", entries)
        case .mapping:
            let pairs = (0..<node.count).flatMap { [shape(node.pair($0).key, key: true), shape(node.pair($0).value, key: key)] }
            return indented("mapping@\(node.line) tag=\(tag)", pairs)
        }
    }

    static func shape(_ node: Yams.Node) -> String {
        switch node {
        case .scalar(let scalar):
            return "scalar@\(scalar.mark!.line) \(scalar.style == .plain ? "plain" : "styled") tag=\(scalar.tag.description) «\(scalar.string)»"
        case .sequence(let sequence):
            return indented("sequence@\(sequence.mark!.line) tag=\(sequence.tag.description)", sequence.map(shape))
        case .mapping(let mapping):
            return indented("mapping@\(mapping.mark!.line) tag=\(mapping.tag.description)",
                            mapping.flatMap { [shape($0.key), shape($0.value)] })
        case .alias:
            return "alias"
        }
    }

    static func indented(_ head: String, _ children: [String]) -> String {
        ([head] + children).joined(separator: "\n").replacingOccurrences(of: "\n", with: "\n  ")
    }

    /// Yams' outcome of a text: every document's shape, or the error's line and its first words.
    static func yamsOutcome(_ text: String) -> String {
        do {
            var sequence = try Yams.compose_all(yaml: text, Resolver.basic)
            var documents: [String] = []
            while let node = sequence.next() { documents.append(shape(node)) }
            if let error = sequence.error { throw error }
            return documents.joined(separator: "\n---\n")
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                let summary = context.map { "\(problem) (\($0.text) at line \($0.mark.line))" } ?? problem
                return "error@\(mark.line): \(summary)"
            case .duplicatedKeysInMapping(let keys, let context):
                return "error@\(context.mark.line): duplicated key(s) \(keys.sorted().joined(separator: ", "))"
            default:
                return "error: \(error)"
            }
        } catch {
            return "error: \(error)"
        }
    }

    static func treeOutcome(_ text: String) -> String {
        do {
            return try YAMLTree.parse(text).roots.map { shape($0) }.joined(separator: "\n---\n")
        } catch {
            return "error@\(error.line.map(String.init) ?? "?"): \(error.summary)"
        }
    }

    static let texts: [String] = [
        "", "---\n", "a: 1", "- a\n- b", "plain", "'quoted'", "\"double\"", "|\n  block\n", ">\n  folded\n",
        "{a: 1, b: [x, 'y', \"z\"]}", "---\na: 1\n---\nb: 2\n...\n---\n- c\n", "a: ~\nb: null\nc:\nd: ''\n",
        "!!str 5", "!foo bar", "! bar", "a: !!int 5\nb: !!map {x: y}\nc: !!seq [1]\n", "!custom {a: b}",
        "base: &b {x: 1}\nuse: *b\n", "- &a one\n- *a\n- &a two\n- *a\n",
        "a: 1\na: 2\n", "a: 1\n'a': 2\n", "a: 1\n!!str a: 2\n", "a: 1\n!foo a: 2\n", "b: 1\na: 2\nb: 3\na: 4\n",
        "outer:\n  x: 1\n  x: 2\n", "a: *missing\n", "a: [1, 2\n", "a: b: c\n",
        "- a\nb: c\n", "key: \"unterminated\n", "\t- tab\n", "a:\n  - b\n  c: d\n", "%YAML 1.1\n---\na: b\n",
        "%TAG !e! tag:example.com,2000:\n---\n!e!thing a\n", "{\"json\": [1, 2.5, true, null, \"x\\u00e9\"]}",
        "text: \"nul \\0 inside\"\n", "emoji: \"\u{1F600}\"\nnon-ascii: é\n", "<<: {a: 1}\nb: 2\n",
        "a: 1\n--- \nb\n", "x: |-\n  line one\n  line two\n", manyKeys, manyKeys + "k3: again\nk17: again\n'k3': 3\n",
        // Keys are compared as Swift compares text (canonical equivalence), not byte for byte.
        "K: 1\n\u{212A}: 2\n", "caf\u{E9}: 1\ncafe\u{301}: 2\n", manyKeys + "caf\u{E9}: 1\ncafe\u{301}: 2\n",
        ManifestDecoderTests.web, ManifestDecoderCorpusTests.service, ManifestDecoderCorpusTests.slice,
        ManifestDecoderCorpusTests.endpoints,
    ]

    /// More keys than are compared pair by pair: looked up by text.
    static let manyKeys = (0..<40).map { "k\($0): \($0)\n" }.joined() + "!foo k5: tagged\n"

    func testTreesMatchYams() {
        for text in Self.texts {
            XCTAssertEqual(Self.treeOutcome(text), Self.yamsOutcome(text), "«\(text)»")
        }
    }

    func testEveryCorpusTextMatchesYams() {
        // Yams reads a complex key; YAMLTree refuses it (testComplexKeysAreRefused).
        for (name, text) in ManifestDecoderCorpusTests.cases where name != "complex key" {
            XCTAssertEqual(Self.treeOutcome(text), Self.yamsOutcome(text), name)
        }
    }

    func testGeneratedBenchManifestsMatchYams() {
        // The shape `make bench` feeds the agent, flow and block styles mixed.
        var text = ""
        for index in 0..<20 {
            text += "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-\(index), namespace: bench}\n"
                + "spec:\n  clusterIP: 10.96.0.\(index + 1)\n  ports:\n  - {name: http, protocol: TCP, port: 80, targetPort: 8080}\n"
                + "---\nkind: EndpointSlice\nendpoints:\n- addresses: [10.244.0.\(index + 1)]\n  conditions: {ready: true}\n"
        }
        XCTAssertEqual(Self.treeOutcome(text), Self.yamsOutcome(text))
    }

    func testControlCharactersAreAnErrorWithTheirPlace() throws {
        XCTAssertThrowsError(try YAMLTree.parse("a: b\u{1}\n")) { error in
            XCTAssertEqual((error as? YAMLError)?.summary, "control characters are not allowed (at byte 4)")
        }
    }

    func testComplexKeysAreRefused() {
        // Yams reads them; kubectl refuses them (a Kubernetes object's keys are text), and comparing
        // two of them made of aliases cost minutes (see ManifestLimitsTests).
        for (text, line) in [("? [a, b]\n: c\n", 1), ("x: 1\n? {a: b}\n: c\n", 2), ("base: &b [x]\n*b : c\n", 2),
                             ("? [a]\n: 1\n? [a]\n: 2\n", 1)] {
            XCTAssertThrowsError(try YAMLTree.parse(text), text) { error in
                XCTAssertEqual(error as? YAMLError, .complexKey(line: line), text)
            }
        }
    }

    func testNestingUpToTheLimitIsReadWithoutRecursion() throws {
        // A mapping and 63 lists: 64 levels, the limit; nothing here recurses.
        let depth = ManifestLimits.depth - 1
        let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let tree = try YAMLTree.parse("a: \(nested)\n")
        XCTAssertEqual(tree.entries.count, depth + 2)
        let decoding = ManifestDecoder.decode("apiVersion: v1\nkind: Service\nmetadata: {name: deep}\nspec: \(nested)\n", file: "f.yaml")
        XCTAssertEqual(decoding.issues.map(\.message), ["expected a mapping, got a list"])
        XCTAssertThrowsError(try YAMLTree.parse("a:\n  b: \(nested)\n")) { error in
            XCTAssertEqual(error as? YAMLError, .limit("nested deeper than 64 levels (the limit)", line: 2))
        }
    }
}
