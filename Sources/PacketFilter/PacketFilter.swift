import Synchronization

/// The agent's own nftables table (`inet <name>`): created on the first sync, kept in step with a
/// `PacketFilterState` by adding and deleting set elements in one transaction per sync, and deleted
/// by `delete()`. It never reads or writes another table.
public final class PacketFilter: Sendable {
    /// The table's name (family `inet`).
    public let table: String
    private let ruleset: PacketFilterRuleset
    private let state: Mutex<Applied>

    private struct Applied: ~Copyable {
        var context: NFTablesContext
        /// The elements the table holds since the last successful transaction; `nil` before the
        /// first one, or after a failure (the next sync replaces the table).
        var elements: [PacketFilterRuleset.SetID: Set<String>]?
        var statistics = PacketFilterStatistics()
    }

    /// A filter for table `inet <table>`, in the network namespace of the calling thread.
    public init(table: String = "ipvs-agent") throws(PacketFilterError) {
        guard Self.isValidName(table) else {
            throw PacketFilterError(operation: "use table \(table)", message: "a table name is a letter followed by letters, digits, - or _")
        }
        self.table = table
        ruleset = PacketFilterRuleset(table: table)
        state = Mutex(Applied(context: try NFTablesContext(), elements: nil))
    }

    /// Brings the table to `desired` in one transaction: only the elements that changed when the
    /// table is known to hold the last synced state, else (first sync, `replace`, or a failed
    /// update) the whole table written again. On error nothing of the transaction is applied.
    @discardableResult
    public func sync(_ desired: PacketFilterState, replace: Bool = false) throws(PacketFilterError) -> PacketFilterSync {
        let elements = ruleset.elements(of: desired)
        return try state.withLock { (applied) throws(PacketFilterError) -> PacketFilterSync in
            if !replace, let old = applied.elements {
                guard let commands = ruleset.update(from: old, to: elements) else { return .unchanged }
                do throws(PacketFilterError) {
                    _ = try applied.context.run(commands, operation: "update the sets of table inet \(table)")
                    applied.elements = elements
                    applied.statistics.updates += 1
                    return .updated(changedElements: Self.changes(from: old, to: elements))
                } catch {
                    // The table no longer holds what was last applied (someone changed it): replace it.
                    applied.statistics.failures += 1
                }
            }
            applied.elements = nil
            do throws(PacketFilterError) {
                _ = try applied.context.run(ruleset.replace(with: elements), operation: "write table inet \(table)")
            } catch {
                applied.statistics.failures += 1
                throw error
            }
            applied.elements = elements
            applied.statistics.replacements += 1
            return .replaced
        }
    }

    /// Deletes the table if it exists (`ipvs-agent --cleanup`); other tables are left alone.
    public func delete() throws(PacketFilterError) {
        try state.withLock { (applied) throws(PacketFilterError) in
            applied.elements = nil
            do throws(PacketFilterError) {
                _ = try applied.context.run(ruleset.deletion(), operation: "delete table inet \(table)")
            } catch {
                applied.statistics.failures += 1
                throw error
            }
        }
    }

    /// The table as `nft list table inet <name>` prints it, or `nil` when there is none.
    public func listing() throws(PacketFilterError) -> String? {
        try state.withLock { (applied) throws(PacketFilterError) -> String? in
            do throws(PacketFilterError) {
                return try applied.context.run(ruleset.listing(), operation: "list table inet \(table)")
            } catch where error.message.contains("No such file or directory") {
                return nil
            }
        }
    }

    /// The transactions so far.
    public var statistics: PacketFilterStatistics { state.withLock { $0.statistics } }

    private static func changes(from old: [PacketFilterRuleset.SetID: Set<String>],
                                to new: [PacketFilterRuleset.SetID: Set<String>]) -> Int {
        Set(old.keys).union(new.keys).reduce(0) { total, id in
            total + (old[id] ?? []).symmetricDifference(new[id] ?? []).count
        }
    }

    private static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII, name.count <= 64 else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
    }
}

/// What one `PacketFilter.sync` did.
public enum PacketFilterSync: Hashable, Sendable {
    /// The table already held the state: no transaction.
    case unchanged
    /// Set elements were added and deleted (this many in all), the rules left as they were.
    case updated(changedElements: Int)
    /// The whole table was written (created, or replaced after a failed update or on request).
    case replaced
}

/// Counts of the filter's nftables transactions, for the agent's metrics.
public struct PacketFilterStatistics: Hashable, Sendable {
    /// Transactions that wrote the whole table.
    public var replacements: Int
    /// Transactions that changed set elements only.
    public var updates: Int
    /// Transactions nftables refused.
    public var failures: Int

    public init(replacements: Int = 0, updates: Int = 0, failures: Int = 0) {
        self.replacements = replacements
        self.updates = updates
        self.failures = failures
    }
}
