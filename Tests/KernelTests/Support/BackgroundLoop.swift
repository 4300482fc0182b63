import Foundation

/// A shell loop that runs beside a test until ``stop()``: `body` runs over and over, in a fresh folder that
/// holds `files`, through `launcher` (e.g. `["unshare", "-n"]` for another network namespace).
final class BackgroundLoop {
    private let folder: URL
    private let process = Process()

    init(files: [String: String], body: String, launcher: [String] = []) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("loop-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = launcher + ["sh", "-c", "while [ ! -e stop ]; do \(body); done"]
        process.currentDirectoryURL = folder
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// Ends the loop after its current pass and waits for it.
    func stop() {
        _ = FileManager.default.createFile(atPath: folder.appendingPathComponent("stop").path, contents: nil)
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: folder)
    }
}
