import Conntrack
import Foundation
import IPVS
import Logging

/// Owns the kernel: the only place that talks to IPVS and the dummy interface. Keeps what it is
/// asked for (the desired state, with the health overlay and what invalid manifests hold), plans
/// the minimal difference (`ReconcilePlanner`), applies it (`KernelApplier`, which keeps the model
/// of the kernel), records what it owns (`OwnershipLedger`), drains removed endpoints and repairs
/// drift. `/status` reads it through `StatusSource`.
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

    private let vips: (any VIPBackend)?
    private let options: Options
    private let logger: Logger
    private let metrics: AgentMetrics
    private let now: @Sendable () -> ContinuousClock.Instant

    private var applier: KernelApplier
    private var ledger: OwnershipLedger
    private var drains: DrainTracker
    private var health = HealthOverlay()
    /// The mapped state with the health overlay applied, kept up to date by changes (its storage
    /// is this actor's own, so a change to one service never copies the others).
    private var desired = DesiredState()
    /// The mapped services that the health overlay changed in `desired`, as mapped.
    private var unadjusted: [ServiceKey: DesiredService] = [:]
    private var needsVerification = false
    private var hold = Hold()
    /// Whether a reconcile ran: until then the desired state is not known (see `verify()`).
    private var reconciled = false
    /// Whether the first reconcile sets the dummy interface up once it bound its addresses: `start()`
    /// leaves it as it is (a new one down), as addresses bind faster on a down interface
    /// (`LinkManager.ensureDummyInterface(named:up:)`; measured in the README, "The agent").
    private var setsInterfaceUp = false

    /// - Parameters:
    ///   - ipvs: the kernel's IPVS; used from this actor only.
    ///   - vips: the dummy interface, or `nil` to leave addresses alone.
    ///   - store: where ownership is recorded, or `nil` to keep it in memory (dry runs, tests).
    public init(ipvs: sending any IPVSBackend, vips: sending (any VIPBackend)?, store: OwnershipStore?, options: Options,
                logger: Logger, metrics: AgentMetrics = AgentMetrics(),
                now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.vips = vips
        self.options = options
        self.logger = logger
        self.metrics = metrics
        self.now = now
        self.applier = KernelApplier(ipvs: ipvs, vips: vips, interface: options.interface, logger: logger, metrics: metrics)
        self.ledger = OwnershipLedger(store: store)
        self.drains = DrainTracker(timeout: options.drainTimeout)
    }

    private var kernel: KernelState { applier.kernel }
    private var ownership: Ownership { ledger.ownership }

    // MARK: - Start

    /// Reads ownership and the kernel's state, and creates the dummy interface when missing (down:
    /// the first reconcile sets it up after binding its addresses). Nothing in the kernel is changed
    /// or flushed: what is there is adopted by the next reconcile.
    public func start(createInterface: Bool = true) throws {
        try ledger.load()
        if let vips, createInterface {
            if try vips.ensureInterface(named: options.interface, up: false) {
                logger.info("created dummy interface", metadata: ["interface": "\(options.interface)"])
                ledger.ownInterface(options.interface)
                ledger.save(logger: logger, metrics: metrics)
            }
            setsInterfaceUp = true
        }
        try applier.readKernel(owned: ownership.services)
        let kernel = applier.kernel
        ledger.adoptClaims(inKernel: { kernel.services[$0] != nil }, bound: applier.boundAddresses, logger: logger)
        applier.countProgrammedRealServers(owned: ownership.services)
        logger.info("read kernel state", metadata: [
            "services": "\(kernel.services.count)", "real_servers": "\(kernel.realServerCount)",
            "owned_services": "\(ownership.services.count)", "owned_addresses": "\(ownership.addresses.count)",
        ])
    }

    /// The Service each owned virtual service came from, as the state file recorded it: on a first
    /// start, these keep their addresses and ports against Services that claim them too
    /// (`DesiredStateBuilder.seed(owners:)`).
    public var owners: [ServiceKey: ObjectName] { ownership.origins }

    /// What a cold start must respect (`ColdStart`): the virtual services and VIPs in the kernel,
    /// the state file's owners, the interface and the store. `nil` once a reconcile ran: only the
    /// first load of a start programs the kernel as it decodes.
    func coldStartBasis() -> ColdStart.Basis? {
        guard !reconciled else { return nil }
        return ColdStart.Basis(services: Set(kernel.services.keys), owners: ownership.origins,
                               interface: vips == nil ? nil : options.interface, addresses: applier.boundAddresses, store: ledger.store)
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
            for address in ReconcilePlanner.addresses(of: changed) {
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
        if let coldStart { appliedEarly = applier.takeOver(coldStart, ledger: &ledger, drains: &drains, desired: desired) }
        let plan = plan(keys: released ? nil : changed)
        if let coldStart, !plan.addressesToRemove.isEmpty {
            // Bound for a Service object that the desired state does not use after all (a later file replaced it).
            let boundEarly = Set(coldStart.bound.compactMap { bound in (try? bound.result.get()).map { bound.address } })
            for address in plan.addressesToRemove where boundEarly.contains(address) {
                logger.info("removing an address bound early that no Service uses", metadata: ["address": "\(address)"])
            }
        }
        var report = apply(plan, appliedEarly: appliedEarly)
        report.applied += appliedEarly
        if setsInterfaceUp, let vips {
            setsInterfaceUp = false
            do {
                report.repairs += try repairInterface(vips)
            } catch {
                report.failures.append(error.description)
            }
        }
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

    /// The planner over the current models.
    private var planner: ReconcilePlanner {
        ReconcilePlanner(desired: desired, kernel: kernel, ownership: ownership, drains: drains, hold: hold,
                         boundAddresses: vips == nil ? nil : applier.boundAddresses)
    }

    /// The plan for the services `keys` (all when `nil`).
    private func plan(keys: Set<ServiceKey>?) -> ReconcilePlan {
        planner.plan(keys: keys, now: now())
    }

    /// Applies `plan` (`KernelApplier.apply`); a failure asks for a verification soon.
    private func apply(_ plan: ReconcilePlan, appliedEarly: Int = 0) -> ReconcileReport {
        let outcome = applier.apply(plan, ledger: &ledger, drains: &drains, desired: desired, now: now(), appliedEarly: appliedEarly)
        if outcome.wantsVerification { needsVerification = true }
        return outcome.report
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
            try applier.readKernel(owned: ownership.services)
        } catch {
            metrics.errors.increment()
            return ReconcileReport(failures: ["cannot read the kernel's state to verify it: \(error)"])
        }
        needsVerification = false
        let planner = planner
        let plan = planner.plan(keys: nil, now: now())
        for operation in planner.repairs(in: plan, believed: believed) {
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
            applier.boundAddresses = try vips.addresses(on: options.interface)
        } catch let error as InterfaceRepairFailure {
            return ReconcileReport(failures: [error.description])
        } catch {
            metrics.errors.increment()
            needsVerification = true
            return ReconcileReport(failures: ["cannot read the addresses of \(options.interface) to verify them: \(error)"])
        }
        var plan = ReconcilePlan()
        plan.addressesToAdd = StateDiff.addresses(desired: desired.addresses, actual: applier.boundAddresses,
                                                  owned: ownership.addresses, among: removed).add
        return applyRepairs(plan, repairs: repairs)
    }

    /// Creates the dummy interface when it is missing and sets it up when it is down; returns 1 when
    /// it created it (a repair), else 0. A failure is counted and asks for a verification soon.
    private func repairInterface(_ vips: any VIPBackend) throws(InterfaceRepairFailure) -> Int {
        do {
            guard try vips.ensureInterface(named: options.interface, up: true) else { return 0 }
        } catch {
            metrics.errors.increment()
            needsVerification = true
            throw InterfaceRepairFailure(description: "cannot create or set up the dummy interface \(options.interface): \(error)")
        }
        logger.warning("repairing drift", metadata: ["operation": "create dummy interface \(options.interface)"])
        // Created by the agent now: `--cleanup` deletes it.
        ledger.ownInterface(options.interface)
        return 1
    }

    private struct InterfaceRepairFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads the connection counts of draining real servers and deletes those that are idle or
    /// past their deadline. Cheap: reads only the services that have draining servers.
    @discardableResult
    public func checkDrains() -> ReconcileReport {
        guard !drains.isEmpty else { return ReconcileReport() }
        for key in drains.services {
            do {
                let servers = try applier.ipvs.realServers(of: key)
                if applier.kernel.services[key] != nil {
                    for server in servers { applier.kernel.services[key]?.realServers[server.id] = server }
                }
                for server in servers {
                    guard let connections = server.connections, connections.active > 0 || connections.inactive > 0,
                          drains.foundBusy(RealServerRef(service: key, server: server.id)) else { continue }
                    logger.info("draining removed endpoint", metadata: [
                        "real_server": "\(server.id)", "service": "\(key)", "active_connections": "\(connections.active)",
                        "inactive_connections": "\(connections.inactive)"])
                }
            } catch let error as IPVSError where error.kind == .serviceNotFound {
                applier.forget(key, owned: ownership.services)
                drains.endAll(in: key)
            } catch {
                logger.warning("cannot read connections of draining real servers", metadata: ["service": "\(key)", "error": "\(error)"])
            }
        }
        return apply(plan(keys: drains.services))
    }

    /// Whether a verification should run soon (an operation failed, so the model may be wrong).
    public var wantsVerification: Bool { needsVerification }

    /// The filters of the UDP connection tracking entries the kernel changes since the last call left
    /// stale (`ConntrackCleanup`), for the sync pass to delete; forgets them.
    public func takeStaleConntrack() -> [ConntrackFilter] { applier.conntrack.take() }

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
        plan.addressesToRemove = vips == nil ? [] : ownership.addresses.intersection(applier.boundAddresses).sorted()
        var report = apply(plan)
        if report.succeeded {
            removeCreatedInterface()
            ledger.disownAll()
            applier.countProgrammedRealServers(owned: [])
            ledger.save(logger: logger, metrics: metrics)
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

    /// `12.345`: a duration in milliseconds with microsecond precision, for logs.
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        let fraction = String(microseconds % 1000)
        return "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    // MARK: - Status

    /// What `/status` is made of, taken in constant time so that the document is built outside
    /// the actor and never delays a reconcile.
    public func statusSource() -> StatusSource {
        StatusSource(ownership: ownership, kernel: kernel, drains: drains, desired: desired)
    }
}
