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

// MARK: - Changes as the watcher reports them

extension ManifestSourceTests {
    /// The changes `FileWatcher` reports for `source` while `change` runs, as the daemon keeps
    /// them (`isRelevant`), until one ends with `last` (or 5 seconds pass).
    func watchedChanges(_ source: ManifestSource, until last: String, _ change: () throws -> Void) async throws -> Set<String> {
        let watcher = try FileWatcher(folders: source.watchedFolders)
        let deadline = Task { try? await Task.sleep(for: .seconds(5)); watcher.stop() }
        defer { deadline.cancel(); watcher.stop() }
        try change()
        var changed: Set<String> = []
        for await name in watcher.changes {
            if source.isRelevant(change: name) { changed.insert(name) }
            if (name as NSString).lastPathComponent == last { break }
        }
        return changed
    }

    /// Writes a version of a ConfigMap volume the way the kubelet's atomic writer does: the files
    /// in a new timestamped folder, `..data_tmp` pointing at it renamed over `..data`, each file a
    /// symlink through `..data`, the previous folder removed.
    func writeConfigMapVersion(_ stamp: String, files: [String: String], in volume: URL) throws {
        let fm = FileManager.default
        let version = "..2026_12_03_\(stamp)"
        let folder = volume.appendingPathComponent(version)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(to: folder.appendingPathComponent(name), atomically: false, encoding: .utf8) }
        let data = volume.appendingPathComponent("..data")
        let previous = try? fm.destinationOfSymbolicLink(atPath: data.path)
        let temporary = volume.appendingPathComponent("..data_tmp")
        try fm.createSymbolicLink(atPath: temporary.path, withDestinationPath: version)
        XCTAssertEqual(rename(temporary.path, data.path), 0)
        for name in files.keys where !fm.fileExists(atPath: volume.appendingPathComponent(name).path) {
            try fm.createSymbolicLink(atPath: volume.appendingPathComponent(name).path, withDestinationPath: "..data/\(name)")
        }
        if let previous { try fm.removeItem(at: volume.appendingPathComponent(previous)) }
    }

    func testConfigMapUpdateIsReadAgain() async throws {
        try writeConfigMapVersion("10_00_00.1", files: ["cluster.yaml": service("a", port: 80)], in: folder)
        // The volume given as a folder, and its file given by name.
        for path in [folder.path, folder.appendingPathComponent("cluster.yaml").path] {
            let source = ManifestSource(paths: [path], logger: Logger(label: "test"))
            let before = await source.load(changed: nil)
            XCTAssertEqual(ports(before), [path == folder.path ? 80 : 81], path)
            let stamp = path == folder.path ? "10_05_00.2" : "10_10_00.3"
            let changed = try await watchedChanges(source, until: "..data") {
                try writeConfigMapVersion(stamp, files: ["cluster.yaml": service("a", port: path == folder.path ? 81 : 82)], in: folder)
            }
            XCTAssertEqual(changed, [folder.appendingPathComponent("..data").path], path)
            let after = await source.load(changed: changed)
            XCTAssertEqual(ports(after), [path == folder.path ? 81 : 82], path)
            XCTAssertEqual(after.changedServices, [ObjectName(namespace: "default", name: "a")], path)
        }
    }

    func testAFileNamedWithADotSlashIsReadAgain() async throws {
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder.path))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try write("x.yaml", service("x", port: 80))
        let source = ManifestSource(paths: ["./x.yaml"], logger: Logger(label: "test"))
        let before = await source.load(changed: nil)
        XCTAssertEqual(ports(before), [80])
        let changed = try await watchedChanges(source, until: "x.yaml") { try write("x.yaml", service("x", port: 81)) }
        XCTAssertEqual(changed, ["x.yaml"], "the watcher names the file as found in `.`")
        let after = await source.load(changed: changed)
        XCTAssertEqual(ports(after), [81])
    }

    func testUnrelatedChangesInAFolderReadNothingElse() async throws {
        try write("a.yaml", service("a", port: 80))
        try write("b.yaml", service("b", port: 81))
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        _ = await source.load(changed: nil)
        XCTAssertFalse(source.isRelevant(change: folder.appendingPathComponent(".a.yaml.swp").path))
        XCTAssertFalse(source.isRelevant(change: folder.appendingPathComponent("notes.txt").path))
        // A deleted file changes only its own objects; the other files are not read again.
        try write("b.yaml", service("b", port: 91))
        try FileManager.default.removeItem(at: folder.appendingPathComponent("a.yaml"))
        let snapshot = await source.load(changed: [folder.appendingPathComponent("a.yaml").path])
        XCTAssertEqual(ports(snapshot), [81])
    }
}

// MARK: - Deleted files

extension ManifestSourceTests {
    func testAFileDeletedFromAFolderRemovesItsObjects() throws {
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        try write("a.yaml", service("a", port: 80))
        try write("b.yaml", service("b", port: 81))
        XCTAssertEqual(ports(source.loadNow()), [80, 81])
        try FileManager.default.removeItem(at: folder.appendingPathComponent("a.yaml"))
        let snapshot = source.loadNow()
        XCTAssertEqual(ports(snapshot), [81])
        XCTAssertEqual(snapshot.issues, [])
        XCTAssertFalse(snapshot.incomplete)
        XCTAssertEqual(snapshot.changedServices, [ObjectName(namespace: "default", name: "a")])
    }

    func testAFolderGivenByNameThatDisappearsKeepsItsObjects() throws {
        let inner = folder.appendingPathComponent("inner")
        try FileManager.default.createDirectory(at: inner, withIntermediateDirectories: true)
        try service("a", port: 80).write(to: inner.appendingPathComponent("a.yaml"), atomically: true, encoding: .utf8)
        let source = ManifestSource(paths: [inner.path], logger: Logger(label: "test"))
        XCTAssertEqual(ports(source.loadNow()), [80])
        try FileManager.default.removeItem(at: inner)
        let snapshot = source.loadNow()
        XCTAssertEqual(ports(snapshot), [80])
        XCTAssertEqual(snapshot.issues.map(\.description), ["\(inner.path): no such file or folder; its last good objects are kept"])
    }
}

// MARK: - Lines of mapping problems

extension ManifestSourceTests {
    /// An edit above a Service with a mapping problem moves it; the problem is reported at its new line.
    func testAMappingProblemFollowsItsObjectToItsNewLine() async throws {
        let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: b, annotations: {ipvs.swift.dev/scheduler-flags: mh-port}}\nspec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}\n"
        try write("a.yaml", service("a", port: 80) + "---\n" + bad)
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        var builder = DesiredStateBuilder(options: MappingOptions())
        let first = await source.load(changed: nil)
        XCTAssertEqual(builder.build(first).issues.map(\.line), [6])
        try write("a.yaml", "# a comment\n# and another\n" + service("a", port: 80) + "---\n" + bad)
        let second = await source.load(changed: [folder.appendingPathComponent("a.yaml").path])
        let build = builder.build(second)
        XCTAssertEqual(build.issues.map(\.line), [8])
        XCTAssertEqual(build.changed, [], "nothing to program changed")
    }
}

extension ManifestSourceTests {
    /// A reload does not wait for a file that decodes slowly: the other files' changes are in the snapshot
    /// with the slow file's last objects, and the slow file's own change is loaded once it is decoded.
    func testASlowFileDoesNotHoldBackTheOtherFilesChanges() async throws {
        let source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        source.decodingWait = .milliseconds(500)
        let late = AsyncStream.makeStream(of: String.self)
        source.lateDecoding = { late.continuation.yield($0) }
        try write("a.yaml", service("a", port: 80))
        try write("slow.yaml", service("slow", port: 81))
        _ = source.loadNow()

        // Tens of thousands of Services take seconds to decode in a debug build; a.yaml a millisecond.
        let many = (0..<60_000).map { service("s\($0)", port: 1_000 + $0 % 50_000) }.joined(separator: "---\n")
        try write("slow.yaml", service("slow", port: 91) + "---\n" + many)
        try write("a.yaml", service("a", port: 90))
        let slow = folder.appendingPathComponent("slow.yaml").path
        let first = await source.load(changed: [folder.appendingPathComponent("a.yaml").path, slow])
        XCTAssertEqual(ports(first), [90, 81], "a's change applied, slow.yaml's last objects kept while it decodes")

        var lateFiles = late.stream.makeAsyncIterator()
        let file = await lateFiles.next()
        XCTAssertEqual(file, slow)
        let second = await source.load(changed: [slow])
        XCTAssertEqual(ports(second).prefix(2), [90, 91])
        XCTAssertEqual(ports(second).count, 60_002)
    }
}
