import ArgumentParser
import IPVS

/// The command line described to swift-argument-parser, for one purpose: generating shell
/// completion scripts (`ipvsctl --generate-completion-script bash|zsh|fish`). Parsing itself is
/// done by `ArgumentScanner`, which follows popt's rules (see there for why); a unit test checks
/// that both know the same long options.
struct CompletionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: IPVSControl.programName,
        abstract: "Manage the kernel's IPVS table, ipvsadm-compatible.",
        subcommands: [StatusCompletion.self])

    /// Writes the requested completion script and returns the exit status.
    static func run(_ arguments: [String], environment: ControlEnvironment) -> Int32 {
        do {
            _ = try parseAsRoot(arguments)
            environment.writeError("\(IPVSControl.programName): --generate-completion-script needs a shell: bash, zsh or fish\n")
            return ExitStatus.usage
        } catch {
            let text = fullMessage(for: error)
            let status = exitCode(for: error).rawValue
            if status == 0 {
                environment.writeOutput(Array((text + "\n").utf8))
            } else {
                environment.writeError("\(IPVSControl.programName): \(text)\n")
            }
            return status
        }
    }

    // MARK: - Commands

    @Flag(name: [.customShort("A"), .customLong("add-service")], help: "Add a virtual service.") var addService = false
    @Flag(name: [.customShort("E"), .customLong("edit-service")], help: "Edit a virtual service.") var editService = false
    @Flag(name: [.customShort("D"), .customLong("delete-service")], help: "Delete a virtual service.") var deleteService = false
    @Flag(name: [.customShort("C"), .customLong("clear")], help: "Delete every virtual service.") var clear = false
    @Flag(name: [.customShort("R"), .customLong("restore")], help: "Apply rules read from standard input.") var restore = false
    @Flag(name: [.customShort("S"), .customLong("save")], help: "Print the table as rules.") var save = false
    @Flag(name: [.customShort("a"), .customLong("add-server")], help: "Add a real server.") var addServer = false
    @Flag(name: [.customShort("e"), .customLong("edit-server")], help: "Edit a real server.") var editServer = false
    @Flag(name: [.customShort("d"), .customLong("delete-server")], help: "Delete a real server.") var deleteServer = false
    @Flag(name: [.customShort("L"), .customShort("l"), .customLong("list")], help: "List the table.") var list = false
    @Flag(name: [.customShort("Z"), .customLong("zero")], help: "Zero counters.") var zero = false
    @Flag(name: .customLong("set"), help: "Set the tcp, tcpfin and udp timeouts.") var set = false
    @Option(name: .customLong("start-daemon"), help: "Start a sync daemon (ipvsadm only).") var startDaemon: String?
    @Option(name: .customLong("stop-daemon"), help: "Stop a sync daemon (ipvsadm only).") var stopDaemon: String?
    @Flag(name: [.customShort("v"), .customLong("version")], help: "Show the version.") var showVersion = false

    // MARK: - Services and servers

    @Option(name: [.customShort("t"), .customLong("tcp-service")], help: "TCP service HOST[:PORT].") var tcpService: String?
    @Option(name: [.customShort("u"), .customLong("udp-service")], help: "UDP service HOST[:PORT].") var udpService: String?
    @Option(name: .customLong("sctp-service"), help: "SCTP service HOST[:PORT].") var sctpService: String?
    @Option(name: [.customShort("f"), .customLong("fwmark-service")], help: "Firewall-mark service.") var fwmarkService: String?
    @Flag(name: [.customShort("6"), .customLong("ipv6")], help: "The firewall-mark service is IPv6.") var ipv6 = false
    @Option(name: [.customShort("s"), .customLong("scheduler")], help: "Scheduler.",
            completion: .list(Scheduler.allKnown.map(\.rawValue))) var scheduler: String?
    @Option(name: [.customShort("p"), .customLong("persistent")], help: "Persistent service [timeout].") var persistent: String?
    @Option(name: [.customShort("M"), .customLong("netmask")], help: "Persistence granularity.") var netmask: String?
    @Option(name: .customLong("pe"), help: "Persistence engine.", completion: .list(["sip"])) var pe: String?
    @Option(name: [.customShort("b"), .customLong("sched-flags")], help: "Scheduler flags.",
            completion: .list(ServiceFlags.schedulerFlagNames.map(\.name))) var schedFlags: String?
    @Flag(name: [.customShort("o"), .customLong("ops")], help: "One-packet scheduling.") var ops = false
    @Option(name: [.customShort("r"), .customLong("real-server")], help: "Real server HOST[:PORT].") var realServer: String?
    @Flag(name: [.customShort("g"), .customLong("gatewaying")], help: "Direct routing.") var gatewaying = false
    @Flag(name: [.customShort("i"), .customLong("ipip")], help: "Tunnelling.") var ipip = false
    @Flag(name: [.customShort("m"), .customLong("masquerading")], help: "NAT.") var masquerading = false
    @Option(name: [.customShort("w"), .customLong("weight")], help: "Weight 0..65535.") var weight: String?
    @Option(name: [.customShort("x"), .customLong("u-threshold")], help: "Upper threshold.") var uThreshold: String?
    @Option(name: [.customShort("y"), .customLong("l-threshold")], help: "Lower threshold.") var lThreshold: String?
    @Option(name: .customLong("tun-type"), help: "Tunnel type.", completion: .list(["ipip", "gue", "gre"])) var tunType: String?
    @Option(name: .customLong("tun-port"), help: "GUE port.") var tunPort: String?
    @Flag(name: .customLong("tun-nocsum"), help: "No tunnel checksum.") var tunNoCsum = false
    @Flag(name: .customLong("tun-csum"), help: "Tunnel checksum.") var tunCsum = false
    @Flag(name: .customLong("tun-remcsum"), help: "Remote tunnel checksum.") var tunRemCsum = false

    // MARK: - Listing

    @Flag(name: [.customShort("n"), .customLong("numeric")], help: "Numeric output.") var numeric = false
    @Flag(name: [.customShort("c"), .customLong("connection")], help: "List connections.") var connection = false
    @Flag(name: .customLong("timeout"), help: "List timeouts.") var timeout = false
    @Flag(name: .customLong("daemon"), help: "List sync daemons.") var daemon = false
    @Flag(name: .customLong("stats"), help: "Counters.") var stats = false
    @Flag(name: .customLong("rate"), help: "Rates.") var rate = false
    @Flag(name: [.customShort("X"), .customLong("exact")], help: "Exact numbers.") var exact = false
    @Flag(name: .customLong("thresholds"), help: "Thresholds.") var thresholds = false
    @Flag(name: .customLong("persistent-conn"), help: "Persistent connections.") var persistentConn = false
    @Flag(name: .customLong("tun-info"), help: "Tunnel settings.") var tunInfo = false
    @Flag(name: .customLong("nosort"), help: "Kernel order.") var nosort = false
    @Flag(name: .customLong("sort"), help: "Sorted (default).") var sort = false
    @Option(name: .customLong("output"), help: "text or json.", completion: .list(["text", "json"])) var output: String?

    // MARK: - Sync daemon options (accepted for compatibility)

    @Option(name: .customLong("syncid")) var syncid: String?
    @Option(name: .customLong("sync-maxlen")) var syncMaxlen: String?
    @Option(name: .customLong("mcast-interface")) var mcastInterface: String?
    @Option(name: .customLong("mcast-group")) var mcastGroup: String?
    @Option(name: .customLong("mcast-port")) var mcastPort: String?
    @Option(name: .customLong("mcast-ttl")) var mcastTTL: String?

    @Argument(help: "The three timeouts of --set.") var timeouts: [String] = []

    init() {}
}

/// `ipvsctl status` (see `AgentStatusCommand`), described for the completion scripts only.
struct StatusCompletion: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show ipvs-agent's health verdicts per virtual service.")

    @Option(name: .customLong("agent-address"), help: "The agent's --metrics-address (HOST:PORT).") var agentAddress: String?
    @Option(name: .customLong("service"), help: "Only this virtual service or Kubernetes Service.") var service: String?
    @Option(name: .customLong("output"), help: "text or json.", completion: .list(["text", "json"])) var output: String?

    init() {}
}
