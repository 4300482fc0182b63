import Foundation
import Logging

/// The lines a logger wrote, with their levels: each message alone, and as a line with its
/// metadata sorted as `key=value`.
final class LogRecorder: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [(level: Logger.Level, message: String, line: String)] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = event.message.description
        let fields = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted()
        lock.withLock { recorded.append((event.level, message, ([message] + fields).joined(separator: " "))) }
    }

    /// The lines logged at `level`, each with its metadata.
    func lines(at level: Logger.Level) -> [String] { lock.withLock { recorded.filter { $0.level == level }.map(\.line) } }
    /// Every message logged (at `logLevel` and above), without metadata.
    var messages: [String] { lock.withLock { recorded.map(\.message) } }
    func clear() { lock.withLock { recorded = [] } }
}
