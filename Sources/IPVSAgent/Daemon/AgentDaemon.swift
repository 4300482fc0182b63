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
    let reconciler: Reconciler
    let mapping: MappingOptions
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    func run() async throws {
        let status = StatusBox()
        let checker = HealthChecker(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let health = HealthLink(checker: checker)
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
            ReconcileLoop(paths: command.manifests, reconciler: reconciler, mapping: mapping,
                          syncPeriod: command.syncPeriod.duration, status: status, health: health,
                          configuration: command.config.map { ConfigurationReload(path: $0, base: command.baseHealth) },
                          logger: logger),
        ]
        // A deleted VIP is bound again at once, not at the next sync period.
        services.append(AddressWatch(interface: command.interface, reconciler: reconciler, logger: logger))
        if command.metricsAddress != "none" {
            services.append(try MetricsServer(address: command.metricsAddress, registry: registry, status: status,
                                              exposeStatus: command.exposeStatus, logger: logger))
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
    let status: StatusBox
    let health: HealthLink
    /// Re-reads `--config` on SIGHUP (`nil` without one).
    let configuration: ConfigurationReload?
    let logger: Logger
    let metrics = AgentMetrics()

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
        // A file that decodes slowly is loaded when it is done, without holding back the others.
        source.lateDecoding = { file in
            pending.add(.file(file))
            continuation.yield(.file(file))
        }
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler {
            pending.add(.hangup)
            continuation.yield(.hangup)
        }
        hangup.resume()
        defer {
            hangup.cancel()
            watcher.stop()
            continuation.finish()
        }
        let reconciler = reconciler, status = status, logger = logger, metrics = metrics, syncPeriod = syncPeriod, health = health
        let mapping = mapping, configuration = configuration

        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await name in watcher.changes {
                        // `..data` is how Kubernetes swaps a mounted ConfigMap's files at once; the
                        // source maps it (and `x.yaml` for `./x.yaml`) to the files it affects.
                        guard source.isRelevant(change: name) else { continue }
                        pending.add(.file(name))
                        continuation.yield(.file(name))
                    }
                }
                group.addTask {
                    var loader = DesiredStateLoader(source: source, options: mapping, logger: logger, metrics: metrics)
                    // The first load binds VIPs and programs IPVS as Services are decoded (`ColdStart`).
                    let coldStart = AgentRunner.coldStart(await reconciler.coldStartBasis(), options: mapping, logger: logger)
                    await Self.reload(&loader, changed: nil, reconciler, health, logger, reason: "start",
                                      owners: await reconciler.owners, coldStart: coldStart)
                    for await _ in triggers {
                        // Debounce: editors write in several steps; one reload after the burst.
                        try? await Task.sleep(for: .milliseconds(100))
                        guard let changed = pending.take() else { continue } // Loaded by an earlier pass.
                        let reason = changed.map { "changed \($0.sorted().joined(separator: ", "))" } ?? "SIGHUP"
                        if changed == nil, let configuration { configuration.reload(into: &loader.builder, logger: logger) }
                        await Self.reload(&loader, changed: changed, reconciler, health, logger, reason: reason)
                    }
                }
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

    private static func reload(_ loader: inout DesiredStateLoader, changed: Set<String>?, _ reconciler: Reconciler,
                               _ health: HealthLink, _ logger: Logger, reason: String, owners: [ServiceKey: ObjectName] = [:],
                               coldStart: ColdStart? = nil) async {
        let loaded = await loader.load(changed: changed, reason: reason, owners: owners, coldStart: coldStart)
        let build = loaded.build
        await reconciler.reconcile(build.state, changed: build.changed, hold: loaded.hold, coldStart: loaded.coldStart)
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
            configuration = try AgentConfiguration.load(path: path, base: base)
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
