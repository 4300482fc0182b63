// MARK: - Why a hand-written scanner
//
// ipvsadm parses its command line with popt, whose rules scripts rely on: short options combine
// (`-Ln`, `-Lnt 10.0.0.1:80`), an option's argument may be glued (`-p60`, `--weight=3`) or
// separate, `-p` takes an *optional* argument (the next word unless it starts with `-`), every
// option may appear anywhere, and the order of options matters for a few of them. swift-argument-
// parser models subcommands and typed options, not this grammar, so the compatible surface is
// scanned here by hand; swift-argument-parser still generates the completion scripts
// (see `CompletionCommand`).

/// One option word of ipvsadm's (and ipvsctl's) command line.
enum OptionName: Sendable, Hashable {
    case addService, editService, deleteService, clear, list, zero, addServer, editServer, deleteServer
    case set, help, version, restore, save, startDaemon, stopDaemon
    case tcpService, udpService, sctpService, fwmarkService, scheduler, persistent, netmask, realServer
    case masquerading, ipip, gatewaying, weight, upperThreshold, lowerThreshold, numeric, connection
    case mcastInterface, syncID, timeout, daemon, stats, rate, thresholds, persistentConnections
    case noSort, sort, exact, ipv6, onePacket, persistenceEngine, schedulerFlags, mcastGroup, mcastPort
    case mcastTTL, syncMaxLength, tunnelInfo, tunnelType, tunnelPort, tunnelNoChecksum, tunnelChecksum
    case tunnelRemoteChecksum
    /// ipvsctl only: `--output text|json`.
    case output
}

/// Whether an option takes an argument.
enum ArgumentKind: Sendable {
    case none, required, optional
}

/// The spelling of one option.
struct OptionSpec: Sendable {
    var long: String
    var short: Character?
    var argument: ArgumentKind
    var name: OptionName
    /// One line for `--help` and the completion scripts.
    var summary: String

    init(_ long: String, _ short: Character?, _ argument: ArgumentKind, _ name: OptionName, _ summary: String) {
        self.long = long
        self.short = short
        self.argument = argument
        self.name = name
        self.summary = summary
    }

    /// Every option ipvsctl accepts: ipvsadm 1.31's, plus `--output`.
    static let all: [OptionSpec] = [
        OptionSpec("add-service", "A", .addService, "add a virtual service"),
        OptionSpec("edit-service", "E", .editService, "edit a virtual service"),
        OptionSpec("delete-service", "D", .deleteService, "delete a virtual service"),
        OptionSpec("clear", "C", .clear, "delete every virtual service"),
        OptionSpec("list", "L", .list, "list the table"),
        OptionSpec("list", "l", .list, "list the table"),
        OptionSpec("zero", "Z", .zero, "zero the counters of a service or of all"),
        OptionSpec("add-server", "a", .addServer, "add a real server to a service"),
        OptionSpec("edit-server", "e", .editServer, "edit a real server"),
        OptionSpec("delete-server", "d", .deleteServer, "delete a real server"),
        OptionSpec("set", nil, .set, "set the tcp, tcpfin and udp timeouts"),
        OptionSpec("help", "h", .help, "show help"),
        OptionSpec("version", "v", .version, "show the version"),
        OptionSpec("restore", "R", .restore, "apply rules read from standard input"),
        OptionSpec("save", "S", .save, "print the table as rules"),
        OptionSpec("start-daemon", nil, .required, .startDaemon, "start a sync daemon (not supported by ipvsctl)"),
        OptionSpec("stop-daemon", nil, .required, .stopDaemon, "stop a sync daemon (not supported by ipvsctl)"),
        OptionSpec("tcp-service", "t", .required, .tcpService, "TCP virtual service HOST[:PORT]"),
        OptionSpec("udp-service", "u", .required, .udpService, "UDP virtual service HOST[:PORT]"),
        OptionSpec("sctp-service", nil, .required, .sctpService, "SCTP virtual service HOST[:PORT]"),
        OptionSpec("fwmark-service", "f", .required, .fwmarkService, "firewall-mark virtual service"),
        OptionSpec("scheduler", "s", .required, .scheduler, "scheduling algorithm (default wlc)"),
        OptionSpec("persistent", "p", .optional, .persistent, "persistent service [timeout, default 360]"),
        OptionSpec("netmask", "M", .required, .netmask, "persistence granularity mask"),
        OptionSpec("real-server", "r", .required, .realServer, "real server HOST[:PORT]"),
        OptionSpec("masquerading", "m", .masquerading, "forward by NAT"),
        OptionSpec("ipip", "i", .ipip, "forward by tunnelling"),
        OptionSpec("gatewaying", "g", .gatewaying, "forward by direct routing (default)"),
        OptionSpec("weight", "w", .required, .weight, "real server weight 0..65535"),
        OptionSpec("u-threshold", "x", .required, .upperThreshold, "upper connection threshold"),
        OptionSpec("l-threshold", "y", .required, .lowerThreshold, "lower connection threshold"),
        OptionSpec("numeric", "n", .numeric, "numeric addresses and ports"),
        OptionSpec("connection", "c", .connection, "list connections"),
        OptionSpec("mcast-interface", nil, .required, .mcastInterface, "sync daemon multicast interface"),
        OptionSpec("syncid", nil, .required, .syncID, "sync daemon id"),
        OptionSpec("timeout", nil, .timeout, "list the timeouts"),
        OptionSpec("daemon", nil, .daemon, "list the sync daemons"),
        OptionSpec("stats", nil, .stats, "list counters"),
        OptionSpec("rate", nil, .rate, "list rates"),
        OptionSpec("thresholds", nil, .thresholds, "list thresholds"),
        OptionSpec("persistent-conn", nil, .persistentConnections, "list persistent connections"),
        OptionSpec("nosort", nil, .noSort, "list in kernel order"),
        OptionSpec("sort", nil, .sort, "sort the listing (the default)"),
        OptionSpec("exact", "X", .exact, "exact numbers, no K/M/G"),
        OptionSpec("ipv6", "6", .ipv6, "the firewall-mark service is IPv6"),
        OptionSpec("ops", "o", .onePacket, "one-packet scheduling (UDP)"),
        OptionSpec("pe", nil, .required, .persistenceEngine, "persistence engine (sip)"),
        OptionSpec("sched-flags", "b", .required, .schedulerFlags, "scheduler flags, comma-separated"),
        OptionSpec("mcast-group", nil, .required, .mcastGroup, "sync daemon multicast group"),
        OptionSpec("mcast-port", nil, .required, .mcastPort, "sync daemon UDP port"),
        OptionSpec("mcast-ttl", nil, .required, .mcastTTL, "sync daemon multicast TTL"),
        OptionSpec("sync-maxlen", nil, .required, .syncMaxLength, "sync daemon message length"),
        OptionSpec("tun-info", nil, .tunnelInfo, "list tunnel settings"),
        OptionSpec("tun-type", nil, .required, .tunnelType, "tunnel type ipip|gue|gre"),
        OptionSpec("tun-port", nil, .required, .tunnelPort, "GUE destination port"),
        OptionSpec("tun-nocsum", nil, .tunnelNoChecksum, "tunnel without checksum"),
        OptionSpec("tun-csum", nil, .tunnelChecksum, "tunnel with checksum"),
        OptionSpec("tun-remcsum", nil, .tunnelRemoteChecksum, "tunnel with remote checksum"),
        OptionSpec("output", nil, .required, .output, "listing format: text (default) or json"),
    ]

    private init(_ long: String, _ short: Character?, _ name: OptionName, _ summary: String) {
        self.init(long, short, .none, name, summary)
    }

    private static let byLong: [String: OptionSpec] = Dictionary(all.map { ($0.long, $0) }, uniquingKeysWith: { first, _ in first })
    private static let byShort: [UInt8: OptionSpec] = Dictionary(
        all.compactMap { spec in spec.short.flatMap(\.asciiValue).map { ($0, spec) } }, uniquingKeysWith: { first, _ in first })

    static func long(_ text: Substring) -> OptionSpec? { byLong[String(text)] }
    static func short(_ letter: UInt8) -> OptionSpec? { byShort[letter] }
}

/// An option as found on the command line.
struct ScannedOption: Sendable, Equatable {
    var name: OptionName
    var argument: String?
    /// As the user wrote it (`-t`, `--weight`), for messages.
    var spelling: String
}

/// Splits a command line into options and operands with popt's rules (see the top of this file).
struct ArgumentScanner {
    var options: [ScannedOption] = []
    var operands: [String] = []

    /// Scans `arguments` (without the program name).
    init(_ arguments: some Collection<String>) throws(UsageError) {
        var words = Array(arguments)[...]
        while let word = words.popFirst() {
            if word == "--" {
                operands.append(contentsOf: words)
                break
            }
            let bytes = word.utf8
            if bytes.count > 2, bytes.first == 0x2D, bytes[bytes.index(after: bytes.startIndex)] == 0x2D {
                try scanLong(word, rest: &words)
            } else if bytes.count > 1, bytes.first == 0x2D {
                try scanShortCluster(word, rest: &words)
            } else {
                operands.append(word)
            }
        }
    }

    private mutating func scanLong(_ word: String, rest: inout ArraySlice<String>) throws(UsageError) {
        let body = word.dropFirst(2)
        let nameText: Substring
        var argument: String?
        if let equals = body.firstIndex(of: "=") {
            nameText = body[..<equals]
            argument = String(body[body.index(after: equals)...])
        } else {
            nameText = body
        }
        guard let spec = OptionSpec.long(nameText) else {
            throw UsageError("unknown option \(word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word)", suggestHelp: true)
        }
        switch spec.argument {
        case .none:
            if argument != nil { throw UsageError("option --\(spec.long) takes no value (got \(word))", suggestHelp: true) }
        case .required:
            if argument == nil {
                guard let next = rest.popFirst() else { throw UsageError("option --\(spec.long) needs a value", suggestHelp: true) }
                argument = next
            }
        case .optional:
            if argument == nil, let next = rest.first, next.utf8.first != 0x2D {
                argument = next
                rest.removeFirst()
            }
        }
        options.append(ScannedOption(name: spec.name, argument: argument, spelling: "--" + spec.long))
    }

    private mutating func scanShortCluster(_ word: String, rest: inout ArraySlice<String>) throws(UsageError) {
        var letters = word.utf8.dropFirst()
        while let byte = letters.popFirst() {
            guard let spec = OptionSpec.short(byte), let letter = spec.short else {
                let shown = String(decoding: [byte], as: UTF8.self)
                throw UsageError("unknown option -\(shown)" + (word.utf8.count > 2 ? " (in \(word))" : ""), suggestHelp: true)
            }
            var argument: String?
            switch spec.argument {
            case .none:
                break
            case .required, .optional:
                if !letters.isEmpty {
                    argument = String(Substring(letters))
                    letters = letters[letters.endIndex...]
                } else if let next = rest.first, spec.argument == .required || next.utf8.first != 0x2D {
                    argument = next
                    rest.removeFirst()
                } else if spec.argument == .required {
                    throw UsageError("option -\(letter) (--\(spec.long)) needs a value", suggestHelp: true)
                }
            }
            options.append(ScannedOption(name: spec.name, argument: argument, spelling: Self.shortSpellings[letter] ?? "-\(letter)"))
        }
    }

    private static let shortSpellings: [Character: String] = Dictionary(
        OptionSpec.all.compactMap { spec in spec.short.map { ($0, "-\($0)") } }, uniquingKeysWith: { first, _ in first })
}
