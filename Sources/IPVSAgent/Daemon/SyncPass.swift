import IPVS
import Logging

/// The daemon's work on each sync, whatever the source of desired state (the files' `ReconcileLoop`,
/// the API server's `APIReconcileLoop`): a load applied to the kernel and reported to the health
/// checker, kube-proxy's metrics and health rule and the nftables table; and between loads, the
/// upkeep: draining endpoints checked every second, the whole kernel verified every sync period.
struct SyncPass: Sendable {
    let reconciler: Reconciler
    let health: HealthLink
    let kubeProxy: KubeProxyMetrics
    /// kube-proxy's rule for `/healthz` and `/livez`: changes and verifications are queued and marked done.
    let proxyHealth: ProxyHealth
    /// The agent's nftables table, synced after each load (`nil` without one).
    let packetFilter: PacketFilterDriver?
    let logger: Logger
    /// The healthCheckNodePort listeners, brought to each load's Services (`nil` without them).
    var serviceHealth: ServiceHealthServer? = nil // healthCheckNodePort
    /// Deletes the UDP conntrack entries the kernel changes left stale, after each change.
    let conntrack = ConntrackDriver() // conntrack

    /// A change waits for a load: `/healthz` turns unhealthy if it waits too long.
    func queued() {
        proxyHealth.queued(.changes)
        kubeProxy.queued()
    }

    /// Loads through `loader` (`changed` as `DesiredStateLoader.load`), applies the difference and
    /// points the health checks at the new endpoints. `changes` counts the objects each load changed.
    /// Returns what was loaded.
    @discardableResult
    func reload(_ loader: inout DesiredStateLoader, changed: Set<String>?, _ changes: inout ObjectChanges, reason: String,
                owners: [ServiceKey: ObjectName] = [:], coldStart: ColdStart? = nil) async -> DesiredStateLoader.Loaded {
        let start = ContinuousClock.now
        let loaded = await loader.load(changed: changed, reason: reason, owners: owners, coldStart: coldStart)
        let build = loaded.build
        let objectChanges = changes.count(loaded.snapshot.changedServices, in: loaded.snapshot)
        kubeProxy.count(objectChanges)
        let applying = ContinuousClock.now
        // The nftables table is written while the reconcile programs IPVS, as `--once` does: neither
        // waits for the other (a first pass's table of 10,000 Services takes as long as its reconcile).
        let filtering = packetFilter.map { filter in
            let pending = filter.prepare(&loader.builder)
            return Task.detached { filter.apply(pending) }
        }
        var report = await reconciler.reconcile(build.state, changed: build.changed, hold: loaded.hold, coldStart: loaded.coldStart)
        let applied = ContinuousClock.now
        // Ran to its end: operations the kernel refused are logged and retried, not a stuck agent.
        kubeProxy.synced(since: applying)
        kubeProxy.programmed(objectChanges.triggerTimes)
        proxyHealth.updated(.changes)
        if let filtering, !(await filtering.value) { report.failures.append(PacketFilterDriver.notSynced) }
        if let serviceHealth { // healthCheckNodePort
            await serviceHealth.sync(HealthCheckNodePort.wanted(in: &loader.builder, updating: await serviceHealth.wanted))
        }
        if await reconciler.isDraining { report.add(await reconciler.checkDrains()) }
        await conntrack.clean(reconciler, logger: logger) // conntrack
        if build.changed?.isEmpty != true {
            health.update(build.state, changed: build.changed, logger: logger)
            // New endpoints can change a Service's quorum without any health transition.
            await reconciler.setHealth(health.overlay(logger: logger))
        }
        // A load that mapped every object (the first; any while Services conflict): give back what it freed.
        if build.changed == nil { FreedMemory.release() }
        // The sync's one info line: what was loaded, what the kernel was asked, and how long each step took.
        logger.info("applied \(loader.source.objectsName)", metadata: [
            "reason": "\(reason)", "services": "\(build.state.services.count)", "real_servers": "\(build.realServerCount)",
            "changed": "\(build.changed.map { "\($0.count)" } ?? "all")", "problems": "\(loaded.issues.count)",
            "operations": "\(report.applied)", "failures": "\(report.failures.count)",
            "load_milliseconds": "\(Reconciler.milliseconds(applying - start))",
            "apply_milliseconds": "\(Reconciler.milliseconds(applied - applying))",
            "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))"])
        return loaded
    }

    /// Until cancelled: draining endpoints checked every second, the kernel verified (and the
    /// nftables table written again) every `syncPeriod`, or at once when a reconcile asks for it.
    func upkeep(syncPeriod: Duration) async {
        var lastVerification = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: min(.seconds(1), syncPeriod))
            if await reconciler.isDraining { await reconciler.checkDrains() }
            let wanted = await reconciler.wantsVerification
            if ContinuousClock.now - lastVerification >= syncPeriod || wanted {
                lastVerification = ContinuousClock.now
                // A verification that ends counts as a sync, whatever operations the kernel refused.
                proxyHealth.queued(.verification)
                let report = await reconciler.verify()
                if report.repairs > 0 { logger.warning("repaired drift", metadata: ["repairs": "\(report.repairs)"]) }
                kubeProxy.synced(since: lastVerification)
                proxyHealth.updated(.verification)
                packetFilter?.repair()
                await serviceHealth?.retry() // healthCheckNodePort
            }
            await conntrack.clean(reconciler, logger: logger) // conntrack: drains ended, repairs
        }
    }
}
