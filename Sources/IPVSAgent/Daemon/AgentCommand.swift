import ArgumentParser
import Foundation
import HealthCheck
import IPVS
import Logging
import NodeNetwork

/// `ipvs-agent`: keeps the kernel's IPVS table and the VIPs of a dummy interface equal to the
/// Services and EndpointSlices of Kubernetes manifests.
public struct AgentCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ipvs-agent",
        abstract: "Program IPVS and VIPs from Kubernetes Services and EndpointSlices, incrementally.",
        discussion: """
            Reads v1 Service, discovery.k8s.io/v1 EndpointSlice and v1 Endpoints objects (YAML or JSON, \
            several documents per file, `kind: List` as `kubectl get -o yaml` prints it) and programs one \
            IPVS virtual service per Service port and address (ClusterIPs, and in the Service's IP families \
            external IPs, load balancer IPs and NodePorts on the node's addresses) with the ready endpoints as \
            NAT real servers, as kube-proxy's IPVS mode does. ClusterIPs, external and load balancer IPs are \
            bound on a dummy interface, except the node's own addresses. Only what the agent created (or \
            adopted because it is desired) is ever changed or deleted; it is recorded in --state-file, what \
            it creates before it creates it, so an agent killed at any point owns it again after a restart. \
            One agent per state file: the daemon, --once and --cleanup lock it, and a second one exits 2.

            Of two Service objects with one namespace and name (in two files), or two Services on one \
            address and port, the one that came first keeps it: the one in use already (after a restart, \
            the owner --state-file records), else the older metadata.creationTimestamp, else the first by \
            file path and line. The other is reported at its file and line and changes nothing (a losing \
            object's endpoints in its own file are left out too) until the first is removed. Unspecified, \
            loopback, link-local, multicast and broadcast addresses are refused as ClusterIPs and external \
            IPs (the Service is invalid) and left out as load balancer IPs.

            With --kubeconfig PATH or --in-cluster instead of --manifests, the daemon follows the Kubernetes \
            API server: it lists (in pages) and watches Services and EndpointSlices as client-go's reflector \
            does (kube-proxy's label selection; --service-proxy-name adds the Services labelled with that \
            name), applies nothing before both are listed and nothing is removed while the API server is \
            unreachable, and applies changes together at most once per --min-sync-period.

            Per-Service scheduler: annotate the Service with (mh without flags gets mh-port, as kube-proxy sets it)
              ipvs.swift.dev/scheduler: mh
              ipvs.swift.dev/scheduler-flags: mh-fallback,mh-port

            Health checks per Service (or --health-check tcp for all): a backend failing `fall` checks \
            gets weight 0 (with health-on-failure: remove it is deleted at once, not drained), and its \
            weight back after `rise` successes, in that Service only; /status shows each backend's health \
            and since when. An exec check with health-exec-dynamic-weight: "true" sets the weight from its \
            exit status (2-255: weight status-2; 0: the configured weight; 1: failure).
              ipvs.swift.dev/health-check: http        (tcp, http, https, udp, exec, none)
              ipvs.swift.dev/health-path: /healthz
              ipvs.swift.dev/health-interval: 1s       (also -timeout, -rise, -fall, ...)
            In the agent's configuration file (--config) the same settings, named without the \
            ipvs.swift.dev/health- prefix, set defaults for every Service and checks for single Services \
            (a Service's own annotations still win):
              healthChecks:
                default:  { check: tcp, interval: 1s, fall: 3 }
                services:
                  default/web: { check: http, path: /healthz }
            Below a quorum of healthy backends, keep them all or serve from a "sorry" server:
              ipvs.swift.dev/health-quorum: 2
              ipvs.swift.dev/health-fallback: 10.0.0.9:8080   (or health-quorum-policy: keep-all)
            `ipvsctl status` prints /status per Service (backends, weights, verdicts, quorum).

            Netfilter: the agent owns the nftables table inet ipvs-agent (and no other): it masquerades \
            NodePort, external and load balancer traffic (unless externalTrafficPolicy: Local) and ClusterIP \
            traffic from outside --cluster-cidr (all of it with --masquerade-all), masquerades a pod that \
            reaches itself through a Service, drops new connections to a VIP on a port no Service uses, \
            and keeps sources outside loadBalancerSourceRanges off load balancer IPs. Each sync changes set \
            elements only; every --sync-period writes the table whole; --cleanup deletes it.

            healthCheckNodePort: for each LoadBalancer Service with externalTrafficPolicy: Local, the daemon serves kube-proxy's HTTP answer on spec.healthCheckNodePort (every path; 200 and localEndpoints while this node has ready endpoints of it and /healthz is healthy, else 503), on the NodePort addresses when --nodeport-addresses or --node-ip is given, else on all. A port in use, taken by another Service or below 1024 is logged for that Service and tried again at every sync.

            Removed TCP/SCTP endpoints drain: weight 0 until their connections end or --drain-timeout \
            passes. A Service without endpoints keeps its virtual service with no real servers, so the \
            kernel refuses new connections (ICMP port unreachable, "connection refused") instead of \
            blackholing them.

            Examples:
              Check manifests and show what would change, without changing anything:
                ipvs-agent --manifests Examples/cluster.yaml --dry-run
              Reconcile once (exit status 0 success, 1 applied with errors, 2 could not start):
                ipvs-agent --manifests /etc/ipvs-agent/ --node-name node-1 --once
              Run as a daemon, reloading on file changes and SIGHUP:
                ipvs-agent --manifests /etc/ipvs-agent/ --node-name node-1 --scheduler wlc --sync-period 30s
              The same, with health checks set in the agent's configuration file:
                ipvs-agent --manifests /etc/ipvs-agent/ --config /etc/ipvs-agent.yaml
              In place of kube-proxy's IPVS mode, with kubeadm's kube-proxy ConfigMap mounted (flags win over it):
                ipvs-agent --manifests /etc/ipvs-agent/ --config /var/lib/kube-proxy/config.conf --hostname-override node-1
              Follow the API server, as kube-proxy does (a token, tokenFile or client certificate user):
                ipvs-agent --kubeconfig /etc/ipvs-agent/kubeconfig.conf --node-name node-1
              Remove everything the agent programmed (and nothing else):
                ipvs-agent --cleanup
            """,
        version: "ipvs-agent \(ProjectVersion.current)"
    )

    // MARK: - Desired state

    @Option(name: .long, help: ArgumentHelp("A manifest file or folder of .yaml/.yml/.json files (repeatable). A file deleted from a folder removes its Services; a path given here that disappears is an error and keeps its last good objects. A file over a limit (16 MiB, 64 levels of nesting, 10,000 aliases; see the README) keeps its last good objects; a FIFO or device is skipped.", valueName: "path"))
    public var manifests: [String] = []

    // MARK: API server source (issue 19): --kubeconfig / --in-cluster, instead of --manifests.

    @Option(name: .long, help: ArgumentHelp("Follow the Kubernetes API server of this kubeconfig's current context (list and watch Services and EndpointSlices) instead of reading --manifests. Users authenticated by a program (exec) or plugin (auth-provider) are not supported; use a token, tokenFile or client certificate.", valueName: "path"))
    public var kubeconfig: String?

    @Flag(name: .long, help: "Follow the API server of the cluster the agent runs in, as a pod (KUBERNETES_SERVICE_HOST/_PORT and the service account's token, re-read when it rotates, and CA), instead of reading --manifests.")
    public var inCluster = false

    @Option(name: .long, help: ArgumentHelp("With --kubeconfig or --in-cluster: also serve the Services labelled service.kubernetes.io/service-proxy-name=<name> (without it, as kube-proxy, Services with that label are another proxy's and left out).", valueName: "name"))
    public var serviceProxyName: String?

    // MARK: Mapping

    @Option(name: [.customLong("scheduler"), .customLong("ipvs-scheduler")],
            help: ArgumentHelp("The scheduler of Services without the scheduler annotation: \(Scheduler.knownNames) (default: ipvs.scheduler of a KubeProxyConfiguration --config, else rr). Scheduler flags a Service names for another scheduler are reported and left out. --ipvs-scheduler is kube-proxy's name.", valueName: "name"),
            transform: AgentCommand.knownScheduler)
    public var scheduler: Scheduler?

    @Option(name: .long, help: ArgumentHelp("The health check of Services without the ipvs.swift.dev/health-check annotation: none or tcp (a connect every second; a pod down after 2 failures gets weight 0, back after 2 successes). Services tune or enable checks with ipvs.swift.dev/health-* annotations.", valueName: "kind"))
    public var healthCheck: String = "none"

    @Option(name: .long, help: ArgumentHelp(
        "The agent's configuration file (YAML or JSON), of either kind. kind: AgentConfiguration: health check defaults for every Service and settings for single Services (healthChecks.default, healthChecks.services), re-read on SIGHUP (with --manifests; read at start only with --kubeconfig or --in-cluster); see Examples/agent-config.yaml. kind: KubeProxyConfiguration: kube-proxy's own file (the kube-proxy ConfigMap's config.conf, mode: ipvs), read at start only (restart the agent to apply a change); its fields set what the flags of the same meaning set, and a flag given here wins; a field the agent does not implement is a warning naming it, an unknown field an error; see Examples/kube-proxy-configmap.yaml. A file with errors is refused whole.",
        valueName: "path"))
    public var config: String?

    @Option(name: [.customLong("node-name"), .customLong("hostname-override")],
            help: ArgumentHelp("This node's name, for `Local` traffic policies, the node hints of EndpointSlices (hints.forNodes) and, with --kubeconfig or --in-cluster, the Node object followed for its zone (default: hostnameOverride of a KubeProxyConfiguration --config, else the host name). --hostname-override is kube-proxy's name.", valueName: "name"))
    public var nodeName: String?

    @Option(name: .long, help: ArgumentHelp("With --manifests: this node's zone, for the zone hints of EndpointSlices (hints.forZones), as kube-proxy takes it from its Node's topology.kubernetes.io/zone label (default: none, hints for zones are not followed). With --kubeconfig or --in-cluster the label of this node's Node object is used instead, and this flag is refused.", valueName: "zone"))
    public var nodeZone: String?

    @Option(name: .long, help: ArgumentHelp("An address NodePorts listen on (repeatable; default: every address of the node's interfaces, lo's /32s included, but the dummy interface's, 127.0.0.0/8, ::1 and link-local ones). healthCheckNodePorts listen on these addresses too when the flag is given (else on every address).", valueName: "address"))
    public var nodeIP: [String] = []

    // MARK: - Kernel

    @Option(name: .long, help: ArgumentHelp("The dummy interface holding the VIPs.", valueName: "name"))
    public var interface: String = "kube-ipvs0"

    @Flag(name: [.customLong("strict-arp"), .customLong("ipvs-strict-arp")],
          help: "Set arp_ignore=1/arp_announce=2 so the node does not answer ARP for the VIPs (needed with MetalLB-style L2 announcements); also on with ipvs.strictARP: true in a KubeProxyConfiguration --config. --ipvs-strict-arp is kube-proxy's name.")
    public var strictARP = false

    @Option(name: .customLong("ipvs-tcp-timeout"), help: ArgumentHelp("The kernel's IPVS timeout of idle established TCP connections, set at start (Go's format: 900s, 15m0s; whole seconds; 0: leave the node's value, the default), as kube-proxy's flag and ipvsadm --set.", valueName: "duration"))
    public var ipvsTCPTimeout: DurationArgument?

    @Option(name: .customLong("ipvs-tcpfin-timeout"), help: ArgumentHelp("The kernel's IPVS timeout of TCP connections after a FIN, set at start (0: leave the node's value, the default), as kube-proxy's flag.", valueName: "duration"))
    public var ipvsTCPFinTimeout: DurationArgument?

    @Option(name: .customLong("ipvs-udp-timeout"), help: ArgumentHelp("The kernel's IPVS timeout of UDP flows, set at start (0: leave the node's value, the default), as kube-proxy's flag.", valueName: "duration"))
    public var ipvsUDPTimeout: DurationArgument?

    @Option(name: .customLong("ipvs-exclude-cidrs"), help: ArgumentHelp("kube-proxy's comma-separated CIDRs whose virtual services its cleanup leaves alone. Checked and accepted: this agent never changes or deletes a virtual service it did not create or adopt for a Service, whatever its address.", valueName: "cidrs"))
    public var ipvsExcludeCIDRs: String?

    @Option(name: .long, help: ArgumentHelp("Where the agent records what it owns; /run is cleared at boot, like IPVS. One agent per file: the daemon, --once and --cleanup hold <path>.lock while they run, and another one on the same file exits 2 naming the pid holding it.", valueName: "path"))
    public var stateFile: String = "/run/ipvs-agent/state.json"

    // MARK: - Netfilter (nft: the agent's nftables table, see AgentCommand+PacketFilter.swift)

    @Option(name: .customLong("cluster-cidr"), help: ArgumentHelp("The pod network in CIDR notation (comma-separated or repeated, one per family, as kube-proxy's --cluster-cidr): traffic to ClusterIPs from outside it is masqueraded. Without it (and without --masquerade-all) ClusterIP traffic keeps its source address.", valueName: "cidr"))
    public var clusterCIDR: [String] = []

    @Flag(name: .long, help: "Masquerade all traffic to ClusterIPs, from pods too (kube-proxy's --masquerade-all).")
    public var masqueradeAll = false

    @Option(name: .long, help: ArgumentHelp("NodePorts listen on the node's addresses inside these CIDRs (comma-separated or repeated, as kube-proxy's --nodeport-addresses), loopback ones only when a CIDR holds them. Default: see --node-ip; not with --node-ip. healthCheckNodePorts listen on the same addresses (without the flag: on every address).", valueName: "cidr"))
    public var nodeportAddresses: [String] = []

    // MARK: - Timing

    @Option(name: [.customLong("sync-period"), .customLong("ipvs-sync-period")],
            help: ArgumentHelp("How often the kernel is read back and drift repaired, a deleted dummy interface and its VIPs included (Go's format: 30s, 1m30s, …; default: ipvs.syncPeriod of a KubeProxyConfiguration --config, else 30s). A removed VIP and the dummy interface deleted or set down are repaired at once, when the kernel announces it. --ipvs-sync-period is kube-proxy's name.", valueName: "duration"))
    public var syncPeriod: DurationArgument?

    @Option(name: [.customLong("min-sync-period"), .customLong("ipvs-min-sync-period")],
            help: ArgumentHelp("The least time between two applications of changes, as kube-proxy's flag: changes that come meanwhile are applied together (Go's format; default: ipvs.minSyncPeriod of a KubeProxyConfiguration --config, else 0s with --manifests (at once, after a 100ms debounce) and 1s with --kubeconfig or --in-cluster).", valueName: "duration"))
    public var ipvsMinSyncPeriod: DurationArgument?

    @Option(name: .long, help: ArgumentHelp("How long a removed TCP/SCTP endpoint may keep its connections before it is deleted (Go's format: 60s, 2m0s, …).", valueName: "duration"))
    public var drainTimeout = DurationArgument(.seconds(60))

    // MARK: - Operation

    @Option(name: [.customLong("metrics-address"), .customLong("metrics-bind-address")],
            help: ArgumentHelp("Where /metrics, /healthz, /livez and /status are served (`none` to disable; an address alone gets port 10249; default: metricsBindAddress of a KubeProxyConfiguration --config, else 127.0.0.1:10249). /status, which lists backends and check results, is served on a loopback address only, unless --expose-status. --metrics-bind-address is kube-proxy's name.", valueName: "host:port"))
    public var metricsAddress: String?

    @Option(name: .customLong("healthz-bind-address"),
            help: ArgumentHelp("Where /healthz and /livez are served for liveness and load-balancer probes, as kube-proxy's (`none` to disable; an address alone gets port 10256; default: healthzBindAddress of a KubeProxyConfiguration --config, else 0.0.0.0:10256). Healthy unless a change has waited longer than twice --sync-period to be applied, and always while starting, until the first load is applied; a Service the kernel refuses does not make it unhealthy.", valueName: "host:port"))
    public var healthzBindAddress: String?

    @Flag(name: .customLong("bind-address-hard-fail"), help: "Stop the agent when the --metrics-address or --healthz-bind-address port cannot be bound, as kube-proxy's flag (else the error is logged and the agent runs without that server).")
    public var bindAddressHardFail = false

    @Flag(name: .long, help: "Serve /status on a --metrics-address that is not loopback too (anyone who reaches it sees every backend's address and check result).")
    public var exposeStatus = false

    @Flag(name: .long, help: "Print the operations that would be applied (in `ipvsadm -S` form) and change nothing; takes no lock, so it runs beside a running agent.")
    public var dryRun = false

    @Flag(name: .long, help: "Reconcile once, then exit: 0 success, 1 applied with errors (logged), 2 could not start (no IPVS, no permission, another agent on --state-file).")
    public var once = false

    @Flag(name: .long, help: "Remove every service and VIP the agent owns (nothing else), and the dummy interface when the agent created it and nothing else is bound on it, then exit: 0 success, 1 with errors, 2 could not start (no IPVS, no permission, an unreadable --state-file, another agent on it).")
    public var cleanup = false

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    public var logLevel: Logger.Level = .info

    @Option(name: .long, help: ArgumentHelp(
        "text, or json: one object per line on standard error, keys sorted (time in UTC with milliseconds, level, label, message, and the event's fields). Both escape control characters in every value, so one line is one event.",
        valueName: "format"))
    public var logFormat: LogFormat = .text

    public init() {}

    // MARK: - Validation

    /// `--scheduler`: one of the kernel's schedulers (`Scheduler.allKnown`), parsed once here.
    static func knownScheduler(_ text: String) throws -> Scheduler {
        let scheduler = Scheduler(rawValue: text)
        guard scheduler.isKnown else { throw ValidationError("unknown scheduler '\(text)'; use one of \(Scheduler.knownNames)") }
        return scheduler
    }

    /// Exactly one source of desired state: `--manifests`, `--kubeconfig` or `--in-cluster`; none is
    /// accepted while a `--config` file that may name one is still to be read.
    func validateSource(fileMayNameIt: Bool) throws {
        let sources = [!manifests.isEmpty, kubeconfig != nil, inCluster].filter { $0 }.count
        if !cleanup, sources == 0, !fileMayNameIt {
            throw ValidationError("give at least one --manifests file or folder, or --kubeconfig PATH or --in-cluster to follow the API server, or a KubeProxyConfiguration --config with clientConnection.kubeconfig (or --cleanup)")
        }
        if sources > 1 {
            throw ValidationError("give one source of Services: --manifests, --kubeconfig or --in-cluster, not several")
        }
        if (kubeconfig != nil || inCluster), once || dryRun {
            throw ValidationError("--once and --dry-run read --manifests only; the API server is followed by the daemon")
        }
        if (kubeconfig != nil || inCluster), nodeZone != nil {
            throw ValidationError("--node-zone is for --manifests only: with the API server, the zone is the \(KubeNode.zoneLabel) label of this node's Node object; drop --node-zone")
        }
    }

    /// This command with the flags a KubeProxyConfiguration gives where the command line gave none, as
    /// kube-proxy resolves them: `clusterCIDR`, `nodePortAddresses` (unless `--node-ip`),
    /// `iptables.masqueradeAll`, and `clientConnection.kubeconfig` when no source flag was given.
    func applying(_ values: KubeProxyConfiguration.FlagValues) -> AgentCommand {
        var command = self
        if command.clusterCIDR.isEmpty, let cidrs = values.clusterCIDR { command.clusterCIDR = [cidrs] }
        if command.nodeportAddresses.isEmpty, command.nodeIP.isEmpty { command.nodeportAddresses = values.nodePortAddresses }
        if values.masqueradeAll { command.masqueradeAll = true }
        if command.manifests.isEmpty, command.kubeconfig == nil, !command.inCluster { command.kubeconfig = values.kubeconfig }
        return command
    }

    public mutating func validate() throws {
        // A --config file may name the source (a KubeProxyConfiguration's kubeconfig): checked again in run().
        try validateSource(fileMayNameIt: config != nil)
        if [dryRun && cleanup, once && cleanup].contains(true) {
            throw ValidationError("--cleanup runs alone; drop --once and --dry-run")
        }
        guard ["none", "tcp"].contains(healthCheck) else {
            throw ValidationError("--health-check: '\(healthCheck)' is not a default check; use none or tcp (other checks and settings: healthChecks.default in --config, or ipvs.swift.dev/health-* annotations)")
        }

        for address in nodeIP where IPAddress(address) == nil {
            throw ValidationError("--node-ip '\(address)' is not an IPv4 or IPv6 address")
        }
        try validatePacketFilter() // nft
        try ProxySettings.validate(self)
    }

    /// The API server to follow (`--kubeconfig`, `--in-cluster`), `nil` for the files source.
    func apiServerConfiguration() throws(APIServerError) -> APIServerConfiguration? {
        if let kubeconfig { return try KubeConfig.load(path: kubeconfig) }
        return inCluster ? try APIServerConfiguration.inCluster() : nil
    }

    /// The health check of every Service before the configuration file: `--health-check`.
    var baseHealth: HealthCheckConfiguration {
        healthCheck == "tcp" ? .default : MappingOptions.noHealthChecks
    }

    // MARK: - Run

    public func run() async throws {
        if !cleanup, !dryRun, !once {
            // Daemon mode reloads on SIGHUP, whose default action is to end the process. The reload
            // handler comes with the reconcile loop, after the kernel has been read (which takes
            // long on a large table), so SIGHUP is ignored from here on. A SIGHUP ignored before
            // the handler exists needs no reload afterwards: the loop installs its handler before
            // the first load, which reads every file as it is after that signal.
            signal(SIGHUP, SIG_IGN)
        }
        LogSetup.bootstrap(format: logFormat, level: logLevel)
        let logger = Logger(label: "ipvs-agent")
        // --config is read once, here: a KubeProxyConfiguration gives the flags the command line left
        // out, and the runner reports the file's errors before it changes anything.
        let file = config.map { path in Result { () throws(AgentConfigurationError) in try ConfigurationFile.load(path: path, base: baseHealth) } }
        var command = self
        if let kubeProxy = (try? file?.get())?.kubeProxy {
            command = applying(kubeProxy.flagValues)
        }
        try command.validateSource(fileMayNameIt: false)
        let runner = AgentRunner(command: command, configurationFile: file, logger: logger)
        if cleanup {
            try await runner.cleanup()
        } else if dryRun {
            try await runner.dryRun()
        } else if once {
            try await runner.once()
        } else {
            // Only the daemon runs health checks, which hold a socket each while in flight.
            if let raised = OpenFileLimit.raiseToHardLimit() {
                logger.info("raised the open files limit for health checks", metadata: ["from": "\(raised.from)", "to": "\(raised.to)"])
            }
            try await runner.daemon()
        }
    }
}
