import Synchronization

/// The agent's own nftables table (`inet <name>`): created on the first sync, kept in step with a
/// `PacketFilterState` by adding and deleting set elements in one transaction per sync, and deleted
/// by `delete()`. It never reads or writes another table.
///
/// The state may come in named parts (one per Service, say): `update(_:)` then recomputes only the
/// elements of the parts it is given, and an element stays in the table while any part holds it.
public final class PacketFilter: Sendable {
    /// The table's name (family `inet`).
    public let table: String
    private let ruleset: PacketFilterRuleset
    private let state: Mutex<Applied>

    private typealias Elements = [PacketFilterRuleset.SetID: Set<String>]

    private struct Applied: ~Copyable {
        var context: NFTablesContext
        /// Each part, as last given (its elements are computed again when it changes).
        var parts: [String: PacketFilterState] = [:]
        /// Every element of the parts with the number of parts that hold it.
        var counts: [PacketFilterRuleset.SetID: [String: Int]] = [:]
        /// Whether the table holds `counts`' elements: false before the first transaction, or after
        /// a failure (the next sync replaces the table).
        var synced = false
        var statistics = PacketFilterStatistics()
    }

    /// A filter for table `inet <table>`, in the network namespace of the calling thread.
    public init(table: String = "ipvs-agent") throws(PacketFilterError) {
        guard Self.isValidName(table) else {
            throw PacketFilterError(operation: "use table \(table)", message: "a table name is a letter followed by letters, digits, - or _")
        }
        self.table = table
        ruleset = PacketFilterRuleset(table: table)
        state = Mutex(Applied(context: try NFTablesContext()))
    }

    /// Brings the table to `desired` (one part) in one transaction: see `sync(parts:replace:)`.
    @discardableResult
    public func sync(_ desired: PacketFilterState, replace: Bool = false) throws(PacketFilterError) -> PacketFilterSync {
        try sync(parts: ["": desired], replace: replace)
    }

    /// Brings the table to the union of `parts` (the parts held before are forgotten) in one
    /// transaction: only the elements that changed when the table is known to hold the last synced
    /// state, else (first sync, `replace`, or a failed update) the whole table written again. On
    /// error nothing of the transaction is applied.
    @discardableResult
    public func sync(parts: [String: PacketFilterState], replace: Bool = false) throws(PacketFilterError) -> PacketFilterSync {
        var counts: [PacketFilterRuleset.SetID: [String: Int]] = [:]
        for part in parts.values {
            ruleset.forEachElement(of: part) { id, member in counts[id, default: [:]][member, default: 0] += 1 }
        }
        return try state.withLock { (applied) throws(PacketFilterError) -> PacketFilterSync in
            var deletions: Elements = [:], additions: Elements = [:]
            if !replace, applied.synced {
                for (id, members) in applied.counts {
                    for member in members.keys where counts[id]?[member] == nil { deletions[id, default: []].insert(member) }
                }
                for (id, members) in counts {
                    for member in members.keys where applied.counts[id]?[member] == nil { additions[id, default: []].insert(member) }
                }
            }
            let wasSynced = applied.synced
            applied.parts = parts
            applied.counts = counts
            guard !replace, wasSynced else { return try replaceTable(&applied) }
            return try apply(deleting: deletions, adding: additions, to: &applied)
        }
    }

    /// Replaces the parts named in `parts` (an empty state forgets its part) and brings the table to
    /// the union of all parts in one transaction, looking only at the elements of those parts.
    @discardableResult
    public func update(_ parts: [String: PacketFilterState]) throws(PacketFilterError) -> PacketFilterSync {
        try state.withLock { (applied) throws(PacketFilterError) -> PacketFilterSync in
            // How many more (or fewer) parts hold each element the given parts touch.
            var delta: [PacketFilterRuleset.SetID: [String: Int]] = [:]
            for (name, part) in parts {
                let old = applied.parts[name].map { ruleset.elements(of: $0) } ?? [:], new = ruleset.elements(of: part)
                for id in Set(old.keys).union(new.keys) {
                    let before = old[id] ?? [], after = new[id] ?? []
                    for member in before.subtracting(after) { delta[id, default: [:]][member, default: 0] -= 1 }
                    for member in after.subtracting(before) { delta[id, default: [:]][member, default: 0] += 1 }
                }
                applied.parts[name] = part == PacketFilterState() ? nil : part
            }
            var deletions: Elements = [:], additions: Elements = [:]
            for (id, changes) in delta {
                for (member, change) in changes where change != 0 {
                    let before = applied.counts[id]?[member] ?? 0, after = before + change
                    if before > 0, after == 0 { deletions[id, default: []].insert(member) }
                    if before == 0, after > 0 { additions[id, default: []].insert(member) }
                    applied.counts[id, default: [:]][member] = after == 0 ? nil : after
                }
            }
            guard applied.synced else { return try replaceTable(&applied) }
            return try apply(deleting: deletions, adding: additions, to: &applied)
        }
    }

    /// Writes the whole table again from the parts last given (the drift repair of a sync period).
    @discardableResult
    public func repair() throws(PacketFilterError) -> PacketFilterSync {
        try state.withLock { (applied) throws(PacketFilterError) -> PacketFilterSync in try replaceTable(&applied) }
    }

    /// Deletes `deletions` and adds `additions` (the changes that bring a synced table to
    /// `applied.counts`), or writes the whole table when nftables refuses them: the table no longer
    /// holds what was last applied.
    private func apply(deleting deletions: Elements, adding additions: Elements, to applied: inout Applied) throws(PacketFilterError) -> PacketFilterSync {
        guard let commands = ruleset.update(deleting: deletions, adding: additions) else { return .unchanged }
        do throws(PacketFilterError) {
            _ = try applied.context.run(commands, operation: "update the sets of table inet \(table)")
            applied.statistics.updates += 1
            return .updated(changedElements: deletions.values.reduce(0) { $0 + $1.count } + additions.values.reduce(0) { $0 + $1.count })
        } catch {
            applied.statistics.failures += 1
            return try replaceTable(&applied)
        }
    }

    /// Writes the whole table with `applied.counts`' elements.
    private func replaceTable(_ applied: inout Applied) throws(PacketFilterError) -> PacketFilterSync {
        applied.synced = false
        do throws(PacketFilterError) {
            _ = try applied.context.run(ruleset.replace(with: applied.counts.mapValues(\.keys)), operation: "write table inet \(table)")
        } catch {
            applied.statistics.failures += 1
            throw error
        }
        applied.synced = true
        applied.statistics.replacements += 1
        return .replaced
    }

    /// Deletes the table if it exists (`ipvs-agent --cleanup`); other tables are left alone.
    public func delete() throws(PacketFilterError) {
        try state.withLock { (applied) throws(PacketFilterError) in
            applied.synced = false
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

    /// Whether the table holds the last synced state (false before the first sync and after a
    /// refused one).
    public var isSynced: Bool { state.withLock { $0.synced } }

    /// The elements of the last synced state per set (`vips-v4`), sets without elements left out.
    public var elementCounts: [String: Int] {
        state.withLock { applied in
            var counts: [String: Int] = [:]
            for (id, members) in applied.counts where !members.isEmpty { counts[id.name] = members.count }
            return counts
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
