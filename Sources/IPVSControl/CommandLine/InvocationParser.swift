#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// Turns a command line into an `Invocation` with ipvsadm 1.31's semantics and checks.
///
/// Differences from ipvsadm, all of them more permissive or stricter only where ipvsadm would
/// silently do something odd: the command may come after other options (`-n -L`); options whose
/// meaning depends on another (`-M`, `-6`, `-r` without a port, `-b`) are read after all options,
/// so their order does not matter; non-contiguous IPv4 netmasks and over-long scheduler or engine
/// names are refused instead of mangled; `-f` also accepts the negative numbers ipvsadm 1.31
/// prints for marks above 2^31 (so its `-S` output restores).
struct InvocationParser {
    /// Parses `arguments` (without the program name).
    static func parse(_ arguments: [String]) throws(UsageError) -> Invocation {
        if arguments.isEmpty { return .list(.all, [], .text) }
        let scanned = try ArgumentScanner(arguments)
        var parser = InvocationParser()
        for option in scanned.options {
            if option.name == .help { return .help(full: option.spelling == "--help") }
        }
        for option in scanned.options { try parser.take(option) }
        return try parser.finish(operands: scanned.operands)
    }

    // MARK: - State (what ipvsadm keeps in its command entry)

    private var command: ControlCommand?
    private var commandSpelling = ""
    private var options = ControlOptions()
    private var format = ListingFormat()
    private var output: OutputFormat?
    private var wantsVersion = false

    private var proto: TransportProtocol?
    private var serviceText: String?
    private var serviceSpelling = ""
    private var fwmark: UInt32?
    private var ipv6 = false
    private var scheduler: String?
    private var persistenceTimeout: UInt32?
    private var netmaskText: String?
    private var onePacket = false
    private var persistenceEngine: String?
    private var schedulerFlagsText: String?

    private var serverText: String?
    private var forwarding: ForwardingMethod = .directRouting
    private var weight: Int32 = 1
    private var upperThreshold: UInt32 = 0
    private var lowerThreshold: UInt32 = 0
    private var tunnel = Tunnel()

    // MARK: - Options

    private mutating func setCommand(_ new: ControlCommand, _ spelling: String) throws(UsageError) {
        if command != nil {
            throw UsageError("more than one command given (\(commandSpelling) and \(spelling)); give one of -A -E -D -C -a -e -d -L -Z -S -R --set")
        }
        command = new
        commandSpelling = spelling
    }

    private mutating func setOption(_ option: ControlOption) throws(UsageError) {
        if options.contains(option) { throw UsageError("\(option.spelling) given more than once") }
        options.insert(option)
    }

    private mutating func take(_ option: ScannedOption) throws(UsageError) {
        let argument = option.argument ?? ""
        switch option.name {
        case .addService: try setCommand(.addService, option.spelling)
        case .editService: try setCommand(.editService, option.spelling)
        case .deleteService: try setCommand(.deleteService, option.spelling)
        case .clear: try setCommand(.flush, option.spelling)
        case .list: try setCommand(.list, option.spelling)
        case .zero: try setCommand(.zero, option.spelling)
        case .addServer: try setCommand(.addServer, option.spelling)
        case .editServer: try setCommand(.editServer, option.spelling)
        case .deleteServer: try setCommand(.deleteServer, option.spelling)
        case .set: try setCommand(.setTimeouts, option.spelling)
        case .restore: try setCommand(.restore, option.spelling)
        case .save: try setCommand(.save, option.spelling)
        case .startDaemon, .stopDaemon:
            try setCommand(option.name == .startDaemon ? .startDaemon : .stopDaemon, option.spelling)
            guard argument == "master" || argument == "backup" else {
                throw UsageError("\(option.spelling): expected master or backup, got \"\(argument)\"")
            }
        case .help: break
        case .version: wantsVersion = true
        case .tcpService, .udpService, .sctpService:
            try setOption(.service)
            proto = option.name == .tcpService ? .tcp : option.name == .udpService ? .udp : .sctp
            serviceText = argument
            serviceSpelling = option.spelling
        case .fwmarkService:
            try setOption(.service)
            proto = .tcp
            fwmark = try Self.fwmark(argument, option.spelling)
            serviceSpelling = option.spelling
        case .scheduler:
            try setOption(.scheduler)
            scheduler = try Self.kernelName(argument, option.spelling, what: "scheduler")
        case .persistent:
            try setOption(.persistent)
            persistenceTimeout = try option.argument.map { text throws(UsageError) in
                UInt32(try Self.number(text, 1...Self.maximumTimeout, option.spelling, what: "persistence timeout (seconds)"))
            } ?? 360
        case .netmask:
            try setOption(.netmask)
            netmaskText = argument
        case .realServer:
            try setOption(.realServer)
            serverText = argument
        case .masquerading, .ipip, .gatewaying:
            try setOption(.forwarding)
            forwarding = option.name == .masquerading ? .masquerade : option.name == .ipip ? .tunnel : .directRouting
        case .weight:
            try setOption(.weight)
            weight = Int32(try Self.number(argument, 0...65535, option.spelling, what: "weight"))
        case .upperThreshold:
            try setOption(.upperThreshold)
            upperThreshold = UInt32(try Self.number(argument, 0...Int(Int32.max), option.spelling, what: "upper threshold"))
        case .lowerThreshold:
            try setOption(.lowerThreshold)
            lowerThreshold = UInt32(try Self.number(argument, 0...Int(Int32.max), option.spelling, what: "lower threshold"))
        case .numeric: try setOption(.numeric); format.insert(.numeric)
        case .connection: try setOption(.connection)
        case .mcastInterface: try setOption(.mcastInterface)
        case .syncID:
            try setOption(.syncID)
            _ = try Self.number(argument, 0...255, option.spelling, what: "sync id")
        case .timeout: try setOption(.timeout)
        case .daemon: try setOption(.daemon)
        case .stats: try setOption(.stats); format.insert(.stats)
        case .rate: try setOption(.rate); format.insert(.rate)
        case .thresholds: try setOption(.thresholds); format.insert(.thresholds)
        case .persistentConnections: try setOption(.persistentConnections); format.insert(.persistentConnections)
        case .noSort: try setOption(.noSort); format.insert(.noSort)
        case .sort: break
        case .exact: try setOption(.exact); format.insert(.exact)
        case .ipv6: ipv6 = true
        case .onePacket: try setOption(.onePacket); onePacket = true
        case .persistenceEngine:
            try setOption(.persistenceEngine)
            persistenceEngine = try Self.kernelName(argument, option.spelling, what: "persistence engine")
        case .schedulerFlags:
            try setOption(.schedulerFlags)
            schedulerFlagsText = argument
        case .mcastGroup: try setOption(.mcastGroup)
        case .mcastPort:
            try setOption(.mcastPort)
            _ = try Self.number(argument, 1...65535, option.spelling, what: "multicast port")
        case .mcastTTL:
            try setOption(.mcastTTL)
            _ = try Self.number(argument, 1...255, option.spelling, what: "multicast TTL")
        case .syncMaxLength:
            try setOption(.syncMaxLength)
            _ = try Self.number(argument, 1...(65535 - 20 - 8), option.spelling, what: "sync message length")
        case .tunnelInfo: try setOption(.tunnelInfo); format.insert(.tunnelInfo)
        case .tunnelType:
            try setOption(.tunnelType)
            guard let type = TunnelType.allCases.first(where: { $0.description == argument }) else {
                throw UsageError("\(option.spelling): tunnel type must be ipip, gue or gre, got \"\(argument)\"")
            }
            tunnel.type = type
        case .tunnelPort:
            try setOption(.tunnelPort)
            tunnel.port = UInt16(try Self.number(argument, 1...65535, option.spelling, what: "tunnel port"))
        case .tunnelNoChecksum: try setOption(.tunnelNoChecksum)
        case .tunnelChecksum: try setOption(.tunnelChecksum); tunnel.flags.insert(.checksum)
        case .tunnelRemoteChecksum: try setOption(.tunnelRemoteChecksum); tunnel.flags.insert(.remoteChecksum)
        case .output:
            if output != nil { throw UsageError("--output given more than once") }
            guard let value = OutputFormat(rawValue: argument) else {
                throw UsageError("--output: expected text or json, got \"\(argument)\"")
            }
            output = value
        }
    }

    // MARK: - Checks and result

    private mutating func finish(operands: [String]) throws(UsageError) -> Invocation {
        if wantsVersion, command == nil { return .version }
        if wantsVersion { throw UsageError("-v (--version) cannot be combined with a command") }
        let command = self.command ?? .list
        try CommandRules.check(command, options)
        if ipv6, fwmark == nil {
            throw UsageError("-6 (--ipv6) applies to firewall-mark services only: use it with -f FWMARK")
        }
        if output != nil, command != .list {
            throw UsageError("--output applies to listings (-L, -L -c, -L --timeout, -L --daemon), not to \(command.spelling)")
        }
        var timeouts: Timeouts?
        var rest = operands[...]
        if command == .setTimeouts {
            guard rest.count >= 3 else {
                throw UsageError("--set needs three timeouts in seconds: TCP TCPFIN UDP (0 leaves one unchanged)")
            }
            let names = ["tcp", "tcpfin", "udp"]
            var values: [UInt32] = []
            for index in 0..<3 {
                values.append(UInt32(try Self.number(rest.removeFirst(), 0...Self.maximumTimeout, "--set", what: "\(names[index]) timeout (seconds)")))
            }
            timeouts = Timeouts(tcp: values[0], tcpFin: values[1], udp: values[2])
        }
        if let extra = rest.first {
            throw UsageError("unexpected argument \"\(extra)\"")
        }

        switch command {
        case .list:
            return .list(try listTarget(), format, output ?? .text)
        case .save:
            return .save(numeric: format.contains(.numeric))
        case .restore:
            return .restore
        case .setTimeouts:
            return .setTimeouts(timeouts ?? Timeouts())
        case .startDaemon, .stopDaemon:
            throw UsageError("ipvsctl does not manage connection sync daemons; use ipvsadm \(commandSpelling) (ipvsctl -L --daemon lists them)")
        case .flush:
            return .change(.flush)
        case .zero:
            return .change(.zero(options.contains(.service) ? try serviceKey() : nil))
        case .deleteService:
            return .change(.deleteService(try serviceKey()))
        case .addService, .editService:
            let service = try virtualService()
            return .change(command == .addService ? .addService(service) : .updateService(service))
        case .addServer, .editServer:
            let key = try serviceKey()
            let server = try realServer(for: key, full: true)
            return .change(command == .addServer ? .addRealServer(server, service: key) : .updateRealServer(server, service: key))
        case .deleteServer:
            let key = try serviceKey()
            return .change(.deleteRealServer(try realServer(for: key, full: false).id, service: key))
        }
    }

    private func listTarget() throws(UsageError) -> ListTarget {
        if (options.contains(.connection) || options.contains(.timeout) || options.contains(.daemon))
            && (options.contains(.stats) || options.contains(.rate) || options.contains(.thresholds)) {
            throw UsageError("--stats, --rate and --thresholds apply to service listings, not to -c, --timeout or --daemon")
        }
        if (options.contains(.timeout) || options.contains(.daemon)) && options.contains(.persistentConnections) {
            throw UsageError("--persistent-conn applies to service and connection listings, not to --timeout or --daemon")
        }
        if options.contains(.connection) { return .connections }
        if options.contains(.service) { return .service(try serviceKey()) }
        if options.contains(.timeout) { return .timeouts }
        if options.contains(.daemon) { return .daemons }
        return .all
    }

    /// The service of `-t/-u/--sctp-service/-f`.
    private func serviceKey() throws(UsageError) -> ServiceKey {
        if let fwmark { return .firewallMark(fwmark, family: ipv6 ? .inet6 : .inet) }
        guard let serviceText, let proto else { throw UsageError("no virtual service given") }
        guard let endpoint = EndpointParser.parse(serviceText, proto: proto) else {
            throw UsageError("\(serviceSpelling): \(EndpointParser.problem(serviceText, proto: proto, what: "virtual service"))")
        }
        return .address(proto, endpoint.address, port: endpoint.port ?? 0)
    }

    private func virtualService() throws(UsageError) -> VirtualService {
        let key = try serviceKey()
        if case .address(let proto, _, let port) = key {
            if port == 0, persistenceTimeout == nil {
                throw UsageError("\(serviceSpelling): port 0 (any port) is allowed only for persistent services; add -p or give a port")
            }
            if onePacket, proto != .udp {
                throw UsageError("-o (--ops): one-packet scheduling is only for UDP (and firewall-mark) services")
            }
        }
        let schedulerName = scheduler ?? Scheduler.weightedLeastConnection.rawValue
        var flags = ServiceFlags()
        if onePacket { flags.insert(.onePacket) }
        if let schedulerFlagsText {
            flags.formUnion(try Self.schedulerFlags(schedulerFlagsText, scheduler: schedulerName))
        }
        var persistence: Persistence?
        if let persistenceTimeout {
            persistence = Persistence(timeout: persistenceTimeout, prefixLength: try prefixLength(family: key.family))
        } else if netmaskText != nil {
            _ = try prefixLength(family: key.family)
        }
        return VirtualService(key: key, scheduler: Scheduler(rawValue: schedulerName), flags: flags,
                              persistence: persistence, persistenceEngine: persistenceEngine)
    }

    /// `-M` as a prefix length, or `nil` for the full address length.
    private func prefixLength(family: AddressFamily) throws(UsageError) -> Int? {
        guard let netmaskText else { return nil }
        switch family {
        case .inet6:
            guard let length = Int(netmaskText), (1...128).contains(length) else {
                throw UsageError("-M (--netmask): an IPv6 service takes a prefix length 1..128, got \"\(netmaskText)\"")
            }
            return length == 128 ? nil : length
        case .inet:
            guard let mask = NameResolver.ipv4Address(netmaskText), case .v4(let value) = mask else {
                throw UsageError("-M (--netmask): expected an IPv4 netmask such as 255.255.255.0, got \"\(netmaskText)\"")
            }
            let length = Persistence.prefixLength(netmask: value, family: .inet)
            guard Persistence.netmask(prefixLength: length, family: .inet) == value else {
                throw UsageError("-M (--netmask): \(netmaskText) is not a contiguous netmask; ipvsctl supports contiguous masks only")
            }
            return length == 32 ? nil : length
        }
    }

    private func realServer(for key: ServiceKey, full: Bool) throws(UsageError) -> RealServer {
        guard let serverText else { throw UsageError("no real server given (-r)") }
        let proto: TransportProtocol
        let servicePort: UInt16
        switch key {
        case .address(let p, _, let port): (proto, servicePort) = (p, port)
        case .firewallMark: (proto, servicePort) = (.tcp, 0)
        }
        guard let endpoint = EndpointParser.parse(serverText, proto: proto) else {
            throw UsageError("-r (--real-server): \(EndpointParser.problem(serverText, proto: proto, what: "real server"))")
        }
        var port = endpoint.port ?? servicePort
        guard full else {
            return RealServer(address: endpoint.address, port: port)
        }
        if case .address = key, forwarding == .tunnel || forwarding == .directRouting {
            port = servicePort
        }
        if endpoint.address.family != key.family, forwarding != .tunnel {
            throw UsageError("-r (--real-server): an \(endpoint.address.family) real server in an \(key.family) service needs tunnelling (-i)")
        }
        let tunnelOptions: [ControlOption] = [.tunnelType, .tunnelPort, .tunnelNoChecksum, .tunnelChecksum, .tunnelRemoteChecksum]
        let givenTunnelOptions = tunnelOptions.filter(options.contains)
        if let first = givenTunnelOptions.first, forwarding != .tunnel {
            throw UsageError("\(first.spelling) applies to tunnelling real servers only: add -i (--ipip)")
        }
        try checkTunnelOptions()
        return RealServer(address: endpoint.address, port: port, forwarding: forwarding, weight: weight,
                          upperThreshold: upperThreshold, lowerThreshold: lowerThreshold,
                          tunnel: forwarding == .tunnel ? tunnel : Tunnel())
    }

    /// ipvsadm's tunnel type/option table: gue needs a port and takes one checksum option,
    /// gre takes --tun-nocsum or --tun-csum, ipip takes none.
    private func checkTunnelOptions() throws(UsageError) {
        let checksums: [ControlOption] = [.tunnelNoChecksum, .tunnelChecksum, .tunnelRemoteChecksum].filter(options.contains)
        switch tunnel.type {
        case .ipip:
            if let option = ([.tunnelPort] + checksums).first(where: options.contains) {
                throw UsageError("\(option.spelling) does not apply to the ipip tunnel type (use --tun-type gue or gre)")
            }
        case .gue:
            if !options.contains(.tunnelPort) { throw UsageError("--tun-type gue needs --tun-port PORT") }
            if checksums.count > 1 { throw UsageError("\(checksums[1].spelling) conflicts with \(checksums[0].spelling); give one checksum option") }
        case .gre:
            if options.contains(.tunnelPort) { throw UsageError("--tun-port applies to the gue tunnel type only") }
            if options.contains(.tunnelRemoteChecksum) { throw UsageError("--tun-remcsum applies to the gue tunnel type only") }
            if checksums.count > 1 { throw UsageError("\(checksums[1].spelling) conflicts with \(checksums[0].spelling); give one checksum option") }
        }
    }
}
