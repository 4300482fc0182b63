import TestSupport
import XCTest
@testable import IPVSAgent

/// `JSONScanner` reads JSON into the same tree as libyaml (`YAMLTree.parse`) does, entry for entry
/// (kind, style, tag, line, length in characters, children, text), and refuses what is not JSON
/// with the problem and the byte where it is.
final class JSONScannerTests: XCTestCase {
    /// Every difference between the two readers' trees of `text`, or none.
    private func differences(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let json = try YAMLTree.parseJSON(Array(text.utf8))
        let yaml = try YAMLTree.parse(text)
        var found: [String] = []
        if json.documents != yaml.documents { found.append("documents \(json.documents) != \(yaml.documents)") }
        if json.children != yaml.children { found.append("children differ") }
        if json.entries.count != yaml.entries.count { found.append("\(json.entries.count) entries != \(yaml.entries.count)") }
        for (index, (a, b)) in zip(json.entries, yaml.entries).enumerated() {
            let same = a.kind == b.kind && a.isPlain == b.isPlain && a.isASCII == b.isASCII && json.tag(of: index) == yaml.tag(of: index)
                && a.lineNumber == b.lineNumber && a.length == b.length && a.first == b.first && a.count == b.count
                && json.text(of: index) == yaml.text(of: index)
            if !same { found.append("entry \(index): \(a) \(json.text(of: index)) != \(b) \(yaml.text(of: index))") }
        }
        if json.text != yaml.text { found.append("the texts' bytes differ") }
        return found
    }

    func testAPIObjectsReadAsLibyamlReadsThem() throws {
        let texts = [
            APIObjects.service("web", clusterIP: "10.96.0.10", labels: ["app": "web"], annotations: ["note": "é, 日本, 🙂"]),
            APIObjects.slice("web-abc", service: "web", addresses: ["10.0.0.1", "10.0.0.2"], notReady: ["10.0.0.2"],
                             zones: ["10.0.0.1": "zone-a"]),
            APIObjects.node("node-1", zone: "zone-a"),
            #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (20)","reason":"Expired","code":410}}"#,
        ]
        for text in texts { XCTAssertEqual(try differences(text), [], text) }
    }

    func testEveryKindOfValueReadsAsLibyamlReadsIt() throws {
        let texts = [
            #"{}"#, #"[]"#, #"{"a":{}}"#, #"[[],{}]"#, #""text""#, #"12"#, #"-0.5e-3"#, #"true"#, #"null"#,
            #"{"": "", "a": [1, -2, 3.25, 1e5, 2E+10, 0, -0, false, true, null]}"#,
            #"{"escapes": "\" \\ \/ \b \f \n \r \t \u00e9 \u65e5 \u0041", "raw": "é 日本 🙂", "after": "x"}"#,
            "{\n  \"pretty\": [\n    1,\n    {\"deep\": \"é\"}\n  ],\n  \"next\": \"line\"\n}\n",
            "{\r\n\"crlf\": \"é\",\r\n\"b\": [1,\r\n2]\r\n}",
            "  \n [\"leading and trailing space\"] \n\n",
        ]
        for text in texts { XCTAssertEqual(try differences(text), [], text) }
    }

    /// Generated values of every kind, nested, written compact and pretty, read alike by both.
    func testGeneratedValuesReadAsLibyamlReadsThem() throws {
        var random = SplitMix64(seed: 19)
        func string() -> String {
            let pieces = ["a", "Z", "09", " ", "é", "日本", "🙂", "\\\"", "\\\\", "\\n", "\\t", "\\/", "\\u00fc", "-", ":", ",", "{", "]"]
            return "\"" + (0..<Int.random(in: 0...6, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined() + "\""
        }
        func value(_ depth: Int, pretty: Bool, indent: String) -> String {
            let inner = indent + "  ", space = pretty ? "\n" + inner : "", close = pretty ? "\n" + indent : ""
            switch Int.random(in: 0..<(depth < 5 ? 8 : 5), using: &random) {
            case 0: return string()
            case 1: return ["0", "-1", "42", "3.25", "-0.5", "1e5", "6.02E+23", "1E-7"].randomElement(using: &random)!
            case 2: return ["true", "false", "null"].randomElement(using: &random)!
            case 3, 4: return string()
            case 5: // an array
                let items = (0..<Int.random(in: 0...4, using: &random)).map { _ in value(depth + 1, pretty: pretty, indent: inner) }
                return items.isEmpty ? "[]" : "[" + space + items.joined(separator: "," + (pretty ? space : "")) + close + "]"
            default: // an object, its keys different from each other
                var keys = Set<String>()
                for _ in 0..<Int.random(in: 0...4, using: &random) { keys.insert(string()) }
                let pairs = keys.sorted().map { $0 + (pretty ? ": " : ":") + value(depth + 1, pretty: pretty, indent: inner) }
                return pairs.isEmpty ? "{}" : "{" + space + pairs.joined(separator: "," + (pretty ? space : "")) + close + "}"
            }
        }
        for round in 0..<300 {
            let text = "{\"round\":\(round),\"value\":" + value(0, pretty: round % 2 == 1, indent: "") + "}"
            XCTAssertEqual(try differences(text), [], text)
        }
    }

    func testSurrogatePairsAreOneCharacter() throws {
        let tree = try YAMLTree.parseJSON(Array(#"["\ud83d\ude00", "\u00e9"]"#.utf8))
        let root = try XCTUnwrap(tree.roots.first)
        XCTAssertEqual(root.element(0).scalar, "😀")
        XCTAssertEqual(root.element(1).scalar, "é")
    }

    func testWhiteSpaceAloneIsNoDocument() throws {
        XCTAssertEqual(try YAMLTree.parseJSON(Array(" \n".utf8)).documents, [])
        XCTAssertEqual(try YAMLTree.parseJSON([]).documents, [])
    }

    /// What is not JSON is refused with what was expected, what was found, and at which byte and line.
    func testWhatIsNotJSONIsRefusedWithItsPlace() {
        let refused: [(text: String, summary: String)] = [
            (#"{"a":1,}"#, "expected a key in double quotes in an object; found '}' at byte 8"),
            (#"[1,2,]"#, "expected a value; found ']' at byte 6"),
            (#"{"a" 1}"#, "expected ':' after a key; found '1' at byte 6"),
            (#"{a:1}"#, "expected a key in double quotes in an object; found 'a' at byte 2"),
            (#"{"a":1 "b":2}"#, "expected ',' or '}' after a value in an object; found '\"' at byte 8"),
            (#"["open"#, "the text ends inside a string; found the end of the text at byte 7"),
            ("[\"tab\there\"]", "a control character inside a string (JSON writes it as an escape, such as \\n or \\u0009); found byte 0x9 at byte 6"),
            (#"["\x"]"#, #"an unknown escape in a string (JSON has \", \\, \/, \b, \f, \n, \r, \t and \u followed by 4 hexadecimal digits); found 'x' at byte 4"#),
            (#"["\u12"]"#, "a \\u escape needs 4 hexadecimal digits; found '\"' at byte 7"),
            (#"["\ud83d"]"#, "a \\u escape of half a surrogate pair, without its other half; found '\"' at byte 9"),
            (#"[01]"#, "expected ',' or ']' after a value in an array; found '1' at byte 3"),
            (#"[1.]"#, "expected a digit in a number; found ']' at byte 4"),
            (#"[-]"#, "expected a digit in a number; found ']' at byte 3"),
            (#"[tru]"#, "expected a value; found 't' at byte 2"),
            (#"{"a":1} {}"#, "more text after the JSON value; found '{' at byte 9"),
            ("{\n\"a\":\n}", "expected a value; found '}' at byte 8"),
        ]
        for (text, summary) in refused {
            XCTAssertThrowsError(try YAMLTree.parseJSON(Array(text.utf8)), text) { error in
                XCTAssertEqual((error as? YAMLError)?.summary, summary, text)
            }
        }
        XCTAssertThrowsError(try YAMLTree.parseJSON(Array("{\n\"a\":\n}".utf8))) { XCTAssertEqual(($0 as? YAMLError)?.line, 3) }
        XCTAssertThrowsError(try YAMLTree.parseJSON([0x5B, 0x22, 0xC3, 0x28, 0x22, 0x5D])) { error in
            XCTAssertEqual(error as? YAMLError, .characters(problem: "a string that is not UTF-8", offset: 2))
        }
    }

    /// The reading limits and key rules are the YAML reader's (one `YAMLTree.Builder`).
    func testLimitsAndDuplicateKeysAreTheYAMLReaders() {
        let deep = String(repeating: "[", count: ManifestLimits.depth + 1) + String(repeating: "]", count: ManifestLimits.depth + 1)
        XCTAssertThrowsError(try YAMLTree.parseJSON(Array(deep.utf8))) { error in
            XCTAssertEqual((error as? YAMLError)?.summary, "nested deeper than \(ManifestLimits.depth) levels (the limit)")
        }
        let fits = String(repeating: "[", count: ManifestLimits.depth) + String(repeating: "]", count: ManifestLimits.depth)
        XCTAssertNoThrow(try YAMLTree.parseJSON(Array(fits.utf8)))
        XCTAssertThrowsError(try YAMLTree.parseJSON(Array(#"{"b":1,"a":2,"b":3}"#.utf8))) { error in
            XCTAssertEqual(error as? YAMLError, .duplicatedKeys(["b"], line: 1))
        }
        let long = String(repeating: "k", count: ManifestLimits.keyBytes + 1)
        XCTAssertThrowsError(try YAMLTree.parseJSON(Array("{\"\(long)\":1}".utf8))) { error in
            XCTAssertEqual((error as? YAMLError)?.summary, "a key of 1,025 bytes, longer than 1,024 (the limit)")
        }
    }

    // MARK: - Fields left out

    private let unread = JSONScanner.Skip(ManifestDecoder.unreadFields)

    /// The keys of the mapping `node`, in order.
    private func keys(_ node: YAMLNode) -> [String] { (0..<node.count).map { node.pair($0).key.scalar ?? "?" } }

    /// The API server's objects read without the fields no decoder reads decode to the same objects,
    /// and those fields are gone from the tree, keys and values.
    func testFieldsNoDecoderReadsAreLeftOutAndTheObjectsDecodeTheSame() throws {
        let objects: [(text: String, kind: String, apiVersion: String)] = [
            (APIObjects.service("web", clusterIP: "10.96.0.10", labels: ["app": "web"]), "Service", "v1"),
            (APIObjects.slice("web-abc", service: "web", addresses: ["10.0.0.1", "10.0.0.2"], notReady: ["10.0.0.2"],
                              zones: ["10.0.0.1": "zone-a"]), "EndpointSlice", "discovery.k8s.io/v1"),
        ]
        let leftOut = ["managedFields", "ownerReferences"]
        for (text, kind, apiVersion) in objects {
            let whole = try XCTUnwrap(YAMLTree.parseJSON(Array(text.utf8)).roots.first)
            let read = try YAMLTree.parseJSON(Array(text.utf8), skip: unread)
            let root = try XCTUnwrap(read.roots.first)
            XCTAssertLessThan(read.entries.count, whole.tree.entries.count, "\(kind): nodes left out")
            let metadata = try XCTUnwrap(NodeReader.value(of: "metadata", in: root))
            let wholeMetadata = try XCTUnwrap(NodeReader.value(of: "metadata", in: whole))
            XCTAssertTrue(keys(wholeMetadata).contains { leftOut.contains($0) }, "\(kind): the test object has a field to leave out")
            XCTAssertEqual(keys(metadata), keys(wholeMetadata).filter { !leftOut.contains($0) }, kind)
            if let endpoints = NodeReader.value(of: "endpoints", in: root) {
                let wholeEndpoints = try XCTUnwrap(NodeReader.value(of: "endpoints", in: whole))
                XCTAssertEqual(endpoints.count, 2)
                for index in 0..<endpoints.count {
                    XCTAssertTrue(keys(wholeEndpoints.element(index)).contains("targetRef"))
                    XCTAssertEqual(keys(endpoints.element(index)), keys(wholeEndpoints.element(index)).filter { $0 != "targetRef" })
                }
            }
            // The object's length (for the size limit) is the whole text's.
            XCTAssertEqual(root.length, whole.length, kind)
            var withAll = ManifestDecoding(), without = ManifestDecoding()
            ManifestDecoder.decodeAPIObject(whole, kind: kind, apiVersion: apiVersion, file: "API server", into: &withAll)
            ManifestDecoder.decodeAPIObject(root, kind: kind, apiVersion: apiVersion, file: "API server", into: &without)
            XCTAssertEqual(withAll.objects.count, 1, "\(withAll.issues)")
            XCTAssertEqual(without.objects, withAll.objects, kind)
            XCTAssertEqual(without.issues.map(\.message), withAll.issues.map(\.message), kind)
        }
    }

    /// Only the paths named are left out: the same keys elsewhere (a label, a field outside
    /// `metadata` or outside a list's entry under `endpoints`) stay, and so does a key written with escapes.
    func testTheSameKeysElsewhereStay() throws {
        let text = #"{"metadata":{"name":"a","labels":{"managedFields":"x","targetRef":"y"},"managedF\u0069elds":[1]},"#
            + #""spec":{"managedFields":{"k":"v"},"targetRef":"z","metadata":"m"},"targetRef":{"kind":"Pod"},"#
            + #""endpoints":{"targetRef":"not a list's entry"},"list":[{"metadata":{"ownerReferences":[],"uid":"u"}}]}"#
        let root = try XCTUnwrap(YAMLTree.parseJSON(Array(text.utf8), skip: unread).roots.first)
        let metadata = try XCTUnwrap(NodeReader.value(of: "metadata", in: root))
        XCTAssertEqual(keys(metadata), ["name", "labels", "managedFields"], "written with an escape, the key stays")
        XCTAssertEqual(keys(try XCTUnwrap(NodeReader.value(of: "labels", in: metadata))), ["managedFields", "targetRef"])
        XCTAssertEqual(keys(try XCTUnwrap(NodeReader.value(of: "spec", in: root))), ["managedFields", "targetRef", "metadata"])
        XCTAssertEqual(keys(root), ["metadata", "spec", "targetRef", "endpoints", "list"])
        XCTAssertEqual(keys(try XCTUnwrap(NodeReader.value(of: "endpoints", in: root))), ["targetRef"])
        let entry = try XCTUnwrap(NodeReader.value(of: "list", in: root)).element(0)
        XCTAssertEqual(keys(try XCTUnwrap(NodeReader.value(of: "metadata", in: entry))), ["uid"], "at any depth: the path's end counts")
        // A mapping whose every field is left out is an empty mapping.
        let empty = try XCTUnwrap(YAMLTree.parseJSON(Array(#"{"metadata":{"managedFields":[{"a":1}]}}"#.utf8), skip: unread).roots.first)
        XCTAssertEqual(NodeReader.value(of: "metadata", in: empty)?.kind, .mapping)
        XCTAssertEqual(NodeReader.value(of: "metadata", in: empty)?.count, 0)
    }

    /// A field left out is still read for its syntax, its characters and the nesting limit: what
    /// is refused with it is refused without it, with the same words.
    func testWhatIsLeftOutIsStillChecked() {
        let refused = [
            #"{"metadata":{"managedFields":[{"a":1,}]}}"#,
            #"{"metadata":{"managedFields":["open]}}"#,
            #"{"metadata":{"ownerReferences":["\x"]}}"#,
            #"{"metadata":{"managedFields":[tru]}}"#,
            #"{"metadata":{"managedFields" []}}"#,
            #"{"metadata":{"managedFields":[] "b":1}}"#,
            "{\"metadata\":{\"managedFields\":[\"tab\there\"]}}",
        ]
        func error(_ text: String, skip: JSONScanner.Skip?) -> YAMLError? {
            do {
                _ = try YAMLTree.parseJSON(Array(text.utf8), skip: skip)
                return nil
            } catch {
                return error
            }
        }
        for text in refused {
            XCTAssertNotNil(error(text, skip: nil), text)
            XCTAssertEqual(error(text, skip: unread), error(text, skip: nil), text)
        }
        let notUTF8 = Array(#"{"metadata":{"managedFields":[""#.utf8) + [0xC3, 0x28] + Array(#""]}}"#.utf8)
        XCTAssertThrowsError(try YAMLTree.parseJSON(notUTF8, skip: unread)) { error in
            XCTAssertEqual(error as? YAMLError, .characters(problem: "a string that is not UTF-8", offset: 31))
        }
        // As deep as the limit allows, counting the levels around the field left out (the object, its metadata).
        func nested(_ levels: Int) -> [UInt8] {
            Array((#"{"metadata":{"managedFields":"# + String(repeating: "[", count: levels) + String(repeating: "]", count: levels) + "}}").utf8)
        }
        let deepest = ManifestLimits.depth - 2
        XCTAssertNoThrow(try YAMLTree.parseJSON(nested(deepest)))
        XCTAssertNoThrow(try YAMLTree.parseJSON(nested(deepest), skip: unread))
        for skip in [nil, unread] {
            XCTAssertThrowsError(try YAMLTree.parseJSON(nested(deepest + 1), skip: skip)) { error in
                XCTAssertEqual((error as? YAMLError)?.summary, "nested deeper than \(ManifestLimits.depth) levels (the limit)")
            }
        }
    }
}
