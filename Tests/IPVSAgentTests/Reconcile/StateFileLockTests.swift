import Foundation
import XCTest
@testable import IPVSAgent

/// One agent per state file: the lock beside it, held by an open file.
final class StateFileLockTests: XCTestCase {
    var folder: URL!

    override func setUp() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("state-lock-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func testASecondLockOfTheSameStateFileFailsNamingTheFileAndTheHolder() throws {
        let state = folder.appendingPathComponent("state.json").path
        var first: StateFileLock? = try StateFileLock(statePath: state)
        XCTAssertEqual(first?.path, state + ".lock")
        XCTAssertThrowsError(try StateFileLock(statePath: state)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("another ipvs-agent (pid \(getpid())) is running on the state file \(state)"), text)
            XCTAssertTrue(text.contains("stop it first"), text)
        }
        // Another state file is another lock.
        XCTAssertNoThrow(try StateFileLock(statePath: folder.appendingPathComponent("other.json").path))
        // Released with its descriptor (as when the process ends): the next agent takes it.
        first = nil
        XCTAssertNoThrow(try StateFileLock(statePath: state))
        withExtendedLifetime(first) {}
    }

    /// The built `ipvs-agent` refuses to start on a state file another process holds: exit 2,
    /// naming the state file and the holder's pid, before it opens IPVS (this host has none).
    /// `--dry-run` writes nothing and takes no lock.
    func testTheAgentExitsWithStatusTwoWhenAnotherProcessHoldsTheStateFile() throws {
        let state = folder.appendingPathComponent("state.json").path
        let manifest = folder.appendingPathComponent("empty.yaml")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try "".write(to: manifest, atomically: true, encoding: .utf8)
        let lock = try StateFileLock(statePath: state)
        for mode in [["--once", "--manifests", manifest.path], ["--cleanup"], ["--manifests", manifest.path]] {
            let result = try agent(mode + ["--state-file", state, "--metrics-address", "none"])
            XCTAssertEqual(result.status, 2, "\(mode): \(result.output)")
            XCTAssertTrue(result.output.contains("another ipvs-agent (pid \(getpid())) is running on the state file \(state)"),
                          "\(mode): \(result.output)")
        }
        let dry = try agent(["--dry-run", "--manifests", manifest.path, "--state-file", state])
        XCTAssertFalse(dry.output.contains("another ipvs-agent"), dry.output)
        XCTAssertEqual(dry.status, 0, dry.output)
        withExtendedLifetime(lock) {}
    }

    /// Runs the built `ipvs-agent` (beside the test bundle) and returns its exit status and output.
    func agent(_ arguments: [String]) throws -> (status: Int32, output: String) {
        var products = Bundle(for: Self.self).bundleURL.deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: products.appendingPathComponent("ipvs-agent").path) {
            products = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        }
        let process = Process()
        process.executableURL = products.appendingPathComponent("ipvs-agent")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
