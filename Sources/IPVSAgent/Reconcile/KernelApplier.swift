import IPVS
import Logging

/// Applies plans to the kernel, the only place that changes it: IPVS operations and VIP bindings
/// (both at once for a large plan), with the failure rules (a delete of something already gone
/// reached its goal), the ownership of each success, and the gauges. Keeps the model of the kernel
/// (`kernel`, `boundAddresses`) in step with what was applied, and reads it again when asked.
struct KernelApplier {
    /// The kernel's IPVS, this applier's own.
    let ipvs: any IPVSBackend
    /// The dummy interface, or `nil` to leave addresses alone.
    let vips: (any VIPBackend)?
    /// The dummy interface's name (`--interface`).
    let interface: String
    let logger: Logger
    let metrics: AgentMetrics

    /// The model of the kernel's IPVS table.
    var kernel = KernelState()
    /// The VIPs bound on the dummy interface.
    var boundAddresses: Set<IPAddress> = []
    /// The real servers of owned services in the kernel (a gauge), kept up to date per operation.
    private(set) var programmedRealServers = 0
    /// The UDP connection tracking entries the applied operations left stale, until the sync pass takes them.
    var conntrack = ConntrackCleanup() // conntrack

    /// Plans binding fewer VIPs than this bind them before the IPVS operations, on the reconciler's
    /// own thread: a thread of their own would cost more than it saves.
    static let concurrentBindingMinimum = 64

    // MARK: - The model

    /// Reads the kernel's IPVS table and the VIPs bound on the interface into the model.
    mutating func readKernel(owned: Set<ServiceKey>) throws {
        kernel = KernelState(table: try ipvs.table())
        if let vips {
            boundAddresses = (try? vips.addresses(on: interface)) ?? []
        }
        countProgrammedRealServers(owned: owned)
    }

    /// Counts the real servers of owned services in the model again (the gauge), after it was read
    /// or took in what a cold start did.
    mutating func countProgrammedRealServers(owned: Set<ServiceKey>) {
        programmedRealServers = owned.reduce(0) { $0 + (kernel.services[$1]?.realServers.count ?? 0) }
    }

    /// Forgets the service `key` (gone from the kernel), gauge included.
    mutating func forget(_ key: ServiceKey, owned: Set<ServiceKey>) {
        if owned.contains(key) { programmedRealServers -= kernel.services[key]?.realServers.count ?? 0 }
        kernel.services[key] = nil
    }

    /// Records what a cold start did in the model and as owned (it is the agent's), and returns how
    /// many operations and addresses it applied. Failures are left to the reconcile that follows:
    /// what failed is still missing from the model, so the reconcile tries it again and reports
    /// it. An address bound for a Service object that the desired state does not use after all (a
    /// later file replaced it) is owned, so the reconcile removes it.
    mutating func takeOver(_ result: ColdStart.Result, ledger: inout OwnershipLedger, drains: inout DrainTracker,
                           desired: DesiredState) -> Int {
        let start = ContinuousClock.now
        let outcome = result.programmed
        kernel.services.reserveCapacity(kernel.services.count + outcome.added.count)
        for (key, entry) in outcome.added {
            kernel.services[key] = entry
            conntrack.noteAdded(entry) // conntrack
            Self.track(.addService(entry.service), ledger: &ledger, drains: &drains, desired: desired, logger: logger)
            ledger.settle(key)
        }
        for (operation, result) in outcome.others {
            if case .addService(let service) = operation { ledger.settle(service.key) }
            switch result {
            case .success:
                conntrack.note(operation, before: kernel) // conntrack
                kernel.record(operation)
                Self.track(operation, ledger: &ledger, drains: &drains, desired: desired, logger: logger)
            case .failure(let error):
                logger.debug("kernel operation applied early failed; the reconcile tries it again",
                             metadata: ["operation": "\(operation)", "error": "\(error)"])
            }
        }
        countProgrammedRealServers(owned: ledger.ownership.services)
        var bound = 0
        for (address, outcome) in result.bound {
            ledger.settle(address)
            switch outcome {
            case .success:
                boundAddresses.insert(address)
                ledger.own(address)
                bound += 1
            case .failure(let error):
                logger.debug("address bound early failed; the reconcile tries it again when a Service uses it",
                             metadata: ["address": "\(address)", "error": "\(error)"])
            }
        }
        logger.info("programmed while the objects loaded", metadata: [
            "operations": "\(outcome.applied)", "addresses": "\(bound)",
            "failures_left_to_the_reconcile": "\(outcome.failed + result.bound.count - bound)",
            "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))"])
        return outcome.applied + bound
    }

    // MARK: - Applying

    /// Makes the model of each service `operations` added hold the desired real servers' storage
    /// itself when the kernel now has exactly those (as a cold start's take-over does): the model
    /// built operation by operation would be a second copy of every real server (the most memory
    /// of a first programming after the mapping's).
    private mutating func shareAddedRealServers(of operations: [IPVSOperation], with desired: DesiredState) {
        for case .addService(let service) in operations {
            guard let wanted = desired.services[service.key]?.realServers, !wanted.isEmpty,
                  let modelled = kernel.services[service.key]?.realServers, modelled == wanted,
                  wanted.values.allSatisfy({ $0 == $0.configuration }) else { continue }
            kernel.services[service.key]?.realServers = wanted
        }
    }

    /// What `apply` did: the report, and whether an operation failed so that the model may be wrong.
    struct Outcome {
        var report = ReconcileReport()
        var wantsVerification = false
    }

    /// Applies `plan`, recording each success in the model, in `ledger` and in `drains`; `desired`
    /// gives the origins of added services. `appliedEarly` counts what a cold start applied for it
    /// (`takeOver`), for the metrics and the log.
    mutating func apply(_ plan: ReconcilePlan, ledger: inout OwnershipLedger, drains: inout DrainTracker, desired: DesiredState,
                        now: ContinuousClock.Instant, appliedEarly: Int = 0) -> Outcome {
        let start = ContinuousClock.now
        var outcome = Outcome()
        let plan = claim(plan, ledger: &ledger, desired: desired, outcome: &outcome)
        // The gauge of programmed real servers, updated for the services this plan touches.
        var touched = plan.adopted
        for operation in plan.operations { if let key = operation.serviceKey { touched.insert(key) } }
        let countBefore = programmedRealServers(of: touched, owned: ledger.ownership.services)
        for key in plan.adopted {
            ledger.adopt(key, origin: desired.services[key]?.origin)
            logger.info("adopted service already in the kernel", metadata: ["service": "\(key)"])
        }
        for ref in plan.drainsStarted {
            drains.begin(ref, now: now)
            // Logged at info by the drain check that finds it busy; most have no connections.
            logger.debug("quiescing removed endpoint", metadata: ["real_server": "\(ref.server)", "service": "\(ref.service)"])
        }

        // Binding VIPs (rtnetlink, under the kernel's RTNL lock) and programming IPVS (generic
        // netlink, under IPVS's own mutex) touch nothing of each other's, so a large plan does both
        // at once: on more than one core the pass then takes about as long as the slower of the
        // two instead of their sum.
        var bound: AddressBinding.Outcome = []
        var binding: AddressBinding?
        if let vips, !plan.addressesToAdd.isEmpty {
            if plan.addressesToAdd.count >= Self.concurrentBindingMinimum && !plan.operations.isEmpty {
                binding = AddressBinding(vips, interface)
                binding?.add(plan.addressesToAdd)
            } else {
                bound = AddressBinding.bindNow(vips, plan.addressesToAdd, interface)
            }
        }
        let results = plan.operations.isEmpty ? [] : ipvs.apply(plan.operations)

        for (operation, result) in zip(plan.operations, results) {
            switch result {
            case .success:
                conntrack.note(operation, before: kernel) // conntrack
                kernel.record(operation)
                outcome.report.applied += 1
                Self.track(operation, ledger: &ledger, drains: &drains, desired: desired, logger: logger)
            case .failure(let error):
                // A delete of something already gone reached the goal anyway.
                if case .deleteService = operation, error.kind == .serviceNotFound {
                    conntrack.note(operation, before: kernel) // conntrack
                    kernel.record(operation)
                    Self.track(operation, ledger: &ledger, drains: &drains, desired: desired, logger: logger)
                } else if case .deleteRealServer = operation, error.kind == .realServerNotFound || error.kind == .serviceNotFound {
                    conntrack.note(operation, before: kernel) // conntrack
                    kernel.record(operation)
                    Self.track(operation, ledger: &ledger, drains: &drains, desired: desired, logger: logger)
                } else {
                    outcome.report.failures.append(error.description)
                    outcome.wantsVerification = true
                    logger.error("kernel operation failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
                }
            }
        }

        shareAddedRealServers(of: plan.operations, with: desired)

        // Last: the model above was brought up to date while the VIPs may still be being bound.
        if let binding { bound += binding.results() }
        for (address, result) in bound {
            switch result {
            case .success:
                boundAddresses.insert(address)
                ledger.own(address)
                outcome.report.applied += 1
            case .failure(let error):
                outcome.report.failures.append("cannot bind \(address) on \(interface): \(error)")
            }
        }

        for (address, _) in bound { ledger.settle(address) }
        for ref in plan.drainsEnded { drains.end(ref) }

        if let vips {
            for address in plan.addressesToRemove {
                do {
                    try vips.remove(address, from: interface)
                    boundAddresses.remove(address)
                    ledger.disown(address)
                    outcome.report.applied += 1
                } catch {
                    outcome.report.failures.append("cannot remove \(address) from \(interface): \(error)")
                }
            }
        }

        if ledger.needsSave {
            PausePoint.applied.reached()
            ledger.save(logger: logger, metrics: metrics)
        }
        programmedRealServers += programmedRealServers(of: touched, owned: ledger.ownership.services) - countBefore
        let report = outcome.report
        metrics.operationsApplied.increment(by: report.applied + appliedEarly)
        if !report.failures.isEmpty { metrics.errors.increment(by: report.failures.count) }
        metrics.servicesProgrammed.record(ledger.ownership.services.count)
        metrics.realServersProgrammed.record(programmedRealServers)
        metrics.addressesProgrammed.record(ledger.ownership.addresses.count)
        metrics.realServersDraining.record(drains.deadlines.count)
        let elapsed = (ContinuousClock.now - start).components
        metrics.syncDuration.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        // Debug level: the caller's line says what the pass was (a load, repairs, a health verdict, drains).
        if report.applied + appliedEarly > 0 || !report.failures.isEmpty {
            logger.debug("applied changes", metadata: ["operations": "\(report.applied + appliedEarly)", "failures": "\(report.failures.count)",
                                                      "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))"])
        }
        return outcome
    }

    /// The real servers in the model of those of `keys` the agent owns.
    private func programmedRealServers(of keys: Set<ServiceKey>, owned: Set<ServiceKey>) -> Int {
        keys.reduce(0) { $0 + (owned.contains($1) ? kernel.services[$1]?.realServers.count ?? 0 : 0) }
    }

    /// Claims the virtual services `plan` adds and the VIPs it binds before the kernel changes
    /// (`OwnershipStore.claim`). When the claim cannot be written, the plan is returned without
    /// those additions: not recorded, not done.
    private func claim(_ plan: ReconcilePlan, ledger: inout OwnershipLedger, desired: DesiredState, outcome: inout Outcome) -> ReconcilePlan {
        var services: [ServiceKey] = []
        for operation in plan.operations { if case .addService(let service) = operation { services.append(service.key) } }
        let addresses = plan.addressesToAdd
        guard !services.isEmpty || !addresses.isEmpty else { return plan }
        do {
            var origins: [ServiceKey: ObjectName] = [:]
            for key in services { origins[key] = desired.services[key]?.origin }
            try ledger.claim(services: services, origins: origins, addresses: addresses)
            return plan
        } catch {
            outcome.report.failures.append("added no service and bound no address: \(error)")
            outcome.wantsVerification = true
            logger.error("cannot record what the agent is about to add; not adding it", metadata: ["error": "\(error)"])
            var reduced = plan
            let refused = Set(services)
            reduced.operations.removeAll { $0.serviceKey.map(refused.contains) == true }
            reduced.addressesToAdd = []
            return reduced
        }
    }

    /// Records the ownership and drain effects of an operation the kernel accepted.
    private static func track(_ operation: IPVSOperation, ledger: inout OwnershipLedger, drains: inout DrainTracker,
                              desired: DesiredState, logger: Logger) {
        switch operation {
        case .addService(let service), .updateService(let service):
            ledger.own(service.key, origin: desired.services[service.key]?.origin)
        case .deleteService(let key):
            ledger.disown(key)
            drains.endAll(in: key)
        case .deleteRealServer(let id, let key):
            let ref = RealServerRef(service: key, server: id)
            if drains.busy.contains(ref) {
                logger.info("removed drained endpoint", metadata: ["real_server": "\(ref.server)", "service": "\(key)"])
            } else if drains.isDraining(ref) {
                logger.debug("removed endpoint without connections", metadata: ["real_server": "\(ref.server)", "service": "\(key)"])
            }
            drains.end(ref)
        default:
            break
        }
    }
}
