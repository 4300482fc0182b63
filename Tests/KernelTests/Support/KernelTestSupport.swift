import Foundation
import XCTest

/// Conventions of the kernel tests.
///
/// `make test` runs every kernel test in its own process, inside a fresh network namespace whose
/// `lo` is up, on a kernel with IPVS: the host's when it has IPVS, else the kernel VM's
/// (`Scripts/run-kernel-tests.sh`, started through `Scripts/kernel-run.sh`). The runner sets
/// `IPVS_KERNEL` (`host` or `vm`). Under a plain `swift test` that variable is missing and the
/// tests skip with a message saying how to run them; where it is set, a missing IPVS is a failure.
enum KernelTest {
    /// Skips the calling test unless it runs under the kernel test runner.
    static func requireKernel(file: StaticString = #filePath, line: UInt = #line) throws {
        guard ProcessInfo.processInfo.environment["IPVS_KERNEL"] != nil else {
            throw XCTSkip("kernel test: run it with `make test` (or Scripts/kernel-run.sh Scripts/run-kernel-tests.sh)")
        }
    }

    /// The folder holding the built products (`ipvsctl`, `ipvs-agent`) beside the test bundle.
    static var productsDirectory: URL {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var folder = executable.deletingLastPathComponent()
        if folder.pathExtension == "xctest" { folder = folder.deletingLastPathComponent() }
        return folder
    }

    /// The path of a built executable product.
    static func product(_ name: String) -> String {
        productsDirectory.appendingPathComponent(name).path
    }

    /// The result of a finished command.
    struct CommandResult {
        var status: Int32
        var standardOutput: String
        var standardError: String
    }

    /// Runs `arguments` (the first is a path or a name looked up in PATH) and waits for it.
    @discardableResult
    static func run(_ arguments: [String], input: String? = nil, environment: [String: String]? = nil) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let output = Pipe(), error = Pipe(), inputPipe = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = inputPipe
        try process.run()
        if let input { inputPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try inputPipe.fileHandleForWriting.close()
        // Read both pipes before waiting so a chatty command cannot block on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var errorData = Data()
        DispatchQueue.global().async(group: group) { errorData = error.fileHandleForReading.readDataToEndOfFile() }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             standardOutput: String(decoding: outputData, as: UTF8.self),
                             standardError: String(decoding: errorData, as: UTF8.self))
    }

    /// Runs a shell command line and fails the test when it exits non-zero.
    @discardableResult
    static func shell(_ command: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try run(["sh", "-c", command])
        guard result.status == 0 else {
            XCTFail("`\(command)` exited \(result.status): \(result.standardError)", file: file, line: line)
            throw CommandFailed(command: command, result: result)
        }
        return result.standardOutput
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var command: String
        var result: CommandResult
        var description: String { "`\(command)` exited \(result.status): \(result.standardError)" }
    }
}
