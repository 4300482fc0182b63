import Foundation
import IPVS

/// Programs IPVS on a thread of its own (`WorkerThread`) while the manifests of a first start are
/// still being decoded (`ColdStart`): each decoded file's Services are mapped at once,
/// on the thread that decoded the file, and the virtual services they map to that the kernel
/// does not hold yet are added with their real servers. The first reconcile then takes over what
/// it did (`results()`, handed over by `ColdStart`): it records what was added in its model of the kernel and applies the
/// difference to the whole desired state as usual, which also undoes whatever a later file
/// changed (a Service object replaced, endpoints in another file, a port another Service wins).
///
/// On a cold start, decoding the YAML takes about as long as programming the kernel; doing both at
/// once (on more than one core) shortens the start by the shorter of the two.
///
/// Only additions, never an edit or a removal: a virtual service in the kernel when the agent
/// started (from an earlier run, or someone else's) is left to the reconcile, so a restart
/// changes nothing here, and nothing is taken away before the whole desired state is known; so is
/// one the state file records for another Service than the one claiming it now.
/// The mappings made here are also handed to the `DesiredStateBuilder` (`mappings()`), so the
/// Services whose objects are all in one file are not mapped twice.
final class EarlyProgramming: @unchecked Sendable {
    /// What the programming did: the virtual services it added whole (with every real server),
    /// as the kernel now holds them, and the outcome of each operation of the others (one of
    /// their operations failed).
    struct Outcome: Sendable {
        var added: [ServiceKey: KernelState.Entry] = [:]
        var others: [(operation: IPVSOperation, result: IPVSOperationResult)] = []

        /// The operations the kernel refused.
        var failed: Int { others.filter { (try? $0.result.get()) == nil }.count }
        /// The operations the kernel accepted.
        var applied: Int { added.values.reduce(0) { $0 + 1 + $1.realServers.count } + others.count - failed }
    }

    /// One virtual service to add, with its real servers.
    private struct Addition: Sendable {
        var origin: ObjectName
        var service: VirtualService
        var realServers: [RealServerID: RealServer]

        var operations: [IPVSOperation] {
            [.addService(service)] + realServers.keys.sorted().map { .addRealServer(realServers[$0]!, service: service.key) }
        }
    }

    private let options: MappingOptions
    private let worker: WorkerThread<Addition, Outcome>
    // Guarded by the worker's lock:
    /// Virtual services in the kernel when the programming started, and those queued since.
    private var claimed: Set<ServiceKey>
    /// The Service the state file records as the owner of each virtual service: another Service
    /// claiming one is left to the reconcile, which gives it to the owner (`ClaimPrecedence`).
    private let owners: [ServiceKey: ObjectName]
    /// Each Service as one file maps it: the builder reuses the mapping when the whole load has
    /// the same objects for the Service.
    private var mapped: [ObjectName: DesiredStateBuilder.Entry] = [:]

    /// Starts the programming thread over `ipvs`, which it owns (one IPVS socket per task).
    /// Virtual services in `present` (in the kernel already) are never touched, nor those `owners`
    /// records for another Service than the one claiming them. With a `store`, each batch's virtual
    /// services are claimed there before they are added (`OwnershipStore.claim`), and a batch that
    /// cannot be claimed is not applied: each of its operations fails with that error, and the
    /// reconcile tries them again.
    init(_ ipvs: sending any IPVSBackend, present: Set<ServiceKey>, owners: [ServiceKey: ObjectName] = [:], options: MappingOptions,
         store: OwnershipStore? = nil) {
        self.options = options
        self.owners = owners
        claimed = present
        let owned = Owned(ipvs: ipvs)
        worker = WorkerThread(name: "program IPVS") { batch in Self.program(batch, owned.ipvs, store) }
    }

    /// The IPVS backend, used by the programming thread alone.
    private struct Owned: @unchecked Sendable { let ipvs: any IPVSBackend }

    /// Maps the Services of one decoded file and queues the additions of the virtual services
    /// they map to that nobody claimed yet (none once `results()` was called). Safe on any
    /// thread, several at once.
    func add(_ objects: [ManifestObject]) {
        var entries: [(name: ObjectName, mapped: DesiredStateBuilder.Entry)] = []
        for (name, objects) in ServiceInputs.grouped(objects) {
            guard let service = objects.service else { continue } // Its Service object is in another file.
            let slices = objects.slicesByName
            entries.append((name, DesiredStateBuilder.Entry(service: service, slices: slices,
                                                            mapping: ServiceMapper.map(service, slices: slices, options: options))))
        }
        entries.sort { $0.name < $1.name }
        worker.add { waiting in
            for (name, entry) in entries {
                mapped[name] = entry
                for key in entry.mapping.services.keys.sorted() where owners[key] ?? name == name && claimed.insert(key).inserted {
                    let desired = entry.mapping.services[key]!
                    waiting.append(Addition(origin: name, service: desired.service, realServers: desired.realServers))
                }
            }
        }
    }

    /// The Services mapped so far (one that several files hold: as one of them maps it).
    func mappings() -> [ObjectName: DesiredStateBuilder.Entry] {
        worker.withLock { mapped }
    }

    /// Takes no more files, waits until every queued operation was applied, and returns what was done.
    func results() -> Outcome {
        var outcome = Outcome()
        for batch in worker.results() {
            outcome.added.merge(batch.added) { first, _ in first }
            outcome.others += batch.others
        }
        return outcome
    }

    /// Applies one batch of additions and says what was done.
    private static func program(_ batch: [Addition], _ ipvs: any IPVSBackend, _ store: OwnershipStore?) -> Outcome {
        let operations = batch.map(\.operations)
        let results: [IPVSOperationResult]
        do {
            try store?.claim(services: batch.map(\.service.key),
                             origins: Dictionary(batch.map { ($0.service.key, $0.origin) }) { first, _ in first }, addresses: [])
            results = ipvs.apply(Array(operations.joined()))
            PausePoint.programmedEarly.reached()
        } catch {
            // Not recorded, so not done: the reconcile tries again (and claims first).
            results = operations.joined().map { .failure(IPVSError(kind: .other, operation: $0.description, detail: "\(error)")) }
        }
        // The model of what was added whole is the desired service itself (its storage
        // shared, not rebuilt operation by operation): cheaper for the reconcile to take over.
        var outcome = Outcome()
        var position = 0
        for (addition, operations) in zip(batch, operations) {
            let outcomes = results[position..<position + operations.count]
            position += operations.count
            if outcomes.allSatisfy({ (try? $0.get()) != nil }) {
                let servers = addition.realServers.values.allSatisfy { $0 == $0.configuration }
                    ? addition.realServers : addition.realServers.mapValues(\.configuration)
                outcome.added[addition.service.key] = KernelState.Entry(service: addition.service.configuration, realServers: servers)
            } else {
                outcome.others += zip(operations, outcomes).map { ($0, $1) }
            }
        }
        return outcome
    }
}
