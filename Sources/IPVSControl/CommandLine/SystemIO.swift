#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// A file or stream that could not be read.
struct ReadFailure: Error, CustomStringConvertible {
    var what: String
    var errno: Int32
    var description: String { "cannot read \(what): \(String(cString: strerror(errno)))" }
}

extension ControlEnvironment {
    /// The process's standard streams, files and the kernel's IPVS.
    public static var system: ControlEnvironment {
        ControlEnvironment(
            openBackend: { try IPVSClient() },
            readStandardInput: { try SystemIO.readAll(descriptor: 0, what: "standard input") },
            readFile: { path in
                let descriptor = open(path, O_RDONLY | O_CLOEXEC)
                guard descriptor >= 0 else { throw ReadFailure(what: path, errno: errno) }
                defer { close(descriptor) }
                return String(decoding: try SystemIO.readAll(descriptor: descriptor, what: path), as: UTF8.self)
            },
            writeOutput: { SystemIO.writeAll(descriptor: 1, $0) },
            writeError: { SystemIO.writeAll(descriptor: 2, Array($0.utf8)) },
            schedulerCatalog: { SchedulerCatalog.current() }
        )
    }
}

/// Whole-buffer reads and writes on file descriptors (no Foundation, no per-line locking).
enum SystemIO {
    static func readAll(descriptor: Int32, what: String) throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 { return result }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReadFailure(what: what, errno: errno)
            }
            result.append(contentsOf: chunk[0..<count])
        }
    }

    static func writeAll(descriptor: Int32, _ bytes: [UInt8]) {
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while offset < raw.count {
                let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
