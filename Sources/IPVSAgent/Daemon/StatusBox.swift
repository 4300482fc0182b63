import AgentStatus
import Foundation

/// What `/status` answers, built when it is asked for from the reconciler's state at that moment
/// (`/healthz` follows `ProxyHealth`).
///
/// Not a document kept up to date after each change: with many Services it is megabytes of JSON to
/// sort and encode, and the copy of the reconciler's models it is built from shares their storage,
/// so the reconcile that follows while it is being built would copy every one of those models
/// before its first change.
public final class StatusBox: @unchecked Sendable {
    private let lock = NSLock()
    private var provider: (@Sendable () async -> AgentStatus)?

    public init() {}

    /// Sets how `/status` is made.
    public func setProvider(_ provider: @escaping @Sendable () async -> AgentStatus) {
        lock.withLock { self.provider = provider }
    }

    /// The `/status` document, made now (`{}` before the daemon set a provider).
    public func document() async -> Data {
        guard let provider = lock.withLock({ self.provider }) else { return Data("{}".utf8) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(await provider())) ?? Data("{}".utf8)
    }
}
