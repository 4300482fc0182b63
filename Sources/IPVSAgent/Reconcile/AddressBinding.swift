import Foundation
import IPVS

/// Binds VIPs on a thread of its own (`WorkerThread`) while the caller goes on, taking addresses as
/// they become known: the reconciler programs IPVS meanwhile, and on a cold start the manifests are
/// still being decoded when the first addresses arrive (`ColdStart`). `results()` closes the queue
/// and waits until every address handed over was tried.
///
/// Binding is the long pole of a cold start: the kernel binds one address at a time under its RTNL
/// lock, and each costs more the more the interface holds, so starting it earlier shortens the
/// whole start by as much.
final class AddressBinding: @unchecked Sendable {
    typealias Outcome = [(address: IPAddress, result: Result<Void, any Error>)]

    private let worker: WorkerThread<IPAddress, Outcome>
    /// Every address handed over (bound, being bound or waiting), and those that were there before;
    /// guarded by the worker's lock.
    private var known: Set<IPAddress>

    /// Starts the binding thread. Addresses in `present` (already on the interface) are never bound.
    /// With a `store`, each batch is claimed there before it is bound (`OwnershipStore.claim`), and
    /// a batch that cannot be claimed is not bound: each of its addresses fails with that error.
    init(_ vips: any VIPBackend, _ interface: String, present: Set<IPAddress> = [], store: OwnershipStore? = nil) {
        known = present
        worker = WorkerThread(name: "bind VIPs") { batch in
            guard let store else { return Self.bindNow(vips, batch, interface) }
            do {
                try store.claim(services: [], addresses: batch)
                PausePoint.bindingClaimed.reached()
                let results = Self.bindNow(vips, batch, interface)
                PausePoint.boundEarly.reached()
                return results
            } catch {
                return batch.map { ($0, .failure(error)) }
            }
        }
    }

    /// Queues `addresses` for binding; those already handed over or present are left out, and all
    /// of them once `results()` was called (the reconcile binds what is still missing).
    func add(_ addresses: some Sequence<IPAddress>) {
        worker.add { queue in
            for address in addresses where known.insert(address).inserted { queue.append(address) }
        }
    }

    /// Whether `address` was handed over (or was present when the binding started).
    func covers(_ address: IPAddress) -> Bool {
        worker.withLock { known.contains(address) }
    }

    /// Takes no more addresses, waits until every queued one was tried, and returns one result per
    /// address handed over, in the order they were bound.
    func results() -> Outcome {
        Array(worker.results().joined())
    }

    /// Binds `addresses` on the caller's thread: for a few addresses, where a thread would cost
    /// more than it saves.
    static func bindNow(_ vips: any VIPBackend, _ addresses: [IPAddress], _ interface: String) -> Outcome {
        Array(zip(addresses, vips.add(addresses, to: interface)).map { ($0, $1) })
    }
}
