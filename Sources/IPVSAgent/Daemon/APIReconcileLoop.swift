import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

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
    let health: HealthLink
    let logger: Logger
    /// kube-proxy's rule for `/healthz` and `/livez`.
    let proxyHealth: ProxyHealth
    /// The agent's nftables table, synced after each load.
    var packetFilter: PacketFilterDriver? = nil
    /// The healthCheckNodePort listeners, synced after each load.
    var serviceHealth: ServiceHealthServer? = nil // healthCheckNodePort
    let metrics = AgentMetrics()
    let kubeProxyMetrics = KubeProxyMetrics()

    func run() async throws {
        let (triggers, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let pass = SyncPass(reconciler: reconciler, health: health, kubeProxy: kubeProxyMetrics, proxyHealth: proxyHealth,
                            packetFilter: packetFilter, logger: logger, serviceHealth: serviceHealth)
        let sourceMetrics = APISourceMetrics()
        let sourceStatus = APISourceStatus()
        let source = try APISource(configuration: configuration, proxyName: proxyName, nodeName: mapping.nodeName, logger: logger,
                                   changed: { pass.queued(); continuation.yield() },
                                   record: { sourceMetrics.record($0, $1); sourceStatus.record($0, $1) })
        // The first lists bind VIPs and program IPVS as their pages come (`ColdStart`), with this
        // node's zone once its Node is listed; the first load takes over what they did.
        let basis = await reconciler.coldStartBasis()
        let coldStarts = ColdStartBox()
        source.makeColdStart = { [mapping, logger] zone in
            var options = mapping
            options.zone = zone
            let coldStart = AgentRunner.coldStart(basis, options: options, logger: logger)
            coldStarts.set(coldStart)
            return coldStart
        }
        sourceStatus.follow(source.resources.map(\.kind))
        proxyHealth.reportSource({ sourceStatus.json() }, nodeEligible: { source.node?.eligible ?? true })
        defer { continuation.finish() }
        logger.info("following the API server", metadata: ["server": "\(configuration.host):\(configuration.port)",
                                                            "configuration": "\(configuration.origin)"])
        let reconciler = reconciler, logger = logger, metrics = metrics
        let mapping = mapping, minSyncPeriod = minSyncPeriod, syncPeriod = syncPeriod

        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await source.run() }
                group.addTask {
                    var loader = DesiredStateLoader(source: source, options: mapping, logger: logger, metrics: metrics)
                    var changes = ObjectChanges()
                    var lastSync: ContinuousClock.Instant?
                    for await _ in triggers {
                        if let lastSync, ContinuousClock.now - lastSync < minSyncPeriod {
                            try? await Task.sleep(until: lastSync + minSyncPeriod)
                        }
                        guard source.isListed else { continue } // Not every resource listed yet.
                        // The first load takes the state file's owners, as the files' first load does.
                        let first = lastSync == nil
                        lastSync = ContinuousClock.now
                        // The zone of the slices' hints, from the Node: a change maps every Service again.
                        loader.builder.options.zone = source.node?.zone
                        await pass.reload(&loader, changed: nil, &changes, reason: first ? "listed" : "watch events",
                                          owners: first ? await reconciler.owners : [:], coldStart: first ? coldStarts.take() : nil)
                    }
                }
                group.addTask { await pass.upkeep(syncPeriod: syncPeriod) }
                await group.next()
                group.cancelAll()
            }
        }
    }
}

/// The cold start the API source made during its first lists, for the first load to take.
private final class ColdStartBox: Sendable {
    private let value = Mutex<ColdStart?>(nil)
    func set(_ coldStart: ColdStart?) { value.withLock { $0 = coldStart } }
    /// The cold start, once; `nil` when none was made (or it was taken).
    func take() -> ColdStart? { value.withLock { value in defer { value = nil }; return value } }
}
