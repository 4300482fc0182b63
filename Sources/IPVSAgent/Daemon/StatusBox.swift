import AgentStatus
import Foundation

/// What `/healthz` and `/status` answer. `/healthz` reads a flag the daemon keeps current;
/// `/status` is built when it is asked for, from the reconciler's state at that moment.
///
/// Why not a document kept up to date after each change: at 10,000 services it is megabytes of
/// JSON to sort and encode, and the copy of the reconciler's models it is built from shares their
/// storage, so the reconcile that follows while it is being built copies every one of those models
/// before its first change (measured in the VM: one endpoint added took 27-58 ms instead of 1-2 ms).
public final class StatusBox: @unchecked Sendable {
    private let lock = NSLock()
    private var healthy = true
    private var provider: (@Sendable () async -> AgentStatus)?

    public init() {}

    /// Sets how `/status` is made.
    public func setProvider(_ provider: @escaping @Sendable () async -> AgentStatus) {
        lock.withLock { self.provider = provider }
    }

    /// Whether kernel operations succeed, for `/healthz`.
    public var isHealthy: Bool {
        get { lock.withLock { healthy } }
        set { lock.withLock { healthy = newValue } }
    }

    /// The `/status` document, made now (`{}` before the daemon set a provider).
    public func document() async -> Data {
        guard let provider = lock.withLock({ self.provider }) else { return Data("{}".utf8) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(await provider())) ?? Data("{}".utf8)
    }
}
