import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// The daemon's loop when the desired state comes from the API server (`--kubeconfig` or
/// `--in-cluster`): follows it with an `APISource` and applies its snapshots through the same
/// mapping and reconcile as the files' `ReconcileLoop`. Nothing is applied before every resource
/// was listed once (an agent started while the API server is down changes nothing); then each
/// burst of changes is applied together, at most once per `--min-sync-period` (kube-proxy's
/// meaning: a change after a quiet period is applied at once, the next ones wait for the period
/// to pass since the last sync), mapping again only the Services that changed.
struct APIReconcileLoop: Service {
    let configuration: APIServerConfiguration
    let proxyName: String?
    let minSyncPeriod: Duration
    let reconciler: Reconciler
    let mapping: MappingOptions
    let syncPeriod: Duration
    let status: StatusBox
    let health: HealthLink
    let logger: Logger
    let metrics = AgentMetrics()

    func run() async throws {
        let (triggers, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let sourceMetrics = APISourceMetrics()
        let source = try APISource(configuration: configuration, proxyName: proxyName, logger: logger,
                                   changed: { continuation.yield() }, record: { sourceMetrics.record($0, $1) })
        defer { continuation.finish() }
        logger.info("following the API server", metadata: ["server": "\(configuration.host):\(configuration.port)",
                                                            "configuration": "\(configuration.origin)"])
        let reconciler = reconciler, status = status, logger = logger, metrics = metrics, health = health
        let mapping = mapping, minSyncPeriod = minSyncPeriod, syncPeriod = syncPeriod
        let kubeProxy = KubeProxyMetrics()

        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await source.run() }
                group.addTask {
                    var builder = DesiredStateBuilder(options: mapping)
                    builder.seed(owners: await reconciler.owners)
                    var lastSync: ContinuousClock.Instant?
                    for await _ in triggers {
                        if let lastSync, ContinuousClock.now - lastSync < minSyncPeriod {
                            try? await Task.sleep(until: lastSync + minSyncPeriod)
                        }
                        guard let snapshot = source.snapshot() else { continue } // Not every resource listed yet.
                        let triggers = source.takeTriggerTimes()
                        lastSync = ContinuousClock.now
                        await Self.apply(snapshot, &builder, reconciler, health, metrics, logger)
                        // kube-proxy's network programming latency: from the change's trigger
                        // time to the kernel updated; the first sync's are not changes.
                        if snapshot.changedServices != nil { kubeProxy.programmed(triggers) }
                    }
                }
                // The same upkeep as the files' loop: drains every second, the kernel verified
                // every sync period (or at once when a reconcile asks for it).
                group.addTask {
                    var lastVerification = ContinuousClock.now
                    while !Task.isCancelled {
                        try? await Task.sleep(for: min(.seconds(1), syncPeriod))
                        if await reconciler.isDraining { await reconciler.checkDrains() }
                        let wanted = await reconciler.wantsVerification
                        status.isHealthy = !wanted
                        if ContinuousClock.now - lastVerification >= syncPeriod || wanted {
                            lastVerification = ContinuousClock.now
                            let report = await reconciler.verify()
                            if report.repairs > 0 { logger.warning("repaired drift", metadata: ["repairs": "\(report.repairs)"]) }
                            status.isHealthy = report.succeeded
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Maps `snapshot` (only its changed Services after the first) and applies the difference.
    private static func apply(_ snapshot: SourceSnapshot, _ builder: inout DesiredStateBuilder, _ reconciler: Reconciler,
                              _ health: HealthLink, _ metrics: AgentMetrics, _ logger: Logger) async {
        let start = ContinuousClock.now
        let build = builder.build(snapshot)
        let issues = snapshot.issues + build.issues
        for issue in issues { logger.error("\(issue)") }
        metrics.manifestIssues.record(issues.count)
        await reconciler.reconcile(build.state, changed: build.changed,
                                   hold: Reconciler.Hold(services: snapshot.heldServices, everything: snapshot.incomplete))
        if await reconciler.isDraining { await reconciler.checkDrains() }
        if build.changed?.isEmpty != true {
            health.update(build.state, logger: logger)
            await reconciler.setHealth(health.overlay(logger: logger))
        }
        logger.info("applied the API server's objects", metadata: [
            "services": "\(build.state.services.count)", "real_servers": "\(build.realServerCount)",
            "changed": "\(build.changed.map { "\($0.count)" } ?? "all")", "problems": "\(issues.count)",
            "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))"])
    }
}
