import Foundation
import NodeNetwork
import Synchronization
import XCTest

/// Collects an `AddressMonitor`'s events as they arrive, each with the time it arrived.
final class AddressEventLog: Sendable {
    private final class Entries: Sendable {
        let list = Mutex<[(time: ContinuousClock.Instant, event: AddressMonitor.Event)]>([])
    }
    private let entries = Entries()
    private let task: Task<Void, Never>

    init(_ monitor: AddressMonitor) {
        let entries = entries
        task = Task {
            for await event in monitor.events { entries.list.withLock { $0.append((ContinuousClock.now, event)) } }
        }
    }

    deinit { task.cancel() }

    /// Every event so far, with its arrival time.
    var timed: [(time: ContinuousClock.Instant, event: AddressMonitor.Event)] { entries.list.withLock { $0 } }

    /// Every event so far.
    var all: [AddressMonitor.Event] { timed.map(\.event) }

    /// How many events arrived so far: a mark for `waitFor(_:after:)`.
    var count: Int { entries.list.withLock { $0.count } }

    /// Waits until every event of `expected` arrived after the first `mark` events.
    func waitFor(_ expected: Set<AddressMonitor.Event>, after mark: Int = 0, file: StaticString = #filePath, line: UInt = #line) throws {
        try waitUntil("events \(expected) (seen: \(all.dropFirst(mark)))", timeout: 10, file: file, line: line) {
            expected.isSubset(of: all.dropFirst(mark))
        }
    }
}
