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
    /// `--config` as the command read it (`nil` without one).
    let configurationFile: Result<ConfigurationFile, AgentConfigurationError>?
    let logger: Logger

    // MARK: - Setup

    var reconcilerOptions: Reconciler.Options {
        Reconciler.Options(interface: command.interface, drainTimeout: command.drainTimeout.duration)
    }

    /// Reads `--config` (without one: `--health-check` for every Service) and resolves the settings
    /// kube-proxy's flags and configuration share (flags first). A file with errors stops the agent
    /// before it changes anything, each problem logged with its file and line; each field of a
    /// `KubeProxyConfiguration` the agent does not implement is logged once as a warning.
    func configuration() throws -> (AgentConfiguration, ProxySettings) {
        guard let path = command.config, let configurationFile else {
            return (AgentConfiguration(healthDefault: command.baseHealth), ProxySettings(command: command))
        }
        let file: ConfigurationFile
        do {
            file = try configurationFile.get()
        } catch {
            for problem in error.problems { logger.critical("\(problem)") }
            logger.critical("cannot start: the configuration file has errors; nothing was changed", metadata: ["config": "\(path)"])
            throw ExitCode(2)
        }
        for warning in file.kubeProxy?.warnings ?? [] { logger.warning("\(warning)") }
        return (file.agentConfiguration(base: command.baseHealth), ProxySettings(command: command, file: file.kubeProxy))
    }

    func mappingOptions(links: LinkManagerBackend?, configuration: AgentConfiguration, settings: ProxySettings) -> MappingOptions {
        var addresses = command.nodeIP.compactMap(IPAddress.init)
        var local: [IPAddress] = []
        if let links {
            do {
                local = try links.localAddresses(excluding: command.interface)
                if !command.nodeportAddresses.isEmpty { addresses = command.nodePortAddresses(among: local) } // nft
                if addresses.isEmpty { addresses = LinkManager.nodePortAddresses(among: local) }
            } catch {
                logger.warning("cannot list the node's addresses; NodePorts get no addresses (use --node-ip), and an external IP equal to one of them would be bound on \(command.interface)",
                               metadata: ["error": "\(error)"])
            }
        }
        logger.debug("NodePort addresses", metadata: ["addresses": "\(addresses.map(\.description))"])
        return MappingOptions(scheduler: settings.scheduler, nodeName: settings.nodeName ?? Self.hostName,
                              nodeAddresses: addresses, localAddresses: Set(local), zone: command.nodeZone,
                              health: configuration.healthDefault, serviceHealth: configuration.serviceHealth,
                              allowed: configuration.allowed)
    }

    /// The API server to follow (issue 19), its TLS material checked: a configuration that
    /// cannot be used stops the agent before it changes anything.
    func apiServerConfiguration() throws -> APIServerConfiguration? {
        do {
            guard let apiServer = try command.apiServerConfiguration() else { return nil }
            _ = try APIClient(configuration: apiServer)
            return apiServer
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(2)
        }
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
    func applySysctls(_ settings: ProxySettings) {
        for setting in IPVSSysctls.required(strictARP: settings.strictARP) {
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

    /// Sets the kernel's IPVS timeouts (`--ipvs-tcp-timeout`, …) when one is given, as kube-proxy does
    /// at start (`ipvsadm --set`); a zero one keeps the kernel's. A kernel that refuses stops the agent
    /// before it programs anything, as kube-proxy.
    func applyTimeouts(_ settings: ProxySettings) throws {
        guard settings.timeouts != Timeouts() else { return }
        do {
            try IPVSClient().setTimeouts(settings.timeouts)
            logger.notice("set IPVS timeouts", metadata: ["tcp_seconds": "\(settings.timeouts.tcp)", "tcpfin_seconds": "\(settings.timeouts.tcpFin)",
                                                         "udp_seconds": "\(settings.timeouts.udp)"])
        } catch {
            logger.critical("cannot start: cannot set the IPVS timeouts (--ipvs-tcp-timeout, --ipvs-tcpfin-timeout, --ipvs-udp-timeout)",
                            metadata: ["error": "\(error)"])
            throw ExitCode(2)
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
        var report = await reconciler.cleanup()
        report.failures += deletePacketFilter() // nft
        withExtendedLifetime(lock) {}
        try finish(report, issues: [], what: "cleanup")
    }

    func dryRun() async throws {
        let (configuration, settings) = try configuration()
        let links = try? LinkManagerBackend()
        var loader = DesiredStateLoader(source: ManifestSource(paths: command.manifests, logger: logger),
                                        options: mappingOptions(links: links, configuration: configuration, settings: settings), logger: logger)
        let reconciler = try await startDryRunReconciler(links: links)
        let loaded = await loader.load(reason: "dry run", owners: await reconciler.owners)
        let plan = await reconciler.dryRun(loaded.build.state, hold: loaded.hold)
        for line in IPVSSaveFormatter.lines(plan, interface: command.interface) { print(line) }
        if !loaded.issues.isEmpty { throw ExitCode(1) }
        Self.exitNow()
    }

    func once() async throws {
        let (configuration, settings) = try configuration()
        let lock = try lockStateFile()
        let links = try openLinks()
        applySysctls(settings)
        try applyTimeouts(settings)
        let options = mappingOptions(links: links, configuration: configuration, settings: settings)
        var loader = DesiredStateLoader(source: ManifestSource(paths: command.manifests, logger: logger), options: options, logger: logger)
        let packetFilter = try makePacketFilter()
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
        // The nftables table is written while the reconcile finishes IPVS: neither waits for the other.
        let pending = packetFilter.prepare(&loader.builder)
        let filtered = Task.detached { packetFilter.apply(pending) }
        var report = await reconciler.reconcile(loaded.build.state, changed: nil, hold: loaded.hold, coldStart: loaded.coldStart)
        if !(await filtered.value) { report.failures.append(PacketFilterDriver.notSynced) } // nft
        report.add(await reconciler.checkDrains())
        try finish(report, issues: loaded.issues, what: "reconcile")
        withExtendedLifetime(lock) {}
        Self.exitNow()
    }

    /// Ends a one-shot run (or a stopped daemon) here, with its objects still in memory. Returning would first free each
    /// decoded manifest, mapped Service and model entry one at a time, a part of a large cold start
    /// worth skipping; the kernel takes the memory back at once. Logs are
    /// written as they are made; standard output is flushed by `exit`.
    private static func exitNow() -> Never {
        exit(EXIT_SUCCESS)
    }

    func daemon() async throws {
        // Metrics handles are made by the reconciler, so the factory comes first.
        let (configuration, settings) = try configuration()
        let apiServer = try apiServerConfiguration() // API server source (issue 19)
        let lock = try lockStateFile()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(HelpingMetricsFactory(registry: registry))
        let links = try openLinks()
        applySysctls(settings)
        try applyTimeouts(settings)
        let options = mappingOptions(links: links, configuration: configuration, settings: settings)
        let reconciler = try makeReconciler(links: links)
        do {
            try await reconciler.start()
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        try await AgentDaemon(command: command, settings: settings, reconciler: reconciler, mapping: options, registry: registry,
                              logger: logger, apiServer: apiServer, packetFilter: try makePacketFilter()).run() // nft
        withExtendedLifetime(lock) {}
        // Stopped, the kernel's state left in place: the objects of a large cluster are not freed
        // one by one on the way out (seconds in an emulator), which a pod's grace period would pay.
        Self.exitNow()
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
    func info() throws -> IPVSInfo { IPVSInfo(version: 0, connectionTableSize: 0) }
    func services() throws -> [VirtualService] { [] }
    func service(_ key: ServiceKey) throws -> VirtualService { throw IPVSError(kind: .serviceNotFound, operation: "read service \(key)") }
    func table() throws -> [ServiceTableEntry] { [] }
    func realServers(of key: ServiceKey) throws -> [RealServer] { [] }
    func timeouts() throws -> Timeouts { Timeouts(tcp: 0, tcpFin: 0, udp: 0) }
    func setTimeouts(_ timeouts: Timeouts) throws {}
    func syncDaemons() throws -> [SyncDaemon] { [] }
    func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] { operations.map { _ in .success(()) } }
}
