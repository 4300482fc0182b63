import Foundation

// MARK: - BackendServer

/// The `health-backends` program (Benchmarks/health/health-backends.c) as a child process: N listening
/// sockets on loopback that accept and close, and a command to kill some of them.
final class BackendServer {
    let count: Int
    let port: UInt16
    /// "A.B" of the base address.
    private let prefix: String
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered: [UInt8] = []

    /// Starts `program` (under `launcher`, a command and its arguments, when not empty) and waits until every
    /// backend listens on `base` (A.B.0.0) + (i / 250).(i % 250 + 1).
    init(program: String, launcher: [String] = [], count: Int, port: UInt16, base: String = "127.1.0.0") throws {
        guard let prefix = Self.base(base) else { throw BenchError("not an IPv4 base address A.B.0.0: \(base)") }
        self.count = count
        self.port = port
        self.prefix = prefix
        let arguments = [program, String(count), String(port), base]
        if let command = launcher.first {
            process.executableURL = URL(fileURLWithPath: command.hasPrefix("/") ? command : "/usr/bin/env")
            process.arguments = (command.hasPrefix("/") ? [] : [command]) + launcher.dropFirst() + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(arguments.dropFirst())
        }
        process.standardInput = input
        process.standardOutput = output
        do {
            try process.run()
        } catch {
            throw BenchError("cannot start the backend server \(program): \(error)")
        }
        let line = try readLine()
        guard line == "ready" else { throw BenchError("the backend server \(program) did not start: \(line)") }
    }

    /// "A.B" of a base address "A.B.0.0"; `nil` when it is not an IPv4 address.
    static func base(_ text: String) -> String? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return nil }
        return "\(parts[0]).\(parts[1])"
    }

    /// Backend `index`'s address: A.B.(index / 250).(index % 250 + 1), as health-backends.c listens.
    func address(of index: Int) -> String {
        "\(prefix).\(index / 250).\(index % 250 + 1)"
    }

    /// Closes the listening sockets of `indices`; returns the instant after the last close.
    func kill(_ indices: [Int]) throws -> Date {
        let command = "kill " + indices.map(String.init).joined(separator: " ") + "\n"
        input.fileHandleForWriting.write(Data(command.utf8))
        let line = try readLine()
        guard line.hasPrefix("killed "), let nanoseconds = Int64(line.dropFirst("killed ".count)) else {
            throw BenchError("the backend server answered '\(line)' to kill")
        }
        return Date(timeIntervalSince1970: Double(nanoseconds) / 1e9)
    }

    /// Closes the server's stdin, which ends it, and waits.
    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    private func readLine() throws -> String {
        let handle = output.fileHandleForReading
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            let data = handle.availableData
            guard !data.isEmpty else { throw BenchError("the backend server exited (status \(process.isRunning ? -1 : process.terminationStatus))") }
            buffered.append(contentsOf: data)
        }
    }
}

/// A failure of the benchmark itself, with what went wrong.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
