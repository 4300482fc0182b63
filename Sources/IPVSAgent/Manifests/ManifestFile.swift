import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads the text of one manifest file, refusing what is not a regular file or is bigger than
/// `ManifestLimits.fileBytes` before reading it.
///
/// The file is opened without blocking (a FIFO named `x.yaml` would otherwise wait for a writer)
/// and checked on the descriptor it was opened as, so a file swapped for something else between
/// listing and reading is still refused; then at most the limit and one byte are read.
enum ManifestFile {
    /// Why a file's text could not be read.
    enum Problem: Error, Equatable {
        /// Not a regular file: what it is (`a FIFO`, `a character device`, …).
        case notRegular(String)
        /// Bigger than the limit: its size in bytes, as far as it was read.
        case tooLarge(Int)
        case notUTF8
        /// The system refused (`open` or `read`): what it said.
        case system(String)

        /// What is wrong, in words (the file is named apart).
        var message: String {
            switch self {
            case .notRegular(let what): "\(what), not a regular file; skipped"
            case .tooLarge(let bytes):
                "the file is \(bytes.grouped) bytes, more than \(ManifestLimits.fileBytes.grouped) (the limit for a manifest file); "
                    + "split it into several files"
            case .notUTF8: "the file is not UTF-8 text"
            case .system(let reason): "cannot read the file (\(reason))"
            }
        }
    }

    static func read(_ path: String) throws(Problem) -> String {
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system(String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .system(String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .notRegular(kind(status.st_mode)) }
        guard status.st_size <= ManifestLimits.fileBytes else { throw .tooLarge(Int(status.st_size)) }
        // The size may change while the file is read: never more than the limit and one byte.
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                guard count <= ManifestLimits.fileBytes else { throw .tooLarge(count) }
                bytes += [UInt8](repeating: 0, count: min(bytes.count, ManifestLimits.fileBytes + 1 - count))
            }
            let got = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + count, $0.count - count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw .system(String(cString: strerror(errno)))
            }
            if got == 0 { break }
            count += got
        }
        guard let text = String(validating: bytes[..<count], as: UTF8.self) else { throw .notUTF8 }
        return text
    }

    /// What a file of this mode is, for a message.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFDIR: "a folder"
        case S_IFLNK: "a symbolic link"
        default: "a special file"
        }
    }
}
