import ArgumentParser
import Foundation
import HealthCheck
import IPVS
import Logging
import Metrics
import NodeNetwork
import Prometheus

/// The four modes of the command (`--cleanup`, `--dry-run`, `--once`, daemon) over shared setup.
struct AgentRunner {
    let command: AgentCommand
    let logger: Logger

    // MARK: - Setup

    var reconcilerOptions: Reconciler.Options {
        Reconciler.Options(interface: command.interface, drainTimeout: command.drainTimeout.duration)
    }

    /// Reads `--config` (without one: `--health-check` for every Service). A file with errors
    /// stops the agent before it changes anything, each problem logged with its file and line.
    func configuration() throws -> AgentConfiguration {
        guard let path = command.config else { return AgentConfiguration(healthDefault: command.baseHealth) }
        do {
            return try AgentConfiguration.load(path: path, base: command.baseHealth)
        } catch {
            for problem in error.problems { logger.critical("\(problem)") }
            logger.critical("cannot start: the configuration file has errors; nothing was changed", metadata: ["config": "\(path)"])
            throw ExitCode(2)
        }
    }

    func mappingOptions(links: LinkManagerBackend?, configuration: AgentConfiguration) -> MappingOptions {
        var addresses = command.nodeIP.compactMap(IPAddress.init)
        var local: [IPAddress] = []
        if let links {
            do {
                local = try links.localAddresses(excluding: command.interface)
                if addresses.isEmpty { addresses = LinkManager.nodePortAddresses(among: local) }
            } catch {
                logger.warning("cannot list the node's addresses; NodePorts get no addresses (use --node-ip), and an external IP equal to one of them would be bound on \(command.interface)",
                               metadata: ["error": "\(error)"])
            }
        }
        logger.debug("NodePort addresses", metadata: ["addresses": "\(addresses.map(\.description))"])
        return MappingOptions(scheduler: Scheduler(rawValue: command.scheduler), nodeName: command.nodeName ?? Self.hostName,
                              nodeAddresses: addresses, localAddresses: Set(local),
                              health: configuration.healthDefault, serviceHealth: configuration.serviceHealth,
                              allowed: configuration.allowed)
    }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func openLinks() throws -> LinkManagerBackend {
        do {
            return try LinkManagerBackend()
        } catch {
            logger.critical("cannot open rtnetlink to manage interfaces", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
    }

    /// Takes the state file's lock (`StateFileLock`), in every mode that writes the state file: a
    /// second agent on the same state file stops here, before it changes anything (exit 2). The
    /// caller keeps the lock alive until it exits (`withExtendedLifetime`). `--dry-run` writes
    /// nothing, so it runs beside an agent without the lock.
    func lockStateFile() throws -> StateFileLock {
        do {
            return try StateFileLock(statePath: command.stateFile)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(2)
        }
    }

    func makeReconciler(links: LinkManagerBackend?) throws -> Reconciler {
        let store = OwnershipStore(path: command.stateFile)
        do {
            return Reconciler(ipvs: try IPVSClient(), vips: links, store: store, options: reconcilerOptions, logger: logger)
        } catch {
            logger.critical("cannot open the kernel's IPVS", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
    }

    /// The started reconciler of a dry run: over the kernel's IPVS (`makeIPVS`), or over an empty
    /// kernel, with a warning on standard error, when IPVS cannot be opened (no `ip_vs`) or when
    /// the kernel refuses to show its table (EPERM: not root, no `CAP_NET_ADMIN`), so that a dry
    /// run works anywhere.
    func startDryRunReconciler(links: (any VIPBackend)?,
                               makeIPVS: () throws -> sending any IPVSBackend = { try IPVSClient() }) async throws -> Reconciler {
        let store = OwnershipStore(path: command.stateFile)
        func empty() async throws -> Reconciler {
            let reconciler = Reconciler(ipvs: EmptyIPVS(), vips: nil, store: store, options: reconcilerOptions, logger: logger)
            try await reconciler.start(createInterface: false)
            return reconciler
        }
        let ipvs: any IPVSBackend
        do {
            ipvs = try makeIPVS()
        } catch {
            logger.warning("cannot read the kernel's IPVS; showing the operations for an empty kernel", metadata: ["error": "\(error)"])
            return try await empty()
        }
        let reconciler = Reconciler(ipvs: ipvs, vips: links, store: store, options: reconcilerOptions, logger: logger)
        do {
            try await reconciler.start(createInterface: false)
            return reconciler
        } catch let error as IPVSError where error.kind == .permissionDenied {
            logger.warning("the kernel refuses to show its IPVS table without CAP_NET_ADMIN (run as root to compare with it); showing the operations for an empty kernel",
                           metadata: ["error": "\(error)"])
            return try await empty()
        }
    }

    /// Sets the sysctls IPVS needs (as kube-proxy does), logging each change.
    func applySysctls() {
        for setting in IPVSSysctls.required(strictARP: command.strictARP) {
            do {
                if let previous = try Sysctl.ensure(setting.name, setting.value) {
                    logger.notice("set sysctl", metadata: ["sysctl": "\(setting.name)", "value": "\(setting.value)",
                                                            "previous": "\(previous)", "reason": "\(setting.reason)"])
                }
            } catch {
                logger.error("cannot set sysctl", metadata: ["sysctl": "\(setting.name)", "value": "\(setting.value)",
                                                              "reason": "\(setting.reason)", "error": "\(error)"])
            }
        }
    }

    /// The cold start of a first load (`ColdStart`), over an IPVS socket and an rtnetlink socket of
    /// its own; `nil` once the reconciler reconciled, or when IPVS cannot be opened a second time
    /// (the reconcile then programs everything).
    static func coldStart(_ basis: ColdStart.Basis?, options: MappingOptions, logger: Logger) -> ColdStart? {
        guard let basis else { return nil }
        let ipvs: IPVSClient
        do {
            ipvs = try IPVSClient()
        } catch {
            logger.warning("cannot open IPVS for the cold start; the first reconcile programs everything", metadata: ["error": "\(error)"])
            return nil
        }
        var vips: LinkManagerBackend?
        if basis.interface != nil {
            do {
                vips = try LinkManagerBackend()
            } catch {
                logger.warning("cannot open rtnetlink for the cold start; the first reconcile binds every VIP", metadata: ["error": "\(error)"])
            }
        }
        return ColdStart(basis, ipvs: ipvs, vips: vips, options: options)
    }

    // MARK: - Modes

    func cleanup() async throws {
        let lock = try lockStateFile()
        let reconciler = try makeReconciler(links: try openLinks())
        do {
            try await reconciler.start(createInterface: false)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        let report = await reconciler.cleanup()
        withExtendedLifetime(lock) {}
        try finish(report, issues: [], what: "cleanup")
    }

    func dryRun() async throws {
        let configuration = try configuration()
        let links = try? LinkManagerBackend()
        var loader = DesiredStateLoader(source: ManifestSource(paths: command.manifests, logger: logger),
                                        options: mappingOptions(links: links, configuration: configuration), logger: logger)
        let reconciler = try await startDryRunReconciler(links: links)
        let loaded = await loader.load(reason: "dry run", owners: await reconciler.owners)
        let plan = await reconciler.dryRun(loaded.build.state, hold: loaded.hold)
        for line in IPVSSaveFormatter.lines(plan, interface: command.interface) { print(line) }
        if !loaded.issues.isEmpty { throw ExitCode(1) }
        Self.exitNow()
    }

    func once() async throws {
        let configuration = try configuration()
        let lock = try lockStateFile()
        let links = try openLinks()
        applySysctls()
        let options = mappingOptions(links: links, configuration: configuration)
        var loader = DesiredStateLoader(source: ManifestSource(paths: command.manifests, logger: logger), options: options, logger: logger)
        let reconciler = try makeReconciler(links: links)
        do {
            try await reconciler.start()
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        // VIPs are bound and IPVS programmed while the manifests are still decoded: on a cold start
        // decoding takes about as long as either.
        let coldStart = Self.coldStart(await reconciler.coldStartBasis(), options: options, logger: logger)
        let loaded = await loader.load(reason: "once", owners: await reconciler.owners, coldStart: coldStart)
        var report = await reconciler.reconcile(loaded.build.state, changed: nil, hold: loaded.hold, coldStart: loaded.coldStart)
        let drains = await reconciler.checkDrains()
        report.applied += drains.applied
        report.failures += drains.failures
        try finish(report, issues: loaded.issues, what: "reconcile")
        withExtendedLifetime(lock) {}
        Self.exitNow()
    }

    /// Ends a one-shot run here, with its objects still in memory. Returning would first free each
    /// decoded manifest, mapped Service and model entry one at a time: at 10,000 Services that is a
    /// part of a cold start worth skipping, and the kernel takes the memory back at once. Logs are
    /// written as they are made; standard output is flushed by `exit`.
    private static func exitNow() -> Never {
        exit(EXIT_SUCCESS)
    }

    func daemon() async throws {
        // Metrics handles are made by the reconciler, so the factory comes first.
        let configuration = try configuration()
        let lock = try lockStateFile()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let links = try openLinks()
        applySysctls()
        let options = mappingOptions(links: links, configuration: configuration)
        let reconciler = try makeReconciler(links: links)
        do {
            try await reconciler.start()
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        try await AgentDaemon(command: command, reconciler: reconciler, mapping: options, registry: registry, logger: logger).run()
        withExtendedLifetime(lock) {}
    }

    private func finish(_ report: ReconcileReport, issues: [ManifestIssue], what: String) throws {
        for failure in report.failures { logger.error("\(failure)") }
        let problems = issues.count + report.failures.count
        logger.info("\(what) finished", metadata: ["operations": "\(report.applied)", "problems": "\(problems)"])
        if problems > 0 { throw ExitCode(1) }
    }
}

/// A kernel without IPVS services, for dry runs where IPVS cannot be read.
final class EmptyIPVS: IPVSBackend {
    func table() throws -> [ServiceTableEntry] { [] }
    func realServers(of key: ServiceKey) throws -> [RealServer] { [] }
    func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] { operations.map { _ in .success(()) } }
}
