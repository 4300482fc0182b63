import Foundation
import IPVS
import Logging

/// What one reconcile pass did.
public struct ReconcileReport: Sendable {
    /// Kernel operations and address changes applied successfully.
    public var applied = 0
    /// One sentence per failed operation.
    public var failures: [String] = []
    /// Differences between the model and the kernel found (and repaired) by a verification.
    public var repairs = 0

    public var succeeded: Bool { failures.isEmpty }
}

/// Owns the kernel: the only place that talks to IPVS and the dummy interface. Keeps a model of
/// what the kernel holds, applies the minimal difference to the desired state, records what it
/// owns, drains removed endpoints and repairs drift.
public actor Reconciler {
    /// Settings of the reconciler.
    public struct Options: Sendable {
        /// The dummy interface holding the VIPs (`--interface`).
        public var interface: String
        /// How long removed endpoints may keep connections (`--drain-timeout`).
        public var drainTimeout: Duration

        public init(interface: String = "kube-ipvs0", drainTimeout: Duration = .seconds(60)) {
            self.interface = interface
            self.drainTimeout = drainTimeout
        }
    }

    private let ipvs: any IPVSBackend
    private let vips: (any VIPBackend)?
    private let store: OwnershipStore?
    private let options: Options
    private let logger: Logger
    private let metrics: AgentMetrics
    private let now: @Sendable () -> ContinuousClock.Instant

    private var kernel = KernelState()
    private var boundAddresses: Set<IPAddress> = []
    private var ownership = Ownership()
    private var drains: DrainTracker
    private var health = HealthOverlay()
    /// The mapped state with the health overlay applied, kept up to date by changes (its storage
    /// is this actor's own, so a change to one service never copies the others).
    private var desired = DesiredState()
    /// The mapped services that the health overlay changed in `desired`, as mapped.
    private var unadjusted: [ServiceKey: DesiredService] = [:]
    /// The real servers of owned services in the kernel (a gauge), kept up to date per operation.
    private var programmedRealServers = 0
    /// Whether ownership changed since it was last saved.
    private var ownershipChanged = false
    /// Claims whose outcome `ownership` holds now (services and addresses): the next save settles them.
    private var settled = Ownership()
    private var needsVerification = false
    private var hold = Hold()
    /// Whether a reconcile ran: until then the desired state is not known (see `verify()`).
    private var reconciled = false

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

    /// - Parameters:
    ///   - ipvs: the kernel's IPVS; used from this actor only.
    ///   - vips: the dummy interface, or `nil` to leave addresses alone.
    ///   - store: where ownership is recorded, or `nil` to keep it in memory (dry runs, tests).
    public init(ipvs: sending any IPVSBackend, vips: sending (any VIPBackend)?, store: OwnershipStore?, options: Options,
                logger: Logger, metrics: AgentMetrics = AgentMetrics(),
                now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.ipvs = ipvs
        self.vips = vips
        self.store = store
        self.options = options
        self.logger = logger
        self.metrics = metrics
        self.now = now
        self.drains = DrainTracker(timeout: options.drainTimeout)
    }

    // MARK: - Start

    /// Reads ownership and the kernel's state, and creates the dummy interface when missing.
    /// Nothing in the kernel is changed or flushed: what is there is adopted by the next reconcile.
    public func start(createInterface: Bool = true) throws {
        ownership = try store?.load() ?? Ownership()
        if let vips, createInterface, try vips.ensureInterface(named: options.interface) {
            logger.info("created dummy interface", metadata: ["interface": "\(options.interface)"])
            ownership.interface = options.interface
            save()
        }
        try readKernel()
        adoptClaims()
        logger.info("read kernel state", metadata: [
            "services": "\(kernel.services.count)", "real_servers": "\(kernel.realServerCount)",
            "owned_services": "\(ownership.services.count)", "owned_addresses": "\(ownership.addresses.count)",
        ])
    }

    /// The Service each owned virtual service came from, as the state file recorded it: on a first
    /// start, these keep their addresses and ports against Services that claim them too
    /// (`DesiredStateBuilder.seed(owners:)`).
    public var owners: [ServiceKey: ObjectName] { ownership.origins }

    /// Owns what an interrupted run claimed and the kernel holds (created after the claim, see
    /// `OwnershipStore`) and forgets the rest; the next save settles every claim read.
    private func adoptClaims() {
        guard !ownership.claimedServices.isEmpty || !ownership.claimedAddresses.isEmpty else { return }
        let services = ownership.claimedServices.filter { kernel.services[$0] != nil }
        let addresses = ownership.claimedAddresses.intersection(boundAddresses)
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
        ownershipChanged = true
        countProgrammedRealServers()
    }

    private func readKernel() throws {
        kernel = KernelState(table: try ipvs.table())
        if let vips {
            boundAddresses = (try? vips.addresses(on: options.interface)) ?? []
        }
        countProgrammedRealServers()
    }

    /// Counts the real servers of owned services in the model again (the gauge), after it was read
    /// or took in what a cold start did.
    private func countProgrammedRealServers() {
        programmedRealServers = ownership.services.reduce(0) { $0 + programmedRealServers(of: $1) }
    }

    private func programmedRealServers(of key: ServiceKey) -> Int {
        ownership.services.contains(key) ? kernel.services[key]?.realServers.count ?? 0 : 0
    }

    /// What a cold start must respect (`ColdStart`): the virtual services and VIPs in the kernel,
    /// the state file's owners, the interface and the store. `nil` once a reconcile ran: only the
    /// first load of a start programs the kernel as it decodes.
    func coldStartBasis() -> ColdStart.Basis? {
        guard !reconciled else { return nil }
        return ColdStart.Basis(services: Set(kernel.services.keys), owners: ownership.origins,
                               interface: vips == nil ? nil : options.interface, addresses: boundAddresses, store: store)
    }

    /// Records what a cold start did in the model of the kernel and as owned (it is the agent's),
    /// and returns how many operations and addresses it applied. Failures are left to the reconcile
    /// that follows: what failed is still missing from the model, so the reconcile tries it again
    /// and reports it. An address bound for a Service object that the desired state does not use
    /// after all (a later file replaced it) is owned, so the reconcile removes it.
    private func takeOver(_ result: ColdStart.Result) -> Int {
        let start = ContinuousClock.now
        let outcome = result.programmed
        kernel.services.reserveCapacity(kernel.services.count + outcome.added.count)
        for (key, entry) in outcome.added {
            kernel.services[key] = entry
            track(.addService(entry.service))
            settled.services.insert(key)
        }
        for (operation, result) in outcome.others {
            if case .addService(let service) = operation { settled.services.insert(service.key) }
            switch result {
            case .success:
                kernel.record(operation)
                track(operation)
            case .failure(let error):
                logger.debug("kernel operation applied early failed; the reconcile tries it again",
                             metadata: ["operation": "\(operation)", "error": "\(error)"])
            }
        }
        countProgrammedRealServers()
        var bound = 0
        for (address, outcome) in result.bound {
            settled.addresses.insert(address)
            switch outcome {
            case .success:
                boundAddresses.insert(address)
                if ownership.addresses.insert(address).inserted { ownershipChanged = true }
                bound += 1
            case .failure(let error):
                logger.debug("address bound early failed; the reconcile tries it again when a Service uses it",
                             metadata: ["address": "\(address)", "error": "\(error)"])
            }
        }
        logger.info("programmed while the manifests loaded", metadata: [
            "operations": "\(outcome.applied)", "addresses": "\(bound)",
            "failures_left_to_the_reconcile": "\(outcome.failed + result.bound.count - bound)",
            "milliseconds": "\(Self.milliseconds(ContinuousClock.now - start))"])
        return outcome.applied + bound
    }

    // MARK: - Reconcile

    /// Makes the kernel match `state`, touching only the services in `changed` (all when `nil`).
    /// `changed` must hold every service whose desired configuration may differ from the state of
    /// the previous call: only those services (and their VIPs) are read from `state`, so the
    /// work is proportional to the change, not to the number of services.
    /// `hold` keeps kernel state that invalid manifests would otherwise remove.
    @discardableResult
    public func reconcile(_ state: DesiredState, changed: Set<ServiceKey>? = nil, hold: Hold = Hold()) -> ReconcileReport {
        reconcile(state, changed: changed, hold: hold, coldStart: nil)
    }

    /// `reconcile(_:changed:hold:)` of a load whose cold start did `coldStart` (`ColdStart.finish()`):
    /// what it did is taken over before the plan is made.
    @discardableResult
    func reconcile(_ state: DesiredState, changed: Set<ServiceKey>?, hold: Hold, coldStart: ColdStart.Result?) -> ReconcileReport {
        if let changed {
            for key in changed { setMapped(key, state.services[key]) }
            for address in Self.addresses(of: changed) {
                if state.addresses.contains(address) { desired.addresses.insert(address) } else { desired.addresses.remove(address) }
            }
        } else {
            setMapped(state)
        }
        let released = hold != self.hold
        if hold.everything || !hold.services.isEmpty {
            logger.warning("keeping kernel state of invalid manifests", metadata: [
                "services": "\(hold.everything ? "all" : hold.services.sorted().map(\.description).joined(separator: ", "))"])
        }
        self.hold = hold
        reconciled = true
        var appliedEarly = 0
        if let coldStart { appliedEarly = takeOver(coldStart) }
        var report = apply(plan(keys: released ? nil : changed), appliedEarly: appliedEarly)
        report.applied += appliedEarly
        return report
    }

    /// Replaces the whole desired state (`state` as mapped, before health adjustments).
    private func setMapped(_ state: DesiredState) {
        desired = state
        // Storage of this actor's own now (reserving capacity copies shared storage), so the
        // first change after a full reconcile does not pay for copying every service, and the
        // caller's copy is not copied either when it changes next.
        desired.services.reserveCapacity(state.services.count)
        desired.addresses.reserveCapacity(state.addresses.count)
        unadjusted = [:]
        guard !health.isEmpty else { return }
        for (key, service) in state.services {
            guard let adjusted = health.adjusted(service, key: key) else { continue }
            desired.services[key] = adjusted
            unadjusted[key] = service
        }
    }

    /// Sets the desired service of `key` from its mapped version (`nil`: not desired).
    private func setMapped(_ key: ServiceKey, _ service: DesiredService?) {
        if let service, let adjusted = health.adjusted(service, key: key) {
            desired.services[key] = adjusted
            unadjusted[key] = service
        } else {
            desired.services[key] = service
            if !unadjusted.isEmpty { unadjusted[key] = nil }
        }
    }

    /// The VIPs of `keys` (the addresses of address-based services).
    static func addresses(of keys: some Sequence<ServiceKey>) -> Set<IPAddress> {
        var addresses: Set<IPAddress> = []
        for key in keys {
            if case .address(_, let address, _) = key { addresses.insert(address) }
        }
        return addresses
    }

    private var heldKeys: Set<ServiceKey> {
        if hold.everything { return ownership.services }
        guard !hold.services.isEmpty else { return [] }
        return ownership.services.filter { ownership.origins[$0].map(hold.services.contains) == true }
    }

    /// Replaces the health overlay and applies its effect on the desired weights of the services
    /// whose adjustments or quorum override changed (and of no other).
    @discardableResult
    public func setHealth(_ overlay: HealthOverlay) -> ReconcileReport {
        guard overlay != health else { return ReconcileReport() }
        // Adjustments are per virtual service, so the changed ones name the services to touch.
        let keys = overlay.changedServices(comparedTo: health).filter { desired.services[$0] != nil }
        health = overlay
        for key in keys { setMapped(key, unadjusted[key] ?? desired.services[key]) }
        return apply(plan(keys: keys))
    }

    /// The plan for `state` without applying it (for `--dry-run`).
    public func dryRun(_ state: DesiredState, hold: Hold = Hold()) -> ReconcilePlan {
        setMapped(state)
        self.hold = hold
        return plan(keys: nil)
    }

    /// The plan for the services `keys` (all when `nil`).
    private func plan(keys: Set<ServiceKey>?) -> ReconcilePlan {
        let held = heldKeys
        var plan = StateDiff.plan(desired: desired, actual: kernel, owned: ownership.services, drains: drains, keys: keys,
                                  held: held, now: now())
        if vips != nil {
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

    // MARK: - Verification and drains

    /// Re-reads the kernel and repairs every difference from the desired state, logging each repair.
    /// A dummy interface that was deleted (`ip link del kube-ipvs0`, which takes its VIPs along)
    /// is created again and its VIPs bound again, each a repair.
    /// Before the first reconcile there is nothing to verify against: the desired state is not
    /// known yet (a first load of many manifests can outlast `--sync-period`), and comparing the
    /// kernel with an empty one would remove every service an earlier run programmed.
    @discardableResult
    public func verify() -> ReconcileReport {
        guard reconciled else { return ReconcileReport() }
        var repairs = 0
        if let vips {
            do {
                repairs += try repairInterface(vips)
            } catch {
                return ReconcileReport(failures: [error.description])
            }
        }
        // What the agent believes is there: every operation it applied was recorded in it.
        let believed = kernel
        do {
            try readKernel()
        } catch {
            metrics.errors.increment()
            return ReconcileReport(failures: ["cannot read the kernel's state to verify it: \(error)"])
        }
        needsVerification = false
        let plan = plan(keys: nil)
        // A drain step is the agent's own removal going on, except for a real server it never had:
        // someone added that one to a service the agent owns (`ipvsadm -a`), and taking it out
        // (drained like a removed endpoint) is a repair.
        for operation in plan.operations where !isDrainStep(operation, plan) || isForeign(operation, believed: believed) {
            repairs += 1
            logger.warning("repairing drift", metadata: ["operation": "\(operation)"])
        }
        return applyRepairs(plan, repairs: repairs)
    }

    /// Counts each VIP `plan` binds again as a repair beside the `repairs` found, logs it, and applies `plan`.
    private func applyRepairs(_ plan: ReconcilePlan, repairs found: Int) -> ReconcileReport {
        var repairs = found
        for address in plan.addressesToAdd {
            repairs += 1
            logger.warning("repairing drift", metadata: ["operation": "bind \(address) on \(options.interface)"])
        }
        metrics.driftRepaired.increment(by: repairs)
        var report = apply(plan)
        report.repairs = repairs
        return report
    }

    /// Verifies the VIPs alone, when the dummy interface announced a change that takes addresses
    /// away (`AddressMonitor`): IPVS sends no such notifications and waits for `verify()`. Creates
    /// the interface again when it is missing (setting it up when it is down) and binds again
    /// every desired address missing from it, each a repair. `removed` names the addresses
    /// announced removed: when none of them is desired (the agent's own unbinds), nothing is read;
    /// `nil` checks every address (the interface went away or down, or notifications were lost).
    /// `interfaceWentDown` counts setting the interface up again as a repair.
    @discardableResult
    public func verifyAddresses(removed: Set<IPAddress>?, interfaceWentDown: Bool = false) -> ReconcileReport {
        guard reconciled, let vips else { return ReconcileReport() }
        if let removed, !interfaceWentDown, removed.isDisjoint(with: desired.addresses) { return ReconcileReport() }
        var repairs = 0
        do {
            repairs += try repairInterface(vips)
            if repairs == 0 && interfaceWentDown {
                repairs += 1
                logger.warning("repairing drift", metadata: ["operation": "set dummy interface \(options.interface) up"])
            }
            boundAddresses = try vips.addresses(on: options.interface)
        } catch let error as InterfaceRepairFailure {
            return ReconcileReport(failures: [error.description])
        } catch {
            metrics.errors.increment()
            needsVerification = true
            return ReconcileReport(failures: ["cannot read the addresses of \(options.interface) to verify them: \(error)"])
        }
        var plan = ReconcilePlan()
        plan.addressesToAdd = StateDiff.addresses(desired: desired.addresses, actual: boundAddresses, owned: ownership.addresses,
                                                  among: removed).add
        return applyRepairs(plan, repairs: repairs)
    }

    /// Creates the dummy interface when it is missing and sets it up when it is down; returns 1 when
    /// it created it (a repair), else 0. A failure is counted and asks for a verification soon.
    private func repairInterface(_ vips: any VIPBackend) throws(InterfaceRepairFailure) -> Int {
        do {
            guard try vips.ensureInterface(named: options.interface) else { return 0 }
        } catch {
            metrics.errors.increment()
            needsVerification = true
            throw InterfaceRepairFailure(description: "cannot create the missing dummy interface \(options.interface): \(error)")
        }
        logger.warning("repairing drift", metadata: ["operation": "create dummy interface \(options.interface)"])
        // Created by the agent now: `--cleanup` deletes it.
        if ownership.interface != options.interface {
            ownership.interface = options.interface
            ownershipChanged = true
        }
        return 1
    }

    private struct InterfaceRepairFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Whether `operation` changes a real server that the agent's model did not hold.
    private func isForeign(_ operation: IPVSOperation, believed: KernelState) -> Bool {
        switch operation {
        case .deleteRealServer(let id, let key): believed.services[key]?.realServers[id] == nil
        case .updateRealServer(let server, let key): believed.services[key]?.realServers[server.id] == nil
        default: false
        }
    }

    private func isDrainStep(_ operation: IPVSOperation, _ plan: ReconcilePlan) -> Bool {
        switch operation {
        case .deleteRealServer(let id, let key):
            return drains.isDraining(RealServerRef(service: key, server: id)) || desired.services[key] != nil
        case .updateRealServer(let server, let key):
            return server.weight == 0 && desired.services[key]?.realServers[server.id] == nil
        default:
            return false
        }
    }

    /// Reads the connection counts of draining real servers and deletes those that are idle or
    /// past their deadline. Cheap: reads only the services that have draining servers.
    @discardableResult
    public func checkDrains() -> ReconcileReport {
        guard !drains.isEmpty else { return ReconcileReport() }
        for key in drains.services {
            do {
                for server in try ipvs.realServers(of: key) where kernel.services[key] != nil {
                    kernel.services[key]?.realServers[server.id] = server
                }
            } catch let error as IPVSError where error.kind == .serviceNotFound {
                programmedRealServers -= programmedRealServers(of: key)
                kernel.services[key] = nil
                drains.endAll(in: key)
            } catch {
                logger.warning("cannot read connections of draining real servers", metadata: ["service": "\(key)", "error": "\(error)"])
            }
        }
        return apply(plan(keys: drains.services))
    }

    /// Whether a verification should run soon (an operation failed, so the model may be wrong).
    public var wantsVerification: Bool { needsVerification }

    /// Whether real servers are draining (the caller then checks drains every second or two).
    public var isDraining: Bool { !drains.isEmpty }

    // MARK: - Cleanup

    /// Removes every service and VIP the agent owns, and nothing else.
    public func cleanup() -> ReconcileReport {
        desired = DesiredState()
        unadjusted = [:]
        drains = DrainTracker(timeout: options.drainTimeout)
        var plan = ReconcilePlan()
        plan.operations = ownership.services.sorted().filter { kernel.services[$0] != nil }.map { .deleteService($0) }
        plan.addressesToRemove = vips == nil ? [] : ownership.addresses.intersection(boundAddresses).sorted()
        var report = apply(plan)
        if report.succeeded {
            removeCreatedInterface()
            ownership = Ownership()
            programmedRealServers = 0
            save()
        }
        report.applied = plan.operations.count + plan.addressesToRemove.count - report.failures.count
        return report
    }

    /// Deletes the dummy interface when the agent created it and nothing else is bound on it.
    private func removeCreatedInterface() {
        guard let vips, let created = ownership.interface else { return }
        guard created == options.interface else {
            logger.warning("left the dummy interface the agent created in place: this cleanup is for another interface",
                           metadata: ["interface": "\(created)", "cleaned": "\(options.interface)"])
            return
        }
        do {
            if try vips.deleteInterfaceIfUnused(named: created) {
                logger.info("deleted dummy interface", metadata: ["interface": "\(created)"])
            } else {
                logger.notice("left the dummy interface in place: addresses the agent did not add are bound on it",
                              metadata: ["interface": "\(created)"])
            }
        } catch {
            logger.error("cannot delete the dummy interface", metadata: ["interface": "\(created)", "error": "\(error)"])
        }
    }

    // MARK: - Applying

    /// Applies `plan`; `appliedEarly` counts what a cold start applied for it (`takeOver(_:)`).
    private func apply(_ plan: ReconcilePlan, appliedEarly: Int = 0) -> ReconcileReport {
        let start = ContinuousClock.now
        var report = ReconcileReport()
        let plan = claim(plan, report: &report)
        // The gauge of programmed real servers, updated for the services this plan touches.
        var touched = plan.adopted
        for operation in plan.operations { if let key = operation.serviceKey { touched.insert(key) } }
        let countBefore = touched.reduce(0) { $0 + programmedRealServers(of: $1) }
        for key in plan.adopted {
            ownership.services.insert(key)
            ownership.origins[key] = desired.services[key]?.origin
            ownershipChanged = true
            logger.info("adopted service already in the kernel", metadata: ["service": "\(key)"])
        }
        let instant = now()
        for ref in plan.drainsStarted {
            drains.begin(ref, now: instant)
            logger.info("draining removed endpoint", metadata: ["real_server": "\(ref.server)", "service": "\(ref.service)"])
        }

        // Binding VIPs (rtnetlink, under the kernel's RTNL lock) and programming IPVS (generic
        // netlink, under IPVS's own mutex) touch nothing of each other's, so a large plan does both
        // at once: on more than one core the pass then takes about as long as the slower of the
        // two instead of their sum.
        var bound: AddressBinding.Outcome = []
        var binding: AddressBinding?
        if let vips, !plan.addressesToAdd.isEmpty {
            if plan.addressesToAdd.count >= Self.concurrentBindingMinimum && !plan.operations.isEmpty {
                binding = AddressBinding(vips, options.interface)
                binding?.add(plan.addressesToAdd)
            } else {
                bound = AddressBinding.bindNow(vips, plan.addressesToAdd, options.interface)
            }
        }
        let results = plan.operations.isEmpty ? [] : ipvs.apply(plan.operations)

        for (operation, result) in zip(plan.operations, results) {
            switch result {
            case .success:
                kernel.record(operation)
                report.applied += 1
                track(operation)
            case .failure(let error):
                // A delete of something already gone reached the goal anyway.
                if case .deleteService = operation, error.kind == .serviceNotFound {
                    kernel.record(operation)
                    track(operation)
                } else if case .deleteRealServer = operation, error.kind == .realServerNotFound || error.kind == .serviceNotFound {
                    kernel.record(operation)
                    track(operation)
                } else {
                    report.failures.append(error.description)
                    needsVerification = true
                    logger.error("kernel operation failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
                }
            }
        }

        // Last: the model above was brought up to date while the VIPs may still be being bound.
        if let binding { bound += binding.results() }
        for (address, result) in bound {
            switch result {
            case .success:
                boundAddresses.insert(address)
                if ownership.addresses.insert(address).inserted { ownershipChanged = true }
                report.applied += 1
            case .failure(let error):
                report.failures.append("cannot bind \(address) on \(options.interface): \(error)")
            }
        }

        for (address, _) in bound { settled.addresses.insert(address) }
        for ref in plan.drainsEnded { drains.end(ref) }

        if let vips {
            for address in plan.addressesToRemove {
                do {
                    try vips.remove(address, from: options.interface)
                    boundAddresses.remove(address)
                    if ownership.addresses.remove(address) != nil { ownershipChanged = true }
                    report.applied += 1
                } catch {
                    report.failures.append("cannot remove \(address) from \(options.interface): \(error)")
                }
            }
        }

        if ownershipChanged || !settled.services.isEmpty || !settled.addresses.isEmpty {
            PausePoint.applied.reached()
            save()
        }
        programmedRealServers += touched.reduce(0) { $0 + programmedRealServers(of: $1) } - countBefore
        metrics.operationsApplied.increment(by: report.applied + appliedEarly)
        if !report.failures.isEmpty { metrics.errors.increment(by: report.failures.count) }
        metrics.servicesProgrammed.record(ownership.services.count)
        metrics.realServersProgrammed.record(programmedRealServers)
        metrics.addressesProgrammed.record(ownership.addresses.count)
        metrics.realServersDraining.record(drains.deadlines.count)
        let elapsed = (ContinuousClock.now - start).components
        metrics.syncDuration.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        if report.applied + appliedEarly > 0 || !report.failures.isEmpty {
            logger.info("applied changes", metadata: ["operations": "\(report.applied + appliedEarly)", "failures": "\(report.failures.count)",
                                                      "milliseconds": "\(Self.milliseconds(ContinuousClock.now - start))"])
        }
        return report
    }

    /// Claims the virtual services `plan` adds and the VIPs it binds before the kernel changes
    /// (`OwnershipStore.claim`). When the claim cannot be written, the plan is returned without
    /// those additions: not recorded, not done.
    private func claim(_ plan: ReconcilePlan, report: inout ReconcileReport) -> ReconcilePlan {
        var services: [ServiceKey] = []
        for operation in plan.operations { if case .addService(let service) = operation { services.append(service.key) } }
        let addresses = plan.addressesToAdd
        guard let store, !services.isEmpty || !addresses.isEmpty else { return plan }
        do {
            var origins: [ServiceKey: ObjectName] = [:]
            for key in services { origins[key] = desired.services[key]?.origin }
            try store.claim(services: services, origins: origins, addresses: addresses)
            settled.services.formUnion(services)
            return plan
        } catch {
            report.failures.append("added no service and bound no address: \(error)")
            needsVerification = true
            logger.error("cannot record what the agent is about to add; not adding it", metadata: ["error": "\(error)"])
            var reduced = plan
            let refused = Set(services)
            reduced.operations.removeAll { $0.serviceKey.map(refused.contains) == true }
            reduced.addressesToAdd = []
            return reduced
        }
    }

    /// Plans binding fewer VIPs than this bind them before the IPVS operations, on the reconciler's
    /// own thread: a thread of their own would cost more than it saves.
    static let concurrentBindingMinimum = 64

    /// `12.345`: a duration in milliseconds with microsecond precision, for logs.
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        let fraction = String(microseconds % 1000)
        return "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    private func track(_ operation: IPVSOperation) {
        switch operation {
        case .addService(let service), .updateService(let service):
            let origin = desired.services[service.key]?.origin
            if ownership.services.insert(service.key).inserted { ownershipChanged = true }
            if ownership.origins[service.key] != origin {
                ownership.origins[service.key] = origin
                ownershipChanged = true
            }
        case .deleteService(let key):
            if ownership.services.remove(key) != nil { ownershipChanged = true }
            if ownership.origins.removeValue(forKey: key) != nil { ownershipChanged = true }
            drains.endAll(in: key)
        case .deleteRealServer(let id, let key):
            let ref = RealServerRef(service: key, server: id)
            if drains.isDraining(ref) {
                logger.info("removed drained endpoint", metadata: ["real_server": "\(id)", "service": "\(key)"])
            }
            drains.end(ref)
        default:
            break
        }
    }

    private func save() {
        ownershipChanged = false
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

    // MARK: - Status

    /// What `/status` is made of, taken in constant time so that the document is built outside
    /// the actor and never delays a reconcile.
    public func statusSource() -> StatusSource {
        StatusSource(ownership: ownership, kernel: kernel, drains: drains, desired: desired)
    }
}
