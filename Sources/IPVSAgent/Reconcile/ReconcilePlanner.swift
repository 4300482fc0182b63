import IPVS

extension Reconciler {
    /// Kernel state to keep while manifests are invalid.
    public struct Hold: Hashable, Sendable {
        /// Services whose manifests are invalid: their virtual services are not removed nor reduced.
        public var services: Set<ObjectName>
        /// A manifest could not be read at all: nothing is removed.
        public var everything: Bool

        public init(services: Set<ObjectName> = [], everything: Bool = false) {
            self.services = services
            self.everything = everything
        }
    }
}

/// Plans what the reconciler changes in the kernel: the IPVS difference (`StateDiff`), with what
/// invalid manifests hold and what is draining, and the VIPs to bind and unbind; and, for a
/// verification, which planned operations are repairs of drift rather than the agent's own
/// removals going on. Pure: it reads the reconciler's models (copies sharing their storage).
struct ReconcilePlanner {
    let desired: DesiredState
    let kernel: KernelState
    let ownership: Ownership
    let drains: DrainTracker
    let hold: Reconciler.Hold
    /// The VIPs on the dummy interface; `nil` when the agent leaves addresses alone.
    let boundAddresses: Set<IPAddress>?

    /// The plan for the services `keys` (all when `nil`).
    func plan(keys: Set<ServiceKey>?, now: ContinuousClock.Instant) -> ReconcilePlan {
        let held = heldKeys
        var plan = StateDiff.plan(desired: desired, actual: kernel, owned: ownership.services, drains: drains, keys: keys,
                                  held: held, now: now)
        if let boundAddresses {
            // A change can only move the VIPs of the services it touches.
            let addresses = StateDiff.addresses(desired: desired.addresses, actual: boundAddresses, owned: ownership.addresses,
                                                among: keys.map { Self.addresses(of: $0) })
            plan.addressesToAdd = addresses.add
            let heldAddresses = Set(held.compactMap { key -> IPAddress? in
                if case .address(_, let address, _) = key { return address }
                return nil
            })
            plan.addressesToRemove = hold.everything ? [] : addresses.remove.filter { !heldAddresses.contains($0) }
        }
        return plan
    }

    /// The owned services that invalid manifests hold.
    var heldKeys: Set<ServiceKey> {
        if hold.everything { return ownership.services }
        guard !hold.services.isEmpty else { return [] }
        return ownership.services.filter { ownership.origins[$0].map(hold.services.contains) == true }
    }

    /// The VIPs of `keys` (the addresses of address-based services).
    static func addresses(of keys: some Sequence<ServiceKey>) -> Set<IPAddress> {
        var addresses: Set<IPAddress> = []
        for key in keys {
            if case .address(_, let address, _) = key { addresses.insert(address) }
        }
        return addresses
    }

    // MARK: - Verification

    /// The operations of `plan` (made after the kernel was read again) that repair drift: a drain
    /// step is the agent's own removal going on, except for a real server it never had: someone
    /// added that one to a service the agent owns (`ipvsadm -a`), and taking it out (drained like
    /// a removed endpoint) is a repair. `believed` is the model before the kernel was read again.
    func repairs(in plan: ReconcilePlan, believed: KernelState) -> [IPVSOperation] {
        plan.operations.filter { !isDrainStep($0) || isForeign($0, believed: believed) }
    }

    /// Whether `operation` changes a real server that the agent's model did not hold.
    private func isForeign(_ operation: IPVSOperation, believed: KernelState) -> Bool {
        switch operation {
        case .deleteRealServer(let id, let key): believed.services[key]?.realServers[id] == nil
        case .updateRealServer(let server, let key): believed.services[key]?.realServers[server.id] == nil
        default: false
        }
    }

    private func isDrainStep(_ operation: IPVSOperation) -> Bool {
        switch operation {
        case .deleteRealServer(let id, let key):
            return drains.isDraining(RealServerRef(service: key, server: id)) || desired.services[key] != nil
        case .updateRealServer(let server, let key):
            return server.weight == 0 && desired.services[key]?.realServers[server.id] == nil
        default:
            return false
        }
    }
}
