import Foundation

/// One agent per state file: an exclusive lock on `<state file>.lock`, held for as long as the
/// process lives (`flock`, on a descriptor closed on exec, so the kernel releases it when the
/// agent exits or is killed, and no child keeps it). Two agents on one state file would fight
/// over the kernel and each record only part of what they created.
///
/// The lock is on a file beside the state file, not on the state file itself, which is replaced
/// (renamed over) at every write. The holder writes its process id into it, for the message of
/// an agent refused. The file stays after the agent exits: removing it would race with an agent
/// that opened it a moment before.
public final class StateFileLock: Sendable {
    /// The locked file: the state file's path with `.lock` appended.
    public let path: String
    private let descriptor: Int32

    /// Takes the lock of the state file at `statePath`, creating its folder when needed; throws
    /// an error naming the state file and the process holding it when another process does.
    public init(statePath: String) throws {
        path = statePath + ".lock"
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw AgentError("cannot open \(path) to lock the state file \(statePath): \(String(cString: strerror(errno))); the agent needs a writable folder there (--state-file)")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = reason == EWOULDBLOCK ? Self.holder(descriptor) : nil
            close(descriptor)
            guard reason == EWOULDBLOCK else {
                throw AgentError("cannot lock the state file \(statePath) (\(path)): \(String(cString: strerror(reason)))")
            }
            throw AgentError("""
                another ipvs-agent (\(holder.map { "pid \($0)" } ?? "pid unknown")) is running on the state file \(statePath) \
                (it holds \(path)); stop it first, or give this one a state file of its own (--state-file): two agents on one \
                state file fight over the kernel and lose track of what they own
                """)
        }
        self.descriptor = descriptor
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = text.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    deinit {
        close(descriptor) // Releases the lock.
    }

    /// The process id the holder wrote into the lock file, if it did already.
    private static func holder(_ descriptor: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
