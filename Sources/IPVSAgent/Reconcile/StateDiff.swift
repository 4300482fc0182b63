import IPVS

/// The changes that take the kernel from its actual state to the desired one.
public struct ReconcilePlan: Hashable, Sendable {
    /// IPVS operations in a safe order: service additions and edits, then real server additions
    /// and edits, then real server deletions, then service deletions.
    public var operations: [IPVSOperation] = []
    /// Desired services found in the kernel that the agent did not own yet: taken over in place.
    public var adopted: Set<ServiceKey> = []
    /// Real servers whose graceful termination starts (set to weight 0 by `operations`).
    public var drainsStarted: [RealServerRef] = []
    /// Real servers that stop draining (they came back, were deleted, or their service went).
    public var drainsEnded: [RealServerRef] = []
    /// VIPs to bind on the dummy interface.
    public var addressesToAdd: [IPAddress] = []
    /// Owned VIPs no service needs any more.
    public var addressesToRemove: [IPAddress] = []

    public var isEmpty: Bool { operations.isEmpty && addressesToAdd.isEmpty && addressesToRemove.isEmpty }
}

/// Computes the minimal set of operations between desired and actual state. Pure: it reads its
/// inputs and returns a plan, so every rule is unit-tested without a kernel.
///
/// A real server no longer desired drains (weight 0, deleted once idle or at its deadline),
/// except in a datagram service or when health checks removed it (`removedByHealth`): then it is
/// deleted at once.
///
/// Ownership: a service in the kernel that is neither desired nor owned is foreign and never
/// touched; a desired service already in the kernel is adopted and edited in place (never flushed).
public enum StateDiff {
    /// The plan for the services `keys` (every desired, owned or actual service when `nil`).
    ///
    /// `held` services are never deleted nor lose real servers (their manifests are invalid, so
    /// what they should be is unknown); they can still gain real servers and be edited.
    public static func plan(desired: DesiredState, actual: KernelState, owned: Set<ServiceKey>, drains: DrainTracker,
                            keys: Set<ServiceKey>? = nil, held: Set<ServiceKey> = [], now: ContinuousClock.Instant) -> ReconcilePlan {
        var plan = ReconcilePlan()
        var addServices: [IPVSOperation] = [], editServices: [IPVSOperation] = []
        var addServers: [IPVSOperation] = [], editServers: [IPVSOperation] = []
        var deleteServers: [IPVSOperation] = [], deleteServices: [IPVSOperation] = []

        let candidates: [ServiceKey]
        if let keys {
            candidates = keys.sorted()
        } else {
            var all = Set(desired.services.keys)
            for key in actual.services.keys where owned.contains(key) { all.insert(key) }
            candidates = all.sorted()
        }

        for key in candidates {
            let wanted = desired.services[key]
            let present = actual.services[key]
            switch (wanted, present) {
            case (nil, nil):
                continue
            case (let wanted?, nil):
                addServices.append(.addService(wanted.service))
                for id in wanted.realServers.keys.sorted() {
                    addServers.append(.addRealServer(wanted.realServers[id]!, service: key))
                }
                for ref in drains.deadlines.keys where ref.service == key { plan.drainsEnded.append(ref) }
            case (nil, _?):
                guard owned.contains(key), !held.contains(key) else { continue } // Foreign, or held.
                deleteServices.append(.deleteService(key))
                for ref in drains.deadlines.keys where ref.service == key { plan.drainsEnded.append(ref) }
            case (let wanted?, let present?):
                if !owned.contains(key) { plan.adopted.insert(key) }
                if !sameConfiguration(wanted.service, present.service) {
                    editServices.append(.updateService(wanted.service))
                }
                for id in wanted.realServers.keys.sorted() {
                    let server = wanted.realServers[id]!
                    let ref = RealServerRef(service: key, server: id)
                    if drains.isDraining(ref) { plan.drainsEnded.append(ref) }
                    if let current = present.realServers[id] {
                        if !sameConfiguration(server, current) { editServers.append(.updateRealServer(server, service: key)) }
                    } else {
                        addServers.append(.addRealServer(server, service: key))
                    }
                }
                for id in present.realServers.keys.sorted() where wanted.realServers[id] == nil && !held.contains(key) {
                    let current = present.realServers[id]!
                    let ref = RealServerRef(service: key, server: id)
                    // Health removals and datagram services do not drain: deleted at once.
                    if wanted.removedByHealth.contains(id) || isDatagram(key) || drains.isDraining(ref) && drains.shouldDelete(ref, connections: current.connections, now: now)
                        || !drains.isDraining(ref) && current.weight == 0 && current.connections.map(isIdle) == true {
                        deleteServers.append(.deleteRealServer(id, service: key))
                        if drains.isDraining(ref) { plan.drainsEnded.append(ref) }
                        continue
                    }
                    if current.weight != 0 {
                        var quiesced = current.configuration
                        quiesced.weight = 0
                        editServers.append(.updateRealServer(quiesced, service: key))
                    }
                    if !drains.isDraining(ref) { plan.drainsStarted.append(ref) }
                }
            }
        }
        plan.operations = addServices + editServices + addServers + editServers + deleteServers + deleteServices
        return plan
    }

    /// The VIP changes: bind desired addresses that are missing; unbind owned ones no longer desired.
    /// Addresses the agent does not own are never removed. With `candidates`, only those
    /// addresses are looked at (the work is proportional to them, not to every address).
    public static func addresses(desired: Set<IPAddress>, actual: Set<IPAddress>, owned: Set<IPAddress>,
                                 among candidates: Set<IPAddress>? = nil) -> (add: [IPAddress], remove: [IPAddress]) {
        guard let candidates else {
            return (desired.subtracting(actual).sorted(), owned.intersection(actual).subtracting(desired).sorted())
        }
        let add = candidates.filter { desired.contains($0) && !actual.contains($0) }
        let remove = candidates.filter { owned.contains($0) && actual.contains($0) && !desired.contains($0) }
        return (add.sorted(), remove.sorted())
    }

    // MARK: - Comparisons

    /// Whether two services are configured alike (statistics and kernel-set flags aside).
    public static func sameConfiguration(_ lhs: VirtualService, _ rhs: VirtualService) -> Bool {
        lhs.key == rhs.key && lhs.scheduler == rhs.scheduler
            && lhs.kernelFlags.intersection(.userSettable) == rhs.kernelFlags.intersection(.userSettable)
            && lhs.persistence?.timeout == rhs.persistence?.timeout
            && (lhs.persistence == nil || lhs.persistencePrefixLength == rhs.persistencePrefixLength)
            && (lhs.persistenceEngine ?? "") == (rhs.persistenceEngine ?? "")
    }

    /// Whether two real servers are configured alike (counters aside).
    public static func sameConfiguration(_ lhs: RealServer, _ rhs: RealServer) -> Bool {
        lhs.configuration == rhs.configuration
    }

    private static func isDatagram(_ key: ServiceKey) -> Bool {
        if case .address(.udp, _, _) = key { return true }
        return false
    }

    private static func isIdle(_ connections: ConnectionCounts) -> Bool {
        connections.active == 0 && connections.inactive == 0
    }
}
