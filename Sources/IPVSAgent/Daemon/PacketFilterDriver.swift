import AgentStatus
import Logging
import Metrics
import PacketFilter
import Synchronization

/// Keeps the agent's nftables table (`PacketFilter`, table `inet ipvs-agent`) in step with the
/// desired state after each reconcile, writes it whole again every sync period (drift), logs and
/// counts its transactions. A refused transaction leaves the table as it was and is logged; the
/// next sync tries again.
final class PacketFilterDriver: Sendable {
    /// The table's name.
    static let table = "ipvs-agent"
    /// The report line of a sync nftables refused (its error is logged when it happens).
    static let notSynced = "nftables: table inet ipvs-agent not brought up to date (see the error logged above)"

    let options: PacketFilterOptions
    private let filter: PacketFilter
    private let logger: Logger
    /// Whether a sync went through: until then every sync writes every Service's part.
    private let synced = Mutex(false)
    private let transactions = (replaced: Counter(label: "ipvs_agent_nftables_transactions_total", dimensions: [("kind", "replace")]),
                                updated: Counter(label: "ipvs_agent_nftables_transactions_total", dimensions: [("kind", "update")]))
    private let failures = Counter(label: "ipvs_agent_nftables_failures_total")

    init(options: PacketFilterOptions, logger: Logger) throws(PacketFilterError) {
        self.options = options
        self.logger = logger
        filter = try PacketFilter(table: Self.table)
    }

    /// A sync computed from a builder (`prepare(_:replace:)`), to be applied on any thread (`apply(_:)`).
    struct PendingSync: Sendable {
        let parts: [String: PacketFilterState]
        /// Whether the parts are the changed Services' only (set elements updated), not every part.
        let isUpdate: Bool
        let replace: Bool
    }

    /// Brings the table to the nftables state of the builder's desired state: only the parts of the
    /// Services it mapped again since the last sync (`takeChangedServices(for:)`) are recomputed, or all of
    /// them on the first sync and after a full merge; with `replace`, the whole table is written again.
    /// Returns whether nftables took it.
    @discardableResult
    func sync(_ builder: inout DesiredStateBuilder, replace: Bool = false) -> Bool {
        apply(prepare(&builder, replace: replace))
    }

    /// The first half of `sync(_:replace:)`: the parts to write, taken from the builder.
    func prepare(_ builder: inout DesiredStateBuilder, replace: Bool = false) -> PendingSync {
        let changed = builder.takeChangedServices(for: .packetFilter)
        if let changed, !replace, synced.withLock({ $0 }) {
            return PendingSync(parts: PacketFilterMapper.parts(of: builder, names: changed, options: options), isUpdate: true, replace: false)
        }
        return PendingSync(parts: PacketFilterMapper.parts(of: builder, names: nil, options: options), isUpdate: false, replace: replace)
    }

    /// The second half of `sync(_:replace:)`: the transaction. Returns whether nftables took it.
    @discardableResult
    func apply(_ pending: PendingSync) -> Bool {
        record(ContinuousClock.now) { () throws(PacketFilterError) -> PacketFilterSync in
            pending.isUpdate ? try filter.update(pending.parts) : try filter.sync(parts: pending.parts, replace: pending.replace)
        }
    }

    /// The table in `/status`.
    func status() -> PacketFilterStatus {
        let statistics = filter.statistics
        return PacketFilterStatus(table: "inet \(Self.table)", synced: filter.isSynced, elements: filter.elementCounts,
                                  replacements: statistics.replacements, updates: statistics.updates, failures: statistics.failures)
    }

    /// Writes the table whole again from the last synced parts (the sync period's drift repair);
    /// nothing before a first sync.
    @discardableResult
    func repair() -> Bool {
        guard synced.withLock({ $0 }) else { return true }
        return record(ContinuousClock.now) { () throws(PacketFilterError) in try filter.repair() }
    }

    /// Runs one of the filter's syncs, then logs and counts it.
    private func record(_ start: ContinuousClock.Instant, _ body: () throws(PacketFilterError) -> PacketFilterSync) -> Bool {
        do {
            let result = try body()
            synced.withLock { $0 = true }
            switch result {
            case .unchanged: break
            case .updated(let changed):
                transactions.updated.increment()
                logger.debug("nftables set elements updated", metadata: ["table": "inet \(Self.table)", "elements": "\(changed)",
                                                                         "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))"])
            case .replaced:
                transactions.replaced.increment()
                logger.info("nftables table written", metadata: ["table": "inet \(Self.table)",
                                                                 "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))"])
            }
            return true
        } catch {
            failures.increment()
            logger.error("\(error)", metadata: ["table": "inet \(Self.table)"])
            return false
        }
    }

    /// Deletes the table (`--cleanup`); other tables are left alone.
    static func delete() throws(PacketFilterError) {
        try PacketFilter(table: table).delete()
    }

    /// The table as `nft list table` prints it, or `nil` when there is none or nftables refused.
    func listing() -> String? { try? filter.listing() }
}
