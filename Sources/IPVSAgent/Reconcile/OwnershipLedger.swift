import IPVS
import Logging

/// What the agent owns in the kernel, kept in step with the operations it applies, and recorded in
/// the state file (`OwnershipStore`): claims before the kernel changes, a save after. Only what
/// the agent created (or adopted) is ever changed or removed by it.
struct OwnershipLedger {
    /// Where ownership is recorded; `nil` keeps it in memory (dry runs, tests).
    let store: OwnershipStore?
    /// What the agent owns now.
    private(set) var ownership = Ownership()
    /// Whether ownership changed since it was last saved.
    private var changed = false
    /// Claims whose outcome `ownership` holds now (services and addresses): the next save settles them.
    private var settled = Ownership()

    init(store: OwnershipStore?) {
        self.store = store
    }

    /// Reads the state file.
    mutating func load() throws {
        ownership = try store?.load() ?? Ownership()
    }

    /// Whether a save has something to record.
    var needsSave: Bool { changed || !settled.services.isEmpty || !settled.addresses.isEmpty }

    // MARK: - Changes

    /// Records that the agent created the dummy interface `name` (`--cleanup` deletes it).
    mutating func ownInterface(_ name: String) {
        guard ownership.interface != name else { return }
        ownership.interface = name
        changed = true
    }

    /// Owns the virtual service `key`, which came from `origin`.
    mutating func own(_ key: ServiceKey, origin: ObjectName?) {
        if ownership.services.insert(key).inserted { changed = true }
        if ownership.origins[key] != origin {
            ownership.origins[key] = origin
            changed = true
        }
    }

    /// Owns a virtual service found in the kernel and taken over in place.
    mutating func adopt(_ key: ServiceKey, origin: ObjectName?) {
        ownership.services.insert(key)
        ownership.origins[key] = origin
        changed = true
    }

    /// Forgets the virtual service `key` (deleted).
    mutating func disown(_ key: ServiceKey) {
        if ownership.services.remove(key) != nil { changed = true }
        if ownership.origins.removeValue(forKey: key) != nil { changed = true }
    }

    /// Owns the VIP `address` (bound by the agent).
    mutating func own(_ address: IPAddress) {
        if ownership.addresses.insert(address).inserted { changed = true }
    }

    /// Forgets the VIP `address` (unbound).
    mutating func disown(_ address: IPAddress) {
        if ownership.addresses.remove(address) != nil { changed = true }
    }

    /// Forgets everything (after `--cleanup` removed it).
    mutating func disownAll() {
        ownership = Ownership()
        changed = true
    }

    // MARK: - Claims

    /// Owns what an interrupted run claimed and the kernel holds (created after the claim, see
    /// `OwnershipStore`: `inKernel` says which virtual services the kernel holds, `bound` which
    /// VIPs are bound) and forgets the rest; the next save settles every claim read.
    mutating func adoptClaims(inKernel: (ServiceKey) -> Bool, bound: Set<IPAddress>, logger: Logger) {
        guard !ownership.claimedServices.isEmpty || !ownership.claimedAddresses.isEmpty else { return }
        let services = ownership.claimedServices.filter(inKernel)
        let addresses = ownership.claimedAddresses.intersection(bound)
        for key in ownership.claimedServices where !services.contains(key) && !ownership.services.contains(key) {
            ownership.origins[key] = nil
        }
        ownership.services.formUnion(services)
        ownership.addresses.formUnion(addresses)
        settled.services.formUnion(ownership.claimedServices)
        settled.addresses.formUnion(ownership.claimedAddresses)
        logger.notice("owning what an interrupted run created", metadata: [
            "services": "\(services.count)", "addresses": "\(addresses.count)",
            "claimed_services": "\(ownership.claimedServices.count)", "claimed_addresses": "\(ownership.claimedAddresses.count)"])
        ownership.claimedServices = []
        ownership.claimedAddresses = []
        changed = true
    }

    /// Records in the state file that the agent is about to add `services` (from `origins`) and
    /// bind `addresses` (`OwnershipStore.claim`); the next save settles the services' claims.
    mutating func claim(services: [ServiceKey], origins: [ServiceKey: ObjectName], addresses: [IPAddress]) throws {
        guard let store else { return }
        try store.claim(services: services, origins: origins, addresses: addresses)
        settled.services.formUnion(services)
    }

    /// The next save settles the claim of the virtual service `key` (claimed by a cold start).
    mutating func settle(_ key: ServiceKey) {
        settled.services.insert(key)
    }

    /// The next save settles the claim of `address` (claimed by whoever bound it).
    mutating func settle(_ address: IPAddress) {
        settled.addresses.insert(address)
    }

    /// Writes ownership to the state file, settling the claims whose outcome it holds; a failure
    /// is logged and counted.
    mutating func save(logger: Logger, metrics: AgentMetrics) {
        changed = false
        let settling = settled
        settled = Ownership()
        guard let store else { return }
        do {
            try store.save(ownership, settling: settling)
        } catch {
            metrics.errors.increment()
            logger.error("cannot record ownership", metadata: ["error": "\(error)"])
        }
    }
}
