import Foundation

/// Whether the agent keeps up, by kube-proxy's rule for `/healthz` and `/livez`
/// (`pkg/proxy/healthcheck/proxy_health.go`): unhealthy only while a change has waited longer than
/// the timeout (twice the sync period) to be applied, and never before the first load is applied
/// (kube-proxy's proxier is healthy while it starts up). A sync counts when it ran to its end, whether
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
    /// Whether the first load has been applied: until then the agent is starting, and healthy.
    private var started = false
    /// The source's state, reported in `/healthz`'s body (the API server's: `APISourceStatus.json()`).
    private var sourceReport: (@Sendable () -> String)?
    /// Whether this node's Node is eligible (`KubeNode.eligible`); `nil` without a Node (files).
    private var nodeEligibility: (@Sendable () -> Bool)?

    /// The two paths: `/healthz` (load balancers and readiness: the node's eligibility counts) and
    /// `/livez` (liveness: only whether the agent keeps up).
    enum Path {
        case healthz
        case livez
    }

    public init(syncPeriod: Duration) {
        timeout = syncPeriod * 2
    }

    /// `work` is wanted: from now, it must be done within `timeout` (an earlier pending one keeps its time).
    public func queued(_ work: Work, at now: ContinuousClock.Instant = .now) {
        lock.withLock {
            if oldestPending[work] == nil { oldestPending[work] = now }
        }
    }

    /// `work` ran to its end, failed operations or not; the first `.changes` ends the start.
    public func updated(_ work: Work) {
        lock.withLock {
            oldestPending[work] = nil
            lastUpdated = Date()
            if work == .changes { started = true }
        }
    }

    /// Whether the agent is starting (no load applied yet), or no work has waited `timeout` or longer at `now`.
    public func isHealthy(at now: ContinuousClock.Instant = .now) -> Bool {
        lock.withLock { !started || oldestPending.values.allSatisfy { now - $0 < timeout } }
    }

    /// Reports the source's state in `/healthz`'s answers, as a `source` member (a JSON object
    /// `report` writes), and judges the node by `nodeEligible` (with the API server: its Node).
    func reportSource(_ report: @escaping @Sendable () -> String, nodeEligible: @escaping @Sendable () -> Bool) {
        lock.withLock {
            sourceReport = report
            nodeEligibility = nodeEligible
        }
    }

    /// The answer of `path`, in kube-proxy's shape (`proxy_health.go`): 200 or 503, and
    /// `{"lastUpdated": …, "currentTime": …}` (`lastUpdated` is the current time while healthy, as
    /// kube-proxy writes it). `/healthz` also answers 503 for a node that is not eligible (being
    /// deleted, or tainted `ToBeDeletedByClusterAutoscaler`) and says so (`"nodeEligible": false`),
    /// with the source's state beside (`"source": {…}`); the source's state never changes the
    /// status, as kube-proxy's does not depend on the API server.
    func answer(_ path: Path = .healthz) -> (healthy: Bool, body: String) {
        let keepingUp = isHealthy()
        let now = Date()
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let (updated, report, eligibility) = lock.withLock { (lastUpdated, sourceReport, nodeEligibility) }
        var healthy = keepingUp, extra = ""
        if path == .healthz {
            if let eligibility {
                let eligible = eligibility()
                healthy = healthy && eligible
                extra += ", \"nodeEligible\": \(eligible)"
            }
            if let report { extra += ",\"source\": \(report())" }
        }
        let last: Date? = healthy ? now : updated
        return (healthy, "{\"lastUpdated\": \"\(last.map(formatter.string(from:)) ?? "")\",\"currentTime\": \"\(formatter.string(from: now))\"\(extra)}\n")
    }
}
