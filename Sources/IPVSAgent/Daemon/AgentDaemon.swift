import Dispatch
import Foundation
import HealthCheck
import IPVS
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
        status.setProvider { [reconciler, packetFilter] in
            var current = await reconciler.statusSource().status()
            current.health = health.status()
            current.quorum = health.quorumStatus()
            current.packetFilter = packetFilter?.status()
            return current
        }
        // healthCheckNodePort: on the NodePort addresses when --nodeport-addresses or --node-ip names them, else on all.
        let serviceHealth = ServiceHealthServer(addresses: command.nodeportAddresses.isEmpty && command.nodeIP.isEmpty ? nil : mapping.nodeAddresses,
                                                health: proxyHealth, logger: logger)
        var services: [any Service] = [
            checker,
            HealthLoop(link: health, reconciler: reconciler, logger: logger),
            serviceHealth,
        ]
        // API server source (issue 19): the API server's loop instead of the files' one.
        if let apiServer {
            services.append(APIReconcileLoop(configuration: apiServer, proxyName: command.serviceProxyName,
                                             minSyncPeriod: settings.minSyncPeriod, reconciler: reconciler, mapping: mapping,
                                             syncPeriod: settings.syncPeriod, health: health, logger: logger,
                                             proxyHealth: proxyHealth, packetFilter: packetFilter, serviceHealth: serviceHealth))
        } else {
            services.append(ReconcileLoop(paths: command.manifests, reconciler: reconciler, mapping: mapping,
                                          syncPeriod: settings.syncPeriod, health: health,
                                          configuration: command.config.map { ConfigurationReload(path: $0, base: command.baseHealth) },
                                          logger: logger, proxyHealth: proxyHealth, minSyncPeriod: settings.minSyncPeriod,
                                          packetFilter: packetFilter, serviceHealth: serviceHealth)) // nft, healthCheckNodePort
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
    /// The healthCheckNodePort listeners, synced after each load.
    var serviceHealth: ServiceHealthServer? = nil // healthCheckNodePort
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
        let pass = SyncPass(reconciler: reconciler, health: health, kubeProxy: kubeProxyMetrics, proxyHealth: proxyHealth,
                            packetFilter: packetFilter, logger: logger, serviceHealth: serviceHealth)
        let queue: @Sendable (Trigger) -> Void = { trigger in
            pending.add(trigger)
            pass.queued()
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
        let reconciler = reconciler, logger = logger, metrics = metrics, syncPeriod = syncPeriod
        let mapping = mapping, configuration = configuration, minSyncPeriod = minSyncPeriod

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
                    var loader = DesiredStateLoader(source: source, options: mapping, logger: logger, metrics: metrics)
                    var changes = ObjectChanges()
                    // The first load binds VIPs and programs IPVS as Services are decoded (`ColdStart`).
                    let coldStart = AgentRunner.coldStart(await reconciler.coldStartBasis(), options: mapping, logger: logger)
                    await pass.reload(&loader, changed: nil, &changes, reason: "start", owners: await reconciler.owners, coldStart: coldStart)
                    var lastReload = ContinuousClock.now
                    for await _ in triggers {
                        // Debounce: editors write in several steps; one reload after the burst.
                        try? await Task.sleep(for: .milliseconds(100))
                        // --ipvs-min-sync-period: changes that come meanwhile are applied together.
                        let wait = minSyncPeriod - (ContinuousClock.now - lastReload)
                        if wait > .zero { try? await Task.sleep(for: wait) }
                        guard let changed = pending.take() else { continue } // Loaded by an earlier pass.
                        let reason = changed.map { "changed \($0.sorted().joined(separator: ", "))" } ?? "SIGHUP"
                        if changed == nil, let configuration { configuration.reload(into: &loader.builder, logger: logger) }
                        await pass.reload(&loader, changed: changed, &changes, reason: reason)
                        lastReload = ContinuousClock.now
                    }
                }
                group.addTask { await pass.upkeep(syncPeriod: syncPeriod) }
                await group.next()
                group.cancelAll()
            }
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
