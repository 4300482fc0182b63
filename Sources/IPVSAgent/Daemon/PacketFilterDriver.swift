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
    private let last = Mutex<PacketFilterState?>(nil)
    private let transactions = (replaced: Counter(label: "ipvs_agent_nftables_transactions_total", dimensions: [("kind", "replace")]),
                                updated: Counter(label: "ipvs_agent_nftables_transactions_total", dimensions: [("kind", "update")]))
    private let failures = Counter(label: "ipvs_agent_nftables_failures_total")

    init(options: PacketFilterOptions, logger: Logger) throws(PacketFilterError) {
        self.options = options
        self.logger = logger
        filter = try PacketFilter(table: Self.table)
    }

    /// Brings the table to the nftables state of `desired` (`PacketFilterMapper`); with `replace`,
    /// the whole table is written again. Returns whether nftables took it.
    @discardableResult
    func sync(_ desired: DesiredState, services: [ObjectName: KubeService], replace: Bool = false) -> Bool {
        sync(PacketFilterMapper.state(of: desired, services: services, options: options), replace: replace)
    }

    /// Writes the last synced state again, whole (the sync period's drift repair); nothing before a first sync.
    @discardableResult
    func repair() -> Bool {
        guard let state = last.withLock({ $0 }) else { return true }
        return sync(state, replace: true)
    }

    private func sync(_ state: PacketFilterState, replace: Bool) -> Bool {
        let start = ContinuousClock.now
        do {
            let result = try filter.sync(state, replace: replace)
            last.withLock { $0 = state }
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
