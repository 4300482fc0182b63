import Conntrack
import Logging
import Metrics

/// Deletes the UDP connection tracking entries that the reconciler's kernel changes left stale
/// (`Reconciler.takeStaleConntrack()`), after the change, and logs and counts what it did. A
/// failure is logged and counted, never fatal: the entries then time out as they would without
/// the agent.
struct ConntrackDriver: Sendable {
    private let conntrack = Conntrack()
    private let deleted = Counter(label: "ipvs_agent_conntrack_entries_deleted_total")
    private let failures = Counter(label: "ipvs_agent_conntrack_failures_total")

    /// Deletes the stale entries the reconciler noted since the last call.
    func clean(_ reconciler: Reconciler, logger: Logger) async {
        let filters = await reconciler.takeStaleConntrack()
        guard !filters.isEmpty else { return }
        let start = ContinuousClock.now
        let result = conntrack.deleteEntries(matching: filters)
        deleted.increment(by: result.deleted)
        if !result.failures.isEmpty {
            failures.increment(by: result.failures.count)
            for failure in result.failures { logger.error("\(failure)") }
        }
        logger.debug("stale conntrack entries deleted", metadata: [
            "filters": "\(filters.map(\.description).joined(separator: "; "))", "entries": "\(result.deleted)",
            "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))"])
    }
}
