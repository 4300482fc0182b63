import Foundation
import Logging
import TestSupport
import XCTest
@testable import IPVSAgent

/// Every limit of `ManifestLimits`: at the limit a manifest is read, one past it is refused, the
/// issue naming the file, the line and the limit (issue 23, section 3).
final class ManifestLimitsTests: XCTestCase {
    // MARK: - The two files of issue 23 (TestSupport's HostileManifests)

    static let aliasBomb = HostileManifests.aliasBomb
    static let deepBrackets = HostileManifests.deepBrackets

    func testTheAliasBombOfIssue23IsRefusedAtTheAliasLimit() {
        XCTAssertEqual(Self.aliasBomb.utf8.count, 989)
        let decoding = ManifestDecoder.decode(Self.aliasBomb, file: "bomb.yaml")
        XCTAssertTrue(decoding.unreadable)
        // a0 is 11 nodes, a1 111, … a4 111,111: the eighth alias of a4 in a5, on line 7, goes past a million.
        XCTAssertEqual(decoding.issues.map(\.description), [
            "bomb.yaml:7: not read: aliases stand for more than 1,000,000 nodes (the limit per file, counting an alias' nodes each time it is used)",
        ])
    }

    func testTheDeepBracketsOfIssue23AreRefusedAtTheDepthLimit() {
        XCTAssertEqual(Self.deepBrackets.utf8.count, 200_000)
        let decoding = ManifestDecoder.decode(Self.deepBrackets, file: "deep.yaml")
        XCTAssertTrue(decoding.unreadable)
        XCTAssertEqual(decoding.issues.map(\.description), ["deep.yaml:1: not read: nested deeper than 64 levels (the limit)"])
    }

    // MARK: - Reading limits

    func testDepthLimit() throws {
        // Block style, each level on its own line: the mapping and `depth` lists.
        let lists = { (depth: Int) in
            "x:\n" + (1..<depth).map { String(repeating: " ", count: $0) + "-\n" }.joined() + String(repeating: " ", count: depth) + "- end\n"
        }
        XCTAssertNoThrow(try YAMLTree.parse(lists(ManifestLimits.depth - 1)))
        XCTAssertThrowsError(try YAMLTree.parse(lists(ManifestLimits.depth))) { error in
            XCTAssertEqual(error as? YAMLError, .limit("nested deeper than 64 levels (the limit)", line: 65))
        }
    }

    func testAliasCountLimit() throws {
        let aliases = { (count: Int) in "a: &a x\nb:\n" + String(repeating: "- *a\n", count: count) }
        XCTAssertEqual(try YAMLTree.parse(aliases(ManifestLimits.aliases)).entries.count, 5)
        XCTAssertThrowsError(try YAMLTree.parse(aliases(ManifestLimits.aliases + 1))) { error in
            XCTAssertEqual(error as? YAMLError, .limit("more than 10,000 aliases (the limit per file)", line: 10_003))
        }
    }

    func testAliasExpansionLimit() throws {
        // A list of 999 scalars is 1,000 nodes; 1,000 aliases of it stand for 1,000,000.
        let list = "a: &a [" + Array(repeating: "x", count: 999).joined(separator: ",") + "]\n"
        let aliases = { (count: Int) in list + "b: [" + Array(repeating: "*a", count: count).joined(separator: ",") + "]\n" }
        XCTAssertNoThrow(try YAMLTree.parse(aliases(1_000)))
        XCTAssertThrowsError(try YAMLTree.parse(aliases(1_001))) { error in
            XCTAssertEqual(error as? YAMLError, .limit("aliases stand for more than 1,000,000 nodes (the limit per file, "
                                                       + "counting an alias' nodes each time it is used)", line: 2))
        }
    }

    func testNodeLimit() throws {
        // A list and its entries, one per line: a mapping, its key, the list, and the entries.
        let list = { (entries: Int) in "a:\n" + String(repeating: "- x\n", count: entries) }
        XCTAssertEqual(try YAMLTree.parse(list(ManifestLimits.nodes - 3)).entries.count, ManifestLimits.nodes)
        XCTAssertThrowsError(try YAMLTree.parse(list(ManifestLimits.nodes - 2))) { error in
            XCTAssertEqual(error as? YAMLError, .limit("more than 3,000,000 nodes (the limit per file); split it into several files",
                                                       line: 2_999_999))
        }
    }

    func testKeyLengthLimit() throws {
        // An explicit key (`? `): libyaml itself refuses an implicit one longer than 1,024 characters.
        let key = { (length: Int) in "a: 1\n? " + String(repeating: "k", count: length) + "\n: v\n" }
        XCTAssertEqual(try YAMLTree.parse(key(ManifestLimits.keyBytes)).roots.first?.count, 2)
        XCTAssertThrowsError(try YAMLTree.parse(key(ManifestLimits.keyBytes + 1))) { error in
            XCTAssertEqual(error as? YAMLError, .limit("a key of 1,025 bytes, longer than 1,024 (the limit)", line: 2))
        }
        let decoding = ManifestDecoder.decode(key(2_000), file: "k.yaml")
        XCTAssertEqual(decoding.issues.map(\.description), ["k.yaml:2: not read: a key of 2,000 bytes, longer than 1,024 (the limit)"])
    }

    func testManyKeysAreCheckedForDuplicatesByText() throws {
        // 100,000 keys in one mapping: each compared with all before it was 5·10⁹ comparisons.
        let keys = (0..<100_000).map { "k\($0): 1\n" }.joined()
        XCTAssertEqual(try YAMLTree.parse(keys).roots.first?.count, 100_000)
        XCTAssertThrowsError(try YAMLTree.parse(keys + "k99999: 2\n")) { error in
            XCTAssertEqual(error as? YAMLError, .duplicatedKeys(["k99999"], line: 100_000))
        }
    }

    // MARK: - Files

    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    static func service(_ name: String, port: Int) -> String {
        "apiVersion: v1\nkind: Service\nmetadata: {name: \(name)}\nspec: {clusterIP: 10.96.0.1, ports: [{port: \(port)}]}\n"
    }

    static func ports(_ snapshot: SourceSnapshot) -> [UInt16] {
        snapshot.objects.compactMap { if case .service(let s) = $0 { return s.ports.first?.port } else { return nil } }
    }

    func testFileSizeLimit() throws {
        let padding = { (size: Int) in
            let service = Self.service("big", port: 80)
            return service + String(repeating: "#", count: size - service.utf8.count - 1) + "\n"
        }
        try write("big.yaml", padding(ManifestLimits.fileBytes))
        try write("good.yaml", Self.service("good", port: 81))
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        var snapshot = source.loadNow()
        XCTAssertEqual(Self.ports(snapshot), [80, 81])
        XCTAssertEqual(snapshot.issues, [])

        try write("big.yaml", padding(ManifestLimits.fileBytes + 1))
        snapshot = source.loadNow()
        XCTAssertEqual(Self.ports(snapshot), [80, 81]) // The last good objects are kept.
        XCTAssertEqual(snapshot.issues.map(\.description), [
            "\(path("big.yaml")): the file is 16,777,217 bytes, more than 16,777,216 (the limit for a manifest file); "
                + "split it into several files; its last good objects are kept",
        ])
    }

    func testAFIFOAndADeviceAreSkippedWithWhatTheyAre() throws {
        // Opening a FIFO for reading waits for a writer: it must be told apart without that.
        XCTAssertEqual(mkfifo(path("pipe.yaml"), 0o600), 0)
        try FileManager.default.createSymbolicLink(atPath: path("zero.yaml"), withDestinationPath: "/dev/zero")
        try write("good.yaml", Self.service("good", port: 80))
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        let snapshot = source.loadNow()
        XCTAssertEqual(Self.ports(snapshot), [80])
        XCTAssertEqual(snapshot.issues.map(\.description), [
            "\(path("pipe.yaml")): a FIFO (named pipe), not a regular file; skipped",
            "\(path("zero.yaml")): a character device, not a regular file; skipped",
        ])
        // Nothing that could be a manifest is missing: the rest is applied whole.
        XCTAssertFalse(snapshot.incomplete)
        XCTAssertEqual(snapshot.heldServices, [])
    }

    /// The daemon reloads through `ManifestSource.load(changed:)`, one load at a time: a hostile
    /// file that took minutes to decode held every later change back, even its own removal.
    func testHostileFilesDoNotHoldUpTheOtherFilesChanges() async throws {
        try write("a.yaml", Self.service("a", port: 80))
        try write("bomb.yaml", Self.aliasBomb)
        try write("deep.yaml", Self.deepBrackets)
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        var snapshot = await source.load(changed: nil)
        XCTAssertEqual(Self.ports(snapshot), [80])
        XCTAssertEqual(snapshot.issues.map(\.line), [7, 1])

        try write("a.yaml", Self.service("a", port: 90))
        try write("bomb.yaml", Self.aliasBomb + "# touched\n")
        snapshot = await source.load(changed: [path("a.yaml"), path("bomb.yaml")])
        XCTAssertEqual(Self.ports(snapshot), [90])

        try FileManager.default.removeItem(atPath: path("bomb.yaml"))
        try FileManager.default.removeItem(atPath: path("deep.yaml"))
        try write("a.yaml", Self.service("a", port: 91))
        snapshot = await source.load(changed: [path("a.yaml"), path("bomb.yaml"), path("deep.yaml")])
        XCTAssertEqual(Self.ports(snapshot), [91])
        XCTAssertEqual(snapshot.issues, [])
    }

    // MARK: - One object

    func testObjectSizeLimit() {
        // The annotation alone would pass its own limit's check last: the object's size is checked first.
        let object = { (length: Int) in
            let head = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {a: \""
            let tail = "\"}\nspec: {ports: [{port: 80}]}\n"
            // The object ends with its last `}`, before the newline.
            return head + String(repeating: "x", count: length - head.utf8.count - tail.utf8.count + 1) + tail
        }
        XCTAssertEqual(ManifestDecoder.decode(object(ManifestLimits.objectCharacters), file: "f.yaml").issues.map(\.field),
                       ["metadata.labels[a]"]) // A label value that long is wrong, but not the object's size.
        let decoding = ManifestDecoder.decode(object(ManifestLimits.objectCharacters + 1), file: "f.yaml")
        XCTAssertEqual(decoding.issues.map(\.description), [
            "f.yaml:1: document 1 (Service default/web): the object is 1,572,865 characters long; the API server stores objects of at most 1,572,864 (1.5 MiB, etcd's request limit)",
        ])
        XCTAssertEqual(decoding.rejected, ["Service default/web"])
    }

    func testAnnotationSizeLimit() {
        // Keys and values together, as the API server counts them.
        let annotations = { (total: Int) in
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n    a: \"\(String(repeating: "x", count: 1000))\"\n"
                + "    b: \"\(String(repeating: "y", count: total - 1002))\"\nspec: {ports: [{port: 80}]}\n"
        }
        XCTAssertEqual(ManifestDecoder.decode(annotations(ManifestLimits.annotationBytes), file: "f.yaml").issues, [])
        let decoding = ManifestDecoder.decode(annotations(ManifestLimits.annotationBytes + 1), file: "f.yaml")
        XCTAssertEqual(decoding.issues.map(\.description), [
            "f.yaml:6: document 1 (Service default/web): metadata.annotations: the annotations take 262,145 bytes; the API server allows 262,144 (256 KiB) in total, keys and values together",
        ])
    }

    /// The problems of a Service or EndpointSlice with this metadata (flow style, on line 3).
    static func problems(kind: String = "Service", _ metadata: String) -> [String] {
        let text = kind == "Service"
            ? "apiVersion: v1\nkind: Service\nmetadata: \(metadata)\nspec: {ports: [{port: 80}]}\n"
            : "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: \(metadata)\naddressType: IPv4\n"
        return ManifestDecoder.decode(text, file: "f.yaml").issues.map { "\($0.line.map(String.init) ?? "-") \($0.field ?? "-"): \($0.message)" }
    }

    func testNamesFollowTheAPIServersRules() {
        let label63 = String(repeating: "a", count: 63), label64 = String(repeating: "a", count: 64)
        XCTAssertEqual(Self.problems("{name: \(label63), namespace: \(label63)}"), [])
        XCTAssertEqual(Self.problems("{name: \(label64)}"), [
            "3 metadata.name: is 64 characters long; it must be a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
        ])
        XCTAssertEqual(Self.problems("{name: 1web}"), [
            "3 metadata.name: \"1web\" is not a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
        ])
        XCTAssertEqual(Self.problems("{name: \"web\\nforged line\"}").count, 1)
        XCTAssertEqual(Self.problems("{name: web, namespace: \(label64)}"), [
            "3 metadata.namespace: is 64 characters long; it must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ])
        XCTAssertEqual(Self.problems("{name: web, namespace: Shop}"), [
            "3 metadata.namespace: \"Shop\" is not a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ])
        // An EndpointSlice's name is a DNS subdomain: 253 characters, dots between labels.
        let subdomain253 = [label63, label63, label63, String(repeating: "b", count: 61)].joined(separator: ".")
        XCTAssertEqual(subdomain253.count, 253)
        XCTAssertEqual(Self.problems(kind: "EndpointSlice", "{name: \(subdomain253)}"), [])
        XCTAssertEqual(Self.problems(kind: "EndpointSlice", "{name: \(subdomain253)b}"), [
            "3 metadata.name: is 254 characters long; it must be a DNS-1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit",
        ])
        XCTAssertEqual(Self.problems(kind: "EndpointSlice", "{name: web..1}").count, 1)
    }

    func testLabelAndAnnotationKeysFollowTheAPIServersRules() {
        let prefix253 = [String](repeating: String(repeating: "p", count: 63), count: 4).joined(separator: ".").dropLast(2)
        XCTAssertEqual(prefix253.count, 253)
        let name63 = String(repeating: "n", count: 63)
        XCTAssertEqual(Self.problems("{name: web, labels: {\(prefix253)/\(name63): \(name63)}, annotations: {\(prefix253)/\(name63): x}}"), [])
        XCTAssertEqual(Self.problems("{name: web, labels: {\(prefix253)p/n: v}}"), [
            "3 metadata.labels[\(prefix253)p/n]: label key \"\(prefix253.prefix(77))...\": the prefix is 254 characters long; it must be a DNS-1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit",
        ])
        XCTAssertEqual(Self.problems("{name: web, labels: {\(name63)n: v}}"), [
            "3 metadata.labels[\(name63)n]: label key \"\(name63.prefix(77))n\": the name part is 64 characters long; at most 63",
        ])
        XCTAssertEqual(Self.problems("{name: web, labels: {app: \(name63)n}}"), [
            "3 metadata.labels[app]: the value is 64 characters long; a label value has at most 63",
        ])
        XCTAssertEqual(Self.problems("{name: web, labels: {app: \"a b\"}}"), [
            "3 metadata.labels[app]: the value \"a b\" is not a label value: at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        ])
        XCTAssertEqual(Self.problems("{name: web, annotations: {\"bad key\": x}}"), [
            "3 metadata.annotations[bad key]: annotation key \"bad key\" is not a qualified name: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        ])
    }
}
