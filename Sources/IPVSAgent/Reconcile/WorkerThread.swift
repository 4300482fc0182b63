import Foundation

/// A thread of its own that works through queued items in batches while its caller goes on:
/// whatever was queued while the last batch ran goes in the next one. `results()` closes the
/// queue, waits until every item handed over was worked on, and returns each batch's outcome.
///
/// A thread, not a task nor a Dispatch queue: the work blocks in netlink system calls for as long
/// as the kernel takes (binding VIPs, adding virtual services), and must neither hold a thread of
/// Swift's cooperative pool nor wait for a free one. Used by `AddressBinding` and `EarlyProgramming`.
final class WorkerThread<Item: Sendable, Outcome: Sendable>: @unchecked Sendable {
    /// Guards every stored property below and wakes the thread.
    private let condition = NSCondition()
    private var waiting: [Item] = []
    private var closed = false
    private var finished = false
    private var outcomes: [Outcome] = []

    /// Starts the thread named `name`; `work` runs on it, once per batch.
    init(name: String, work: @escaping @Sendable (_ batch: [Item]) -> Outcome) {
        let thread = Thread { [self] in run(work) }
        thread.name = name
        thread.start()
    }

    /// Queues what `body` appends, under the queue's lock, so that the caller's bookkeeping of what
    /// it handed over stays in step with the queue. Returns `false` (and queues nothing) once
    /// `results()` was called.
    @discardableResult
    func add(_ body: (_ queue: inout [Item]) -> Void) -> Bool {
        condition.withLock {
            guard !closed else { return false }
            let before = waiting.count
            body(&waiting)
            if waiting.count > before { condition.signal() }
            return true
        }
    }

    /// Runs `body` under the queue's lock (for the caller's bookkeeping of what it handed over).
    func withLock<T>(_ body: () -> T) -> T {
        condition.withLock(body)
    }

    /// Takes no more items, waits until every queued one was worked on, and returns one outcome per
    /// batch, in order.
    func results() -> [Outcome] {
        condition.withLock {
            closed = true
            condition.broadcast()
            while !finished { condition.wait() }
            return outcomes
        }
    }

    private func run(_ work: @Sendable ([Item]) -> Outcome) {
        while true {
            let batch: [Item] = condition.withLock {
                while waiting.isEmpty && !closed { condition.wait() }
                defer { waiting = [] }
                return waiting
            }
            if batch.isEmpty { break } // closed, and nothing left
            let outcome = work(batch)
            condition.withLock { outcomes.append(outcome) }
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }
}
