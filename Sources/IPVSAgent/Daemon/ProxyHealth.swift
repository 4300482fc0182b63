import Foundation

/// Whether the agent keeps up, by kube-proxy's rule for `/healthz` and `/livez`
/// (`pkg/proxy/healthcheck/proxy_health.go`): unhealthy only while a change has waited longer than
/// the timeout (twice the sync period) to be applied. A sync counts when it ran to its end, whether
/// or not the kernel took every operation: one Service the kernel refuses is that Service's problem,
/// logged and retried, and must not make a liveness probe restart the agent in a loop.
public final class ProxyHealth: @unchecked Sendable {
    /// What waits to be applied, each tracked apart (kube-proxy tracks each IP family's proxier so).
    public enum Work: Hashable, Sendable {
        /// Changed manifests or a SIGHUP, waiting for a reload.
        case changes
        /// A verification of the kernel (every sync period, or soon after a failed operation).
        case verification
    }

    /// How long a change may wait (kube-proxy's `healthTimeout`, twice the sync period).
    public let timeout: Duration
    private let lock = NSLock()
    private var oldestPending: [Work: ContinuousClock.Instant] = [:]
    private var lastUpdated: Date?
    /// The source's state, reported in the body (the API server's: `APISourceStatus.json()`).
    private var sourceReport: (@Sendable () -> String)?

    public init(syncPeriod: Duration) {
        timeout = syncPeriod * 2
    }

    /// `work` is wanted: from now, it must be done within `timeout` (an earlier pending one keeps its time).
    public func queued(_ work: Work, at now: ContinuousClock.Instant = .now) {
        lock.withLock {
            if oldestPending[work] == nil { oldestPending[work] = now }
        }
    }

    /// `work` ran to its end, failed operations or not.
    public func updated(_ work: Work) {
        lock.withLock {
            oldestPending[work] = nil
            lastUpdated = Date()
        }
    }

    /// Whether no work has waited `timeout` or longer at `now`.
    public func isHealthy(at now: ContinuousClock.Instant = .now) -> Bool {
        lock.withLock { oldestPending.values.allSatisfy { now - $0 < timeout } }
    }

    /// Reports the source's state in every answer, as a `source` member (a JSON object `report` writes).
    func reportSource(_ report: @escaping @Sendable () -> String) {
        lock.withLock { sourceReport = report }
    }

    /// The answer of `/healthz` and `/livez`, in kube-proxy's shape: 200 or 503, and
    /// `{"lastUpdated": …, "currentTime": …}` (`lastUpdated` is the current time while healthy, as kube-proxy writes it),
    /// with the source's state beside them when it reports one (`"source": {…}`); the source's
    /// state never changes the status, as kube-proxy's does not depend on the API server.
    func answer() -> (healthy: Bool, body: String) {
        let healthy = isHealthy()
        let now = Date()
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let (last, report): (Date?, (@Sendable () -> String)?) = lock.withLock { (healthy ? now : lastUpdated, sourceReport) }
        let source = report.map { ",\"source\": \($0())" } ?? ""
        return (healthy, "{\"lastUpdated\": \"\(last.map(formatter.string(from:)) ?? "")\",\"currentTime\": \"\(formatter.string(from: now))\"\(source)}\n")
    }
}
