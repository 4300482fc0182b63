/// The commands of the ipvsadm-compatible command line, in the order of ipvsadm's
/// command/option compatibility table (whose first violation is the one reported).
enum ControlCommand: Int, CaseIterable, Sendable {
    case addService, editService, deleteService, flush, list, addServer, deleteServer, editServer
    case setTimeouts, startDaemon, stopDaemon, restore, save, zero

    /// How the user spells the command: `-A (--add-service)`.
    var spelling: String {
        switch self {
        case .addService: "-A (--add-service)"
        case .editService: "-E (--edit-service)"
        case .deleteService: "-D (--delete-service)"
        case .flush: "-C (--clear)"
        case .list: "-L (--list)"
        case .addServer: "-a (--add-server)"
        case .deleteServer: "-d (--delete-server)"
        case .editServer: "-e (--edit-server)"
        case .setTimeouts: "--set"
        case .startDaemon: "--start-daemon"
        case .stopDaemon: "--stop-daemon"
        case .restore: "-R (--restore)"
        case .save: "-S (--save)"
        case .zero: "-Z (--zero)"
        }
    }

    /// Whether the command changes the kernel's table (and may therefore appear in `-R` input).
    var isChange: Bool {
        switch self {
        case .addService, .editService, .deleteService, .flush, .addServer, .deleteServer, .editServer,
             .setTimeouts, .zero: true
        case .list, .save, .restore, .startDaemon, .stopDaemon: false
        }
    }
}

/// The options that ipvsadm checks against each command, in ipvsadm's order.
enum ControlOption: Int, CaseIterable, Sendable {
    case numeric, connection, service, scheduler, persistent, netmask, realServer, forwarding
    case weight, upperThreshold, lowerThreshold, mcastInterface, timeout, daemon, stats, rate
    case thresholds, persistentConnections, noSort, syncID, exact, onePacket, persistenceEngine
    case schedulerFlags, mcastGroup, mcastPort, mcastTTL, syncMaxLength, tunnelInfo, tunnelType
    case tunnelPort, tunnelNoChecksum, tunnelChecksum, tunnelRemoteChecksum

    /// How the user spells the option: `-w (--weight)`.
    var spelling: String {
        switch self {
        case .numeric: "-n (--numeric)"
        case .connection: "-c (--connection)"
        case .service: "a virtual service (-t, -u, --sctp-service or -f)"
        case .scheduler: "-s (--scheduler)"
        case .persistent: "-p (--persistent)"
        case .netmask: "-M (--netmask)"
        case .realServer: "-r (--real-server)"
        case .forwarding: "a forwarding method (-g, -i or -m)"
        case .weight: "-w (--weight)"
        case .upperThreshold: "-x (--u-threshold)"
        case .lowerThreshold: "-y (--l-threshold)"
        case .mcastInterface: "--mcast-interface"
        case .timeout: "--timeout"
        case .daemon: "--daemon"
        case .stats: "--stats"
        case .rate: "--rate"
        case .thresholds: "--thresholds"
        case .persistentConnections: "--persistent-conn"
        case .noSort: "--nosort"
        case .syncID: "--syncid"
        case .exact: "-X (--exact)"
        case .onePacket: "-o (--ops)"
        case .persistenceEngine: "--pe"
        case .schedulerFlags: "-b (--sched-flags)"
        case .mcastGroup: "--mcast-group"
        case .mcastPort: "--mcast-port"
        case .mcastTTL: "--mcast-ttl"
        case .syncMaxLength: "--sync-maxlen"
        case .tunnelInfo: "--tun-info"
        case .tunnelType: "--tun-type"
        case .tunnelPort: "--tun-port"
        case .tunnelNoChecksum: "--tun-nocsum"
        case .tunnelChecksum: "--tun-csum"
        case .tunnelRemoteChecksum: "--tun-remcsum"
        }
    }
}

/// A set of `ControlOption`s.
struct ControlOptions: OptionSet, Hashable, Sendable {
    var rawValue: UInt64
    init(rawValue: UInt64) { self.rawValue = rawValue }
    init(_ option: ControlOption) { rawValue = 1 << UInt64(option.rawValue) }
    init(_ options: [ControlOption]) { rawValue = options.reduce(0) { $0 | 1 << UInt64($1.rawValue) } }

    func contains(_ option: ControlOption) -> Bool { rawValue & (1 << UInt64(option.rawValue)) != 0 }
    mutating func insert(_ option: ControlOption) { rawValue |= 1 << UInt64(option.rawValue) }

    /// The members, in ipvsadm's order.
    var members: [ControlOption] { ControlOption.allCases.filter(contains) }
}

/// Which options each command requires, allows, and allows only one of.
///
/// The same rules as ipvsadm 1.31's command/option table, written as sets.
struct CommandRules: Sendable {
    var required: ControlOptions = []
    var optional: ControlOptions = []
    /// At most one of these may be given.
    var exclusive: ControlOptions = []

    private static let table: [CommandRules] = ControlCommand.allCases.map(rules)

    static func of(_ command: ControlCommand) -> CommandRules { table[command.rawValue] }

    private static func rules(_ command: ControlCommand) -> CommandRules {
        switch command {
        case .addService, .editService:
            CommandRules(required: [.init(.service)],
                         optional: .init([.scheduler, .persistent, .netmask, .onePacket, .persistenceEngine, .schedulerFlags]))
        case .deleteService:
            CommandRules(required: .init(.service))
        case .flush, .setTimeouts, .restore:
            CommandRules()
        case .list:
            CommandRules(optional: .init([.numeric, .stats, .rate, .thresholds, .persistentConnections, .noSort,
                                          .syncID, .exact, .tunnelInfo]),
                         exclusive: .init([.connection, .service, .timeout, .daemon]))
        case .addServer, .editServer:
            CommandRules(required: .init([.service, .realServer]),
                         optional: .init([.forwarding, .weight, .upperThreshold, .lowerThreshold, .tunnelType,
                                          .tunnelPort, .tunnelNoChecksum, .tunnelChecksum, .tunnelRemoteChecksum]))
        case .deleteServer:
            CommandRules(required: .init([.service, .realServer]))
        case .startDaemon:
            CommandRules(optional: .init([.mcastInterface, .syncID, .mcastGroup, .mcastPort, .mcastTTL, .syncMaxLength]))
        case .stopDaemon:
            CommandRules(optional: .init(.syncID))
        case .save:
            CommandRules(optional: .init(.numeric))
        case .zero:
            CommandRules(optional: .init(.service))
        }
    }

    /// Checks `options` against the rules of `command`, reporting the first problem in ipvsadm's order.
    static func check(_ command: ControlCommand, _ options: ControlOptions) throws(UsageError) {
        let rules = of(command)
        var firstExclusive: ControlOption?
        for option in ControlOption.allCases {
            if !options.contains(option) {
                if rules.required.contains(option) {
                    throw UsageError("\(command.spelling) needs \(option.spelling)")
                }
                continue
            }
            if rules.exclusive.contains(option) {
                if let first = firstExclusive {
                    throw UsageError("\(option.spelling) conflicts with \(first.spelling) in \(command.spelling); give only one")
                }
                firstExclusive = option
            } else if !rules.required.contains(option), !rules.optional.contains(option) {
                throw UsageError("\(option.spelling) cannot be used with \(command.spelling)")
            }
        }
    }
}
