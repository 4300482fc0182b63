import Foundation
import IPVS

/// Binds VIPs on a thread of its own while the caller goes on, taking addresses as they become
/// known: the reconciler programs IPVS meanwhile, and on a cold start the manifests are still
/// being decoded when the first addresses arrive (`Reconciler.bindEarly()`). `results()` closes
/// the queue and waits until every address handed over was tried.
///
/// Binding is the long pole of a cold start: the kernel binds one address at a time under its
/// RTNL lock, and each costs more the more the interface holds (about 2 ms each at 10,000 in the
/// emulated VM), so starting it seconds earlier shortens the whole start by as much.
final class AddressBinding: @unchecked Sendable {
    /// Guards every stored property below and wakes the binding thread.
    private let condition = NSCondition()
    private var waiting: [IPAddress] = []
    /// Every address handed over (bound, being bound or waiting), and those that were there before.
    private var known: Set<IPAddress>
    private var closed = false
    private var finished = false
    private var outcomes: [(address: IPAddress, result: Result<Void, any Error>)] = []

    /// Starts the binding thread. Addresses in `present` (already on the interface) are never bound.
    /// With a `store`, each batch is claimed there before it is bound (`OwnershipStore.claim`), and
    /// a batch that cannot be claimed is not bound: each of its addresses fails with that error.
    init(_ vips: any VIPBackend, _ interface: String, present: Set<IPAddress> = [], store: OwnershipStore? = nil) {
        known = present
        // A thread of its own, not a task nor a Dispatch queue: `add` blocks in netlink system calls
        // for as long as the kernel takes (seconds for thousands of addresses), and must neither
        // hold a thread of Swift's cooperative pool nor wait for a free one.
        let thread = Thread { [self] in run(vips, interface, store) }
        thread.name = "bind VIPs"
        thread.start()
    }

    /// Queues `addresses` for binding; those already handed over or present are left out.
    func add(_ addresses: some Sequence<IPAddress>) {
        condition.withLock {
            precondition(!closed, "AddressBinding.add after results()")
            let before = waiting.count
            for address in addresses where known.insert(address).inserted { waiting.append(address) }
            if waiting.count > before { condition.signal() }
        }
    }

    /// Whether `address` was handed over (or was present when the binding started).
    func covers(_ address: IPAddress) -> Bool {
        condition.withLock { known.contains(address) }
    }

    /// Takes no more addresses, waits until every queued one was tried, and returns one result per
    /// address handed over, in the order they were bound.
    func results() -> [(address: IPAddress, result: Result<Void, any Error>)] {
        condition.withLock {
            closed = true
            condition.broadcast()
            while !finished { condition.wait() }
            return outcomes
        }
    }

    private func run(_ vips: any VIPBackend, _ interface: String, _ store: OwnershipStore?) {
        while true {
            // Whatever queued while the last batch was bound goes in one batch (one netlink send).
            let batch: [IPAddress] = condition.withLock {
                while waiting.isEmpty && !closed { condition.wait() }
                defer { waiting = [] }
                return waiting
            }
            if batch.isEmpty { break } // closed, and nothing left
            let results: [Result<Void, any Error>]
            if let store {
                do {
                    try store.claim(services: [], addresses: batch)
                    PausePoint.bindingClaimed.reached()
                    results = vips.add(batch, to: interface)
                    PausePoint.boundEarly.reached()
                } catch {
                    results = batch.map { _ in .failure(error) }
                }
            } else {
                results = vips.add(batch, to: interface)
            }
            condition.withLock { outcomes += zip(batch, results).map { ($0, $1) } }
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    /// Binds `addresses` on the caller's thread: for a few addresses, where a thread would cost
    /// more than it saves.
    static func bindNow(_ vips: any VIPBackend, _ addresses: [IPAddress], _ interface: String) -> [(address: IPAddress, result: Result<Void, any Error>)] {
        Array(zip(addresses, vips.add(addresses, to: interface)).map { ($0, $1) })
    }
}
