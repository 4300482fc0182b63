import Dispatch
import Foundation
import HealthCheck
import NIOPosix
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// The long-running agent: a `ServiceGroup` of the reconcile loop, the watch of the dummy
/// interface and the metrics server, with graceful shutdown on SIGTERM and SIGINT that leaves the
/// kernel's state in place.
struct AgentDaemon {
    let command: AgentCommand
    /// The settings kube-proxy's flags and configuration share (sync periods, server addresses).
    let settings: ProxySettings
    let reconciler: Reconciler
    let mapping: MappingOptions
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    /// The API server to follow instead of the files (issue 19).
    var apiServer: APIServerConfiguration? = nil
    /// The agent's nftables table, synced after each reconcile (nft).
    var packetFilter: PacketFilterDriver? = nil

    func run() async throws {
        let status = StatusBox()
        let checker = HealthChecker(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let health = HealthLink(checker: checker)
        let proxyHealth = ProxyHealth(syncPeriod: settings.syncPeriod)
        // `/status`, made when asked for: what is programmed, and what the health checks decided.
        status.setProvider { [reconciler] in
            var current = await reconciler.statusSource().status()
            current.health = health.status()
            current.quorum = health.quorumStatus()
            return current
        }
        var services: [any Service] = [
            checker,
            HealthLoop(link: health, reconciler: reconciler, logger: logger),
        ]
        // API server source (issue 19): the API server's loop instead of the files' one.
        if let apiServer {
            services.append(APIReconcileLoop(configuration: apiServer, proxyName: command.serviceProxyName,
                                             minSyncPeriod: settings.minSyncPeriod, reconciler: reconciler, mapping: mapping,
                                             syncPeriod: settings.syncPeriod, status: status, health: health, logger: logger))
        } else {
            services.append(ReconcileLoop(paths: command.manifests, reconciler: reconciler, mapping: mapping,
                                          syncPeriod: settings.syncPeriod, health: health,
                                          configuration: command.config.map { ConfigurationReload(path: $0, base: command.baseHealth) },
                                          logger: logger, proxyHealth: proxyHealth, minSyncPeriod: settings.minSyncPeriod,
                                          packetFilter: packetFilter)) // nft
        }
        // A deleted VIP is bound again at once, not at the next sync period.
        services.append(AddressWatch(interface: command.interface, reconciler: reconciler, logger: logger))
        if let address = settings.metricsAddress {
            let process = ProcessMetrics()
            services.append(try MetricsServer(address: address, registry: registry, status: status, exposeStatus: command.exposeStatus,
                                              health: proxyHealth, hardFail: settings.bindAddressHardFail,
                                              beforeScrape: { process.update() }, logger: logger))
        }
        // kube-proxy's health server, for liveness and load-balancer probes.
        if let address = settings.healthzAddress {
            services.append(try MetricsServer(address: address, registry: registry, status: status, endpoints: .health,
                                              health: proxyHealth, hardFail: settings.bindAddressHardFail, logger: logger))
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        logger.info("stopped; the kernel's IPVS table and VIPs are left in place")
    }
}

/// Reloads manifests on file changes (inotify, debounced) and SIGHUP, applies the difference,
/// checks draining endpoints every second and verifies the whole kernel every sync period.
struct ReconcileLoop: Service {
    let paths: [String]
    let reconciler: Reconciler
    let mapping: MappingOptions
    let syncPeriod: Duration
    let health: HealthLink
    /// Re-reads `--config` on SIGHUP (`nil` without one).
    let configuration: ConfigurationReload?
    let logger: Logger
    /// kube-proxy's rule for `/healthz` and `/livez`: changes and verifications are queued here and marked done.
    let proxyHealth: ProxyHealth
    /// The least time between two reloads (`--ipvs-min-sync-period`).
    var minSyncPeriod: Duration = .zero
    /// The agent's nftables table, synced after each load (nft).
    var packetFilter: PacketFilterDriver? = nil
    let metrics = AgentMetrics()
    let kubeProxyMetrics = KubeProxyMetrics()

    enum Trigger: Sendable {
        case file(String)
        case hangup
    }

    /// Changes seen and not yet loaded, so a burst of events becomes one reload of those files.
    final class PendingChanges: @unchecked Sendable {
        private let lock = NSLock()
        private var files: Set<String> = []
        private var everything = false

        func add(_ trigger: Trigger) {
            lock.withLock {
                switch trigger {
                case .file(let name): files.insert(name)
                case .hangup: everything = true
                }
            }
        }

        /// The files to re-read (`nil`: all), or `.none` when nothing is pending.
        func take() -> Set<String>?? {
            lock.withLock {
                defer { files = []; everything = false }
                if everything { return .some(nil) }
                return files.isEmpty ? .none : .some(files)
            }
        }
    }

    func run() async throws {
        let source = ManifestSource(paths: paths, logger: logger)
        let watcher = try FileWatcher(folders: source.watchedFolders)
        let (triggers, continuation) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(64))
        let pending = PendingChanges()
        let proxyHealth = proxyHealth, kubeProxyMetrics = kubeProxyMetrics
        // Every change waits for a reload: `/healthz` turns unhealthy if it waits too long.
        let queue: @Sendable (Trigger) -> Void = { trigger in
            pending.add(trigger)
            proxyHealth.queued(.changes)
            kubeProxyMetrics.queued()
            continuation.yield(trigger)
        }
        // A file that decodes slowly is loaded when it is done, without holding back the others.
        source.lateDecoding = { file in queue(.file(file)) }
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { queue(.hangup) }
        hangup.resume()
        defer {
            hangup.cancel()
            watcher.stop()
            continuation.finish()
        }
        let reconciler = reconciler, logger = logger, metrics = metrics, syncPeriod = syncPeriod, health = health
        let mapping = mapping, configuration = configuration, minSyncPeriod = minSyncPeriod, packetFilter = packetFilter

        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await name in watcher.changes {
                        // `..data` is how Kubernetes swaps a mounted ConfigMap's files at once; the
                        // source maps it (and `x.yaml` for `./x.yaml`) to the files it affects.
                        guard source.isRelevant(change: name) else { continue }
                        queue(.file(name))
                    }
                }
                group.addTask {
                    var builder = DesiredStateBuilder(options: mapping)
                    var changes = ObjectChanges()
                    let sync = Sync(reconciler: reconciler, health: health, metrics: metrics, kubeProxy: kubeProxyMetrics,
                                    proxyHealth: proxyHealth, logger: logger)
                    await Self.reload(source, changed: nil, &builder, &changes, sync, reason: "start")
                    var lastReload = ContinuousClock.now
                    packetFilter?.sync(&builder) // nft
                    for await _ in triggers {
                        // Debounce: editors write in several steps; one reload after the burst.
                        try? await Task.sleep(for: .milliseconds(100))
                        // --ipvs-min-sync-period: changes that come meanwhile are applied together.
                        let wait = minSyncPeriod - (ContinuousClock.now - lastReload)
                        if wait > .zero { try? await Task.sleep(for: wait) }
                        guard let changed = pending.take() else { continue } // Loaded by an earlier pass.
                        let reason = changed.map { "changed \($0.sorted().joined(separator: ", "))" } ?? "SIGHUP"
                        if changed == nil, let configuration { configuration.reload(into: &builder, logger: logger) }
                        await Self.reload(source, changed: changed, &builder, &changes, sync, reason: reason)
                        lastReload = ContinuousClock.now
                        packetFilter?.sync(&builder) // nft
                    }
                }
                group.addTask {
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
                            kubeProxyMetrics.synced(since: lastVerification)
                            proxyHealth.updated(.verification)
                            packetFilter?.repair() // nft: the whole table written again
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// What a reload reports to.
    struct Sync: Sendable {
        let reconciler: Reconciler
        let health: HealthLink
        let metrics: AgentMetrics
        let kubeProxy: KubeProxyMetrics
        let proxyHealth: ProxyHealth
        let logger: Logger
    }

    private static func reload(_ source: ManifestSource, changed: Set<String>?, _ builder: inout DesiredStateBuilder,
                               _ changes: inout ObjectChanges, _ sync: Sync, reason: String) async {
        let reconciler = sync.reconciler, health = sync.health, metrics = sync.metrics, logger = sync.logger
        let start = ContinuousClock.now
        // The first load binds VIPs and programs IPVS as Services are decoded (nil afterwards): see
        // `Reconciler.bindEarly()` and `programEarly(options:)`.
        let early = await reconciler.bindEarly()
        let programming = await reconciler.programEarly(options: builder.options)
        let snapshot = await source.load(changed: changed, decoded: AgentRunner.handler(early, programming, options: builder.options))
        if let programming {
            builder.seed(programming.mappings())
            builder.seed(owners: await reconciler.owners)
        }
        let build = builder.build(snapshot)
        let issues = snapshot.issues + build.issues
        for issue in issues { logger.error("\(issue)") }
        metrics.manifestIssues.record(issues.count)
        let objectChanges = changes.count(snapshot.changedServices, in: snapshot)
        sync.kubeProxy.count(objectChanges)
        logger.info("loaded manifests", metadata: ["reason": "\(reason)", "services": "\(build.state.services.count)",
                                                   "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))",
                                                   "real_servers": "\(build.realServerCount)", "problems": "\(issues.count)",
                                                   "changed": "\(build.changed.map { "\($0.count)" } ?? "all")"])
        let applying = ContinuousClock.now
        await reconciler.reconcile(build.state, changed: build.changed,
                                                hold: Reconciler.Hold(services: snapshot.heldServices, everything: snapshot.incomplete))
        // Ran to its end: operations the kernel refused are logged and retried, not a stuck agent.
        sync.kubeProxy.synced(since: applying)
        sync.kubeProxy.programmed(objectChanges.triggerTimes)
        sync.proxyHealth.updated(.changes)
        if await reconciler.isDraining { await reconciler.checkDrains() }
        if build.changed?.isEmpty != true {
            health.update(build.state, logger: logger)
            // New endpoints can change a Service's quorum without any health transition.
            await reconciler.setHealth(health.overlay(logger: logger))
        }
    }
}

/// Re-reads the configuration file (`--config`) on SIGHUP: a file with errors is refused whole and
/// the configuration in use stays; a changed one maps every Service again.
struct ConfigurationReload: Sendable {
    let path: String
    /// `--health-check`, under the file's settings.
    let base: HealthCheckConfiguration

    func reload(into builder: inout DesiredStateBuilder, logger: Logger) {
        let configuration: AgentConfiguration
        do {
            let file = try ConfigurationFile.load(path: path, base: base)
            guard file.kubeProxy == nil else {
                // As kube-proxy, which exits when its file changes so that it is started again with it.
                logger.notice("a KubeProxyConfiguration is read at start only; restart the agent to apply a change", metadata: ["config": "\(path)"])
                return
            }
            configuration = file.agentConfiguration(base: base)
        } catch {
            for problem in error.problems { logger.error("\(problem)") }
            logger.error("configuration file not reloaded: it has errors; the configuration in use stays", metadata: ["config": "\(path)"])
            return
        }
        guard builder.options.health != configuration.healthDefault || builder.options.serviceHealth != configuration.serviceHealth
                || builder.options.allowed != configuration.allowed else {
            logger.info("configuration file unchanged", metadata: ["config": "\(path)"])
            return
        }
        // Setting the options makes the next build map every Service again.
        builder.options.health = configuration.healthDefault
        builder.options.serviceHealth = configuration.serviceHealth
        builder.options.allowed = configuration.allowed
        logger.notice("configuration file reloaded", metadata: [
            "config": "\(path)", "services_configured": "\(configuration.serviceHealth.count)",
            "default_check": "\(configuration.healthDefault.kind.name)"])
    }
}
