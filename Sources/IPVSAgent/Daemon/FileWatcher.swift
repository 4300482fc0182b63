import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Watches folders with inotify and reports that something in them changed.
///
/// The blocking `poll`/`read` loop runs on its own thread, never on the cooperative pool; events
/// arrive as an `AsyncStream` of the changed file names. Watching the folders (not the files)
/// catches editors that replace a file by renaming a new one over it, and files that appear.
public final class FileWatcher: @unchecked Sendable {
    /// Changed file paths (folder + name).
    public let changes: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation
    private let descriptor: Int32
    private var folders: [Int32: String] = [:]
    private let stopped = NSLock()
    private var isStopped = false

    public init(folders paths: [String]) throws {
        (changes, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1024))
        descriptor = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard descriptor >= 0 else { throw AgentError("cannot start inotify: \(String(cString: strerror(errno)))") }
        // No IN_MODIFY: a file rewritten in place (truncate, then write) would be read half
        // written, and its missing objects would be deleted for a moment. IN_CLOSE_WRITE sees
        // the finished file; renames (editors, ConfigMap volumes) arrive as IN_MOVED_TO.
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)
        for path in Set(paths) {
            let watch = inotify_add_watch(descriptor, path, mask)
            guard watch >= 0 else {
                close(descriptor)
                throw AgentError("cannot watch \(path) for changes: \(String(cString: strerror(errno)))")
            }
            folders[watch] = path
        }
        let thread = Thread { [self] in loop() }
        thread.name = "ipvs-agent inotify"
        thread.start()
    }

    /// Ends the stream and the thread (within half a second).
    public func stop() {
        stopped.withLock { isStopped = true }
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !stopped.withLock({ isStopped }) {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 500) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { continue }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= count {
                let (watch, length, name) = buffer.withUnsafeBytes { raw -> (Int32, Int, String) in
                    let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    let start = offset + MemoryLayout<inotify_event>.size
                    let bytes = raw[start..<min(start + Int(event.len), count)].prefix { $0 != 0 }
                    return (event.wd, Int(event.len), String(decoding: bytes, as: UTF8.self))
                }
                offset += MemoryLayout<inotify_event>.size + length
                if let folder = folders[watch] {
                    continuation.yield(folder == "." ? name : (folder as NSString).appendingPathComponent(name))
                }
            }
        }
        close(descriptor)
        continuation.finish()
    }
}
