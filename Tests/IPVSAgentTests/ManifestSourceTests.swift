import Foundation
import Logging
import XCTest
@testable import IPVSAgent

final class ManifestSourceTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("manifests-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func service(_ name: String, port: Int) -> String {
        "apiVersion: v1\nkind: Service\nmetadata: {name: \(name)}\nspec: {clusterIP: 10.96.0.1, ports: [{port: \(port)}]}\n"
    }

    func ports(_ snapshot: SourceSnapshot) -> [UInt16] {
        snapshot.objects.compactMap { if case .service(let s) = $0 { return s.ports.first?.port } else { return nil } }
    }

    func testLastGoodVersionsAreKept() throws {
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        try write("a.yaml", service("a", port: 80))
        try write("b.json", service("b", port: 81))
        try write("notes.txt", "ignored")
        XCTAssertEqual(ports(source.loadNow()), [80, 81])

        // A bad object keeps its previous version; the file's other objects are read.
        try write("a.yaml", service("a", port: 70000))
        var snapshot = source.loadNow()
        XCTAssertEqual(ports(snapshot), [80, 81])
        XCTAssertEqual(snapshot.issues.count, 1)
        XCTAssertEqual(snapshot.heldServices, [])

        // A file that is not YAML keeps its previous objects.
        try write("b.json", "{\"apiVersion\": ")
        snapshot = source.loadNow()
        XCTAssertEqual(ports(snapshot), [80, 81])
        XCTAssertFalse(snapshot.incomplete)

        // Without an earlier good version, the Service is held (its kernel state is kept).
        let fresh = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        snapshot = fresh.loadNow()
        XCTAssertEqual(snapshot.heldServices, [ObjectName(namespace: "default", name: "a")])
        XCTAssertTrue(snapshot.incomplete)

        // A named file that disappears keeps its objects and is reported.
        let named = ManifestSource(paths: [folder.appendingPathComponent("c.yaml").path], logger: Logger(label: "test"))
        try write("c.yaml", service("c", port: 82))
        XCTAssertEqual(ports(named.loadNow()), [82])
        try FileManager.default.removeItem(at: folder.appendingPathComponent("c.yaml"))
        snapshot = named.loadNow()
        XCTAssertEqual(ports(snapshot), [82])
        XCTAssertTrue(snapshot.issues.first?.description.contains("no such file or folder") == true)
    }
}

extension ManifestSourceTests {
    func testOnlyChangedFilesAreReadAgain() async throws {
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        try write("a.yaml", service("a", port: 80))
        try write("b.yaml", service("b", port: 81))
        _ = source.loadNow()
        try write("a.yaml", service("a", port: 90))
        try write("b.yaml", service("b", port: 91))
        let snapshot = await source.load(changed: [folder.appendingPathComponent("b.yaml").path])
        XCTAssertEqual(ports(snapshot), [80, 91])
        let all = await source.load(changed: nil)
        XCTAssertEqual(ports(all), [90, 91])
    }
}
