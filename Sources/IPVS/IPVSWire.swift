internal import CNetlink
import Netlink

/// Every byte of the IPVS generic netlink encoding: commands, attribute ids and layouts.
///
/// Pure functions over bytes, so each message kind is tested against saved bytes without a
/// kernel. Decoders ignore attributes they do not know and throw `NetlinkDecodingError` on
/// malformed ones.
enum IPVSWire {
    /// The generic netlink family name. The corresponding kernel constant is `IPVS_GENL_NAME`.
    static let familyName = IPVS_GENL_NAME
    /// The corresponding kernel constant is `IPVS_GENL_VERSION`.
    static let version = UInt8(IPVS_GENL_VERSION)

    // MARK: - Commands

    enum Command: UInt8 {
        case newService = 1, setService, deleteService, getService
        case newDestination, setDestination, deleteDestination, getDestination
        case newDaemon, deleteDaemon, getDaemon
        case setConfig, getConfig, setInfo, getInfo
        case zero, flush
    }

    // Attribute ids, named after ip_vs.h and checked against it in the wire tests.
    static let commandService = UInt16(IPVS_CMD_ATTR_SERVICE)
    static let commandDestination = UInt16(IPVS_CMD_ATTR_DEST)
    static let commandDaemon = UInt16(IPVS_CMD_ATTR_DAEMON)
    static let commandTimeoutTCP = UInt16(IPVS_CMD_ATTR_TIMEOUT_TCP)
    static let commandTimeoutTCPFin = UInt16(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN)
    static let commandTimeoutUDP = UInt16(IPVS_CMD_ATTR_TIMEOUT_UDP)

    enum ServiceAttribute {
        static let family = UInt16(IPVS_SVC_ATTR_AF)
        static let proto = UInt16(IPVS_SVC_ATTR_PROTOCOL)
        static let address = UInt16(IPVS_SVC_ATTR_ADDR)
        static let port = UInt16(IPVS_SVC_ATTR_PORT)
        static let firewallMark = UInt16(IPVS_SVC_ATTR_FWMARK)
        static let scheduler = UInt16(IPVS_SVC_ATTR_SCHED_NAME)
        static let flags = UInt16(IPVS_SVC_ATTR_FLAGS)
        static let timeout = UInt16(IPVS_SVC_ATTR_TIMEOUT)
        static let netmask = UInt16(IPVS_SVC_ATTR_NETMASK)
        static let stats = UInt16(IPVS_SVC_ATTR_STATS)
        static let persistenceEngine = UInt16(IPVS_SVC_ATTR_PE_NAME)
        static let stats64 = UInt16(IPVS_SVC_ATTR_STATS64)
    }

    enum DestinationAttribute {
        static let address = UInt16(IPVS_DEST_ATTR_ADDR)
        static let port = UInt16(IPVS_DEST_ATTR_PORT)
        static let forwarding = UInt16(IPVS_DEST_ATTR_FWD_METHOD)
        static let weight = UInt16(IPVS_DEST_ATTR_WEIGHT)
        static let upperThreshold = UInt16(IPVS_DEST_ATTR_U_THRESH)
        static let lowerThreshold = UInt16(IPVS_DEST_ATTR_L_THRESH)
        static let activeConnections = UInt16(IPVS_DEST_ATTR_ACTIVE_CONNS)
        static let inactiveConnections = UInt16(IPVS_DEST_ATTR_INACT_CONNS)
        static let persistentConnections = UInt16(IPVS_DEST_ATTR_PERSIST_CONNS)
        static let stats = UInt16(IPVS_DEST_ATTR_STATS)
        static let family = UInt16(IPVS_DEST_ATTR_ADDR_FAMILY)
        static let stats64 = UInt16(IPVS_DEST_ATTR_STATS64)
        static let tunnelType = UInt16(IPVS_DEST_ATTR_TUN_TYPE)
        static let tunnelPort = UInt16(IPVS_DEST_ATTR_TUN_PORT)
        static let tunnelFlags = UInt16(IPVS_DEST_ATTR_TUN_FLAGS)
    }

    enum DaemonAttribute {
        static let state = UInt16(IPVS_DAEMON_ATTR_STATE)
        static let interface = UInt16(IPVS_DAEMON_ATTR_MCAST_IFN)
        static let syncID = UInt16(IPVS_DAEMON_ATTR_SYNC_ID)
        static let maximumLength = UInt16(IPVS_DAEMON_ATTR_SYNC_MAXLEN)
        static let group = UInt16(IPVS_DAEMON_ATTR_MCAST_GROUP)
        static let group6 = UInt16(IPVS_DAEMON_ATTR_MCAST_GROUP6)
        static let port = UInt16(IPVS_DAEMON_ATTR_MCAST_PORT)
        static let ttl = UInt16(IPVS_DAEMON_ATTR_MCAST_TTL)
    }

    enum StatsAttribute {
        static let connections = UInt16(IPVS_STATS_ATTR_CONNS)
        static let incomingPackets = UInt16(IPVS_STATS_ATTR_INPKTS)
        static let outgoingPackets = UInt16(IPVS_STATS_ATTR_OUTPKTS)
        static let incomingBytes = UInt16(IPVS_STATS_ATTR_INBYTES)
        static let outgoingBytes = UInt16(IPVS_STATS_ATTR_OUTBYTES)
        static let connectionRate = UInt16(IPVS_STATS_ATTR_CPS)
        static let incomingPacketRate = UInt16(IPVS_STATS_ATTR_INPPS)
        static let outgoingPacketRate = UInt16(IPVS_STATS_ATTR_OUTPPS)
        static let incomingByteRate = UInt16(IPVS_STATS_ATTR_INBPS)
        static let outgoingByteRate = UInt16(IPVS_STATS_ATTR_OUTBPS)
    }

    static let infoVersion = UInt16(IPVS_INFO_ATTR_VERSION)
    static let infoConnectionTableSize = UInt16(IPVS_INFO_ATTR_CONN_TAB_SIZE)

    // MARK: - Encoding

    /// Starts a request of `command` for `family`.
    static func request(family: UInt16, command: Command, flags: NetlinkMessageFlags, sequence: UInt32, capacity: Int = 160) -> NetlinkMessageBuilder {
        var builder = NetlinkMessageBuilder(type: family, flags: flags.union(.request), sequence: sequence, capacity: capacity)
        builder.appendGenericHeader(command: command.rawValue, version: version)
        return builder
    }

    /// The complete request for one operation, with `NLM_F_ACK`.
    static func encode(_ operation: IPVSOperation, family: UInt16, sequence: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160)
        encode(operation, family: family, sequence: sequence, into: &bytes)
        return bytes
    }

    /// Appends the complete request for one operation, with `NLM_F_ACK`, to `buffer`: the batch
    /// path, with no allocation per message.
    static func encode(_ operation: IPVSOperation, family: UInt16, sequence: UInt32, into buffer: inout [UInt8]) {
        let command: Command = switch operation {
        case .addService: .newService
        case .updateService: .setService
        case .deleteService: .deleteService
        case .addRealServer: .newDestination
        case .updateRealServer: .setDestination
        case .deleteRealServer: .deleteDestination
        case .zero: .zero
        case .flush: .flush
        }
        var builder = NetlinkMessageBuilder(appendingTo: &buffer, type: family, flags: [.request, .acknowledge], sequence: sequence)
        builder.appendGenericHeader(command: command.rawValue, version: version)
        switch operation {
        case .addService(let service), .updateService(let service):
            appendService(service, to: &builder)
        case .deleteService(let key), .zero(let key?):
            appendServiceKey(key, to: &builder)
        case .addRealServer(let server, let key), .updateRealServer(let server, let key):
            appendServiceKey(key, to: &builder)
            appendRealServer(server, family: key.family, full: true, to: &builder)
        case .deleteRealServer(let id, let key):
            appendServiceKey(key, to: &builder)
            appendRealServer(RealServer(address: id.address, port: id.port), family: key.family, full: false, to: &builder)
        case .zero(nil), .flush:
            break
        }
        builder.finish(into: &buffer)
    }

    /// An address attribute: `union nf_inet_addr`, 16 bytes in network order, an IPv4 address
    /// in the first 4.
    static func appendAddress(_ type: UInt16, _ address: IPAddress, to builder: inout NetlinkMessageBuilder) {
        switch address {
        case .v4(let value): builder.append(type, bytesOf: (value.bigEndian, UInt32(0), UInt64(0)))
        case .v6(let high, let low): builder.append(type, bytesOf: (high.bigEndian, low.bigEndian))
        }
    }

    /// `IPVS_CMD_ATTR_SERVICE` with only the identifying attributes.
    static func appendServiceKey(_ key: ServiceKey, to builder: inout NetlinkMessageBuilder) {
        builder.appendNested(commandService) { appendKeyAttributes(key, to: &$0) }
    }

    private static func appendKeyAttributes(_ key: ServiceKey, to builder: inout NetlinkMessageBuilder) {
        builder.append(ServiceAttribute.family, uint16: key.family.rawValue)
        switch key {
        case .address(let proto, let address, let port):
            builder.append(ServiceAttribute.proto, uint16: proto.rawValue)
            appendAddress(ServiceAttribute.address, address, to: &builder)
            builder.append(ServiceAttribute.port, bigEndianUInt16: port)
        case .firewallMark(let mark, _):
            builder.append(ServiceAttribute.firewallMark, uint32: mark)
        }
    }

    /// `IPVS_CMD_ATTR_SERVICE` with every attribute the kernel requires to add or edit.
    static func appendService(_ service: VirtualService, to builder: inout NetlinkMessageBuilder) {
        builder.appendNested(commandService) { nested in
            appendKeyAttributes(service.key, to: &nested)
            nested.append(ServiceAttribute.scheduler, string: service.scheduler.rawValue)
            if let engine = service.persistenceEngine {
                nested.append(ServiceAttribute.persistenceEngine, string: engine)
            }
            // struct ip_vs_flags { __u32 flags; __u32 mask; }
            nested.append(ServiceAttribute.flags, bytesOf: (service.kernelFlags.rawValue, UInt32.max))
            nested.append(ServiceAttribute.timeout, uint32: service.persistence?.timeout ?? 0)
            nested.append(ServiceAttribute.netmask, uint32: netmask(prefixLength: service.persistencePrefixLength, family: service.key.family))
        }
    }

    /// The kernel's netmask attribute: a network-order IPv4 mask, or an IPv6 prefix length.
    static func netmask(prefixLength: Int, family: AddressFamily) -> UInt32 {
        let mask = Persistence.netmask(prefixLength: prefixLength, family: family)
        return family == .inet ? mask.bigEndian : mask
    }

    static func prefixLength(netmask: UInt32, family: AddressFamily) -> Int {
        Persistence.prefixLength(netmask: family == .inet ? UInt32(bigEndian: netmask) : netmask, family: family)
    }

    static func appendRealServer(_ server: RealServer, family: AddressFamily, full: Bool, to builder: inout NetlinkMessageBuilder) {
        builder.appendNested(commandDestination) { nested in
            nested.append(DestinationAttribute.family, uint16: server.address.family.rawValue)
            appendAddress(DestinationAttribute.address, server.address, to: &nested)
            nested.append(DestinationAttribute.port, bigEndianUInt16: server.port)
            guard full else { return }
            nested.append(DestinationAttribute.forwarding, uint32: server.forwarding.rawValue)
            nested.append(DestinationAttribute.weight, uint32: UInt32(bitPattern: server.weight))
            nested.append(DestinationAttribute.upperThreshold, uint32: server.upperThreshold)
            nested.append(DestinationAttribute.lowerThreshold, uint32: server.lowerThreshold)
            if server.forwarding == .tunnel {
                nested.append(DestinationAttribute.tunnelType, uint8: server.tunnel.type.rawValue)
                nested.append(DestinationAttribute.tunnelPort, bigEndianUInt16: server.tunnel.port)
                nested.append(DestinationAttribute.tunnelFlags, uint16: server.tunnel.flags.rawValue)
            }
        }
    }

    /// A dump of all services.
    static func dumpServices(family: UInt16, sequence: UInt32) -> [UInt8] {
        request(family: family, command: .getService, flags: .dump, sequence: sequence).finish()
    }

    /// A request for one service.
    static func getService(_ key: ServiceKey, family: UInt16, sequence: UInt32) -> [UInt8] {
        var builder = request(family: family, command: .getService, flags: .acknowledge, sequence: sequence)
        appendServiceKey(key, to: &builder)
        return builder.finish()
    }

    /// A dump of the real servers of one service.
    static func dumpRealServers(_ key: ServiceKey, family: UInt16, sequence: UInt32) -> [UInt8] {
        var builder = request(family: family, command: .getDestination, flags: .dump, sequence: sequence)
        appendServiceKey(key, to: &builder)
        return builder.finish()
    }

    static func simple(_ command: Command, family: UInt16, flags: NetlinkMessageFlags, sequence: UInt32) -> [UInt8] {
        request(family: family, command: command, flags: flags, sequence: sequence).finish()
    }

    static func setTimeouts(_ timeouts: Timeouts, family: UInt16, sequence: UInt32) -> [UInt8] {
        var builder = request(family: family, command: .setConfig, flags: .acknowledge, sequence: sequence)
        if timeouts.tcp != 0 { builder.append(commandTimeoutTCP, uint32: timeouts.tcp) }
        if timeouts.tcpFin != 0 { builder.append(commandTimeoutTCPFin, uint32: timeouts.tcpFin) }
        if timeouts.udp != 0 { builder.append(commandTimeoutUDP, uint32: timeouts.udp) }
        return builder.finish()
    }

    // MARK: - Decoding

    /// The attributes after the generic netlink header of a message.
    static func attributes(of message: NetlinkMessage) throws -> NetlinkAttributes {
        guard message.payload.count >= NetlinkConstants.genericHeaderSize else {
            throw NetlinkDecodingError("message of \(message.payload.count) bytes has no generic netlink header")
        }
        return try NetlinkAttributes(message.payload.dropFirst(NetlinkConstants.genericHeaderSize))
    }

    static func decodeService(_ message: NetlinkMessage) throws -> VirtualService {
        guard let nested = try attributes(of: message)[commandService] else {
            throw NetlinkDecodingError("service message without IPVS_CMD_ATTR_SERVICE")
        }
        return try decodeService(nested.nested())
    }

    static func decodeService(_ attributes: NetlinkAttributes) throws -> VirtualService {
        guard let familyValue = try attributes[ServiceAttribute.family]?.uint16() else {
            throw NetlinkDecodingError("service without an address family")
        }
        guard let family = AddressFamily(rawValue: familyValue) else {
            throw NetlinkDecodingError("service with unknown address family \(familyValue)")
        }
        let key: ServiceKey
        if let mark = try attributes[ServiceAttribute.firewallMark]?.uint32(), mark != 0 {
            key = .firewallMark(mark, family: family)
        } else {
            guard let protoValue = try attributes[ServiceAttribute.proto]?.uint16(),
                  let proto = TransportProtocol(rawValue: protoValue) else {
                throw NetlinkDecodingError("service without a known protocol")
            }
            guard let raw = attributes[ServiceAttribute.address]?.payload,
                  let address = decodeAddress(raw, family: family) else {
                throw NetlinkDecodingError("service without a valid address")
            }
            let port = try attributes[ServiceAttribute.port]?.bigEndianUInt16() ?? 0
            key = .address(proto, address, port: port)
        }
        let scheduler = Scheduler(rawValue: try attributes[ServiceAttribute.scheduler]?.string() ?? "")
        var flags = ServiceFlags()
        if let raw = attributes[ServiceAttribute.flags] {
            flags = ServiceFlags(rawValue: try raw.uint32())
        }
        let timeout = try attributes[ServiceAttribute.timeout]?.uint32() ?? 0
        let netmask = try attributes[ServiceAttribute.netmask]?.uint32()
        var persistence: Persistence?
        if flags.contains(.persistent) {
            let length = netmask.map { prefixLength(netmask: $0, family: family) }
            persistence = Persistence(timeout: timeout, prefixLength: length == family.maxPrefixLength ? nil : length)
        }
        let engine = try attributes[ServiceAttribute.persistenceEngine]?.string()
        let statistics = try decodeStatistics(wide: attributes[ServiceAttribute.stats64], narrow: attributes[ServiceAttribute.stats])
        return VirtualService(key: key, scheduler: scheduler, flags: flags, persistence: persistence,
                              persistenceEngine: engine.flatMap { $0.isEmpty ? nil : $0 }, statistics: statistics)
    }

    static func decodeRealServer(_ message: NetlinkMessage, serviceFamily: AddressFamily) throws -> RealServer {
        guard let nested = try attributes(of: message)[commandDestination] else {
            throw NetlinkDecodingError("destination message without IPVS_CMD_ATTR_DEST")
        }
        let attributes = try nested.nested()
        var family = serviceFamily
        if let value = try attributes[DestinationAttribute.family]?.uint16() {
            guard let decoded = AddressFamily(rawValue: value) else {
                throw NetlinkDecodingError("real server with unknown address family \(value)")
            }
            family = decoded
        }
        guard let raw = attributes[DestinationAttribute.address]?.payload,
              let address = decodeAddress(raw, family: family) else {
            throw NetlinkDecodingError("real server without a valid address")
        }
        let port = try attributes[DestinationAttribute.port]?.bigEndianUInt16() ?? 0
        let forwardingValue = (try attributes[DestinationAttribute.forwarding]?.uint32() ?? 0) & UInt32(IP_VS_CONN_F_FWD_MASK)
        guard let forwarding = ForwardingMethod(rawValue: forwardingValue) else {
            throw NetlinkDecodingError("real server with unknown forwarding method \(forwardingValue)")
        }
        var tunnel = Tunnel()
        if let value = try attributes[DestinationAttribute.tunnelType]?.uint8() {
            tunnel.type = TunnelType(rawValue: value) ?? .ipip
        }
        tunnel.port = try attributes[DestinationAttribute.tunnelPort]?.bigEndianUInt16() ?? 0
        tunnel.flags = TunnelFlags(rawValue: try attributes[DestinationAttribute.tunnelFlags]?.uint16() ?? 0)
        return RealServer(
            address: address, port: port, forwarding: forwarding,
            weight: Int32(bitPattern: try attributes[DestinationAttribute.weight]?.uint32() ?? 0),
            upperThreshold: try attributes[DestinationAttribute.upperThreshold]?.uint32() ?? 0,
            lowerThreshold: try attributes[DestinationAttribute.lowerThreshold]?.uint32() ?? 0,
            tunnel: tunnel,
            connections: ConnectionCounts(
                active: try attributes[DestinationAttribute.activeConnections]?.uint32() ?? 0,
                inactive: try attributes[DestinationAttribute.inactiveConnections]?.uint32() ?? 0,
                persistent: try attributes[DestinationAttribute.persistentConnections]?.uint32() ?? 0),
            statistics: try decodeStatistics(wide: attributes[DestinationAttribute.stats64], narrow: attributes[DestinationAttribute.stats])
        )
    }

    static func decodeAddress(_ raw: ArraySlice<UInt8>, family: AddressFamily) -> IPAddress? {
        switch family {
        case .inet: raw.count >= 4 ? IPAddress(bytes: raw.prefix(4)) : nil
        case .inet6: raw.count >= 16 ? IPAddress(bytes: raw.prefix(16)) : nil
        }
    }

    /// Statistics from `STATS64` (all 64-bit) when present, else from the 32-bit `STATS`.
    static func decodeStatistics(wide: NetlinkAttribute?, narrow: NetlinkAttribute?) throws -> Statistics? {
        if let wide {
            let a = try wide.nested()
            func value(_ type: UInt16) throws -> UInt64 { try a[type]?.uint64() ?? 0 }
            return Statistics(
                connections: try value(StatsAttribute.connections),
                incomingPackets: try value(StatsAttribute.incomingPackets),
                outgoingPackets: try value(StatsAttribute.outgoingPackets),
                incomingBytes: try value(StatsAttribute.incomingBytes),
                outgoingBytes: try value(StatsAttribute.outgoingBytes),
                connectionRate: try value(StatsAttribute.connectionRate),
                incomingPacketRate: try value(StatsAttribute.incomingPacketRate),
                outgoingPacketRate: try value(StatsAttribute.outgoingPacketRate),
                incomingByteRate: try value(StatsAttribute.incomingByteRate),
                outgoingByteRate: try value(StatsAttribute.outgoingByteRate))
        }
        guard let narrow else { return nil }
        let a = try narrow.nested()
        func small(_ type: UInt16) throws -> UInt64 { UInt64(try a[type]?.uint32() ?? 0) }
        func large(_ type: UInt16) throws -> UInt64 { try a[type]?.uint64() ?? 0 }
        return Statistics(
            connections: try small(StatsAttribute.connections),
            incomingPackets: try small(StatsAttribute.incomingPackets),
            outgoingPackets: try small(StatsAttribute.outgoingPackets),
            incomingBytes: try large(StatsAttribute.incomingBytes),
            outgoingBytes: try large(StatsAttribute.outgoingBytes),
            connectionRate: try small(StatsAttribute.connectionRate),
            incomingPacketRate: try small(StatsAttribute.incomingPacketRate),
            outgoingPacketRate: try small(StatsAttribute.outgoingPacketRate),
            incomingByteRate: try small(StatsAttribute.incomingByteRate),
            outgoingByteRate: try small(StatsAttribute.outgoingByteRate))
    }

    static func decodeInfo(_ message: NetlinkMessage) throws -> IPVSInfo {
        let a = try attributes(of: message)
        guard let version = try a[infoVersion]?.uint32() else {
            throw NetlinkDecodingError("info message without a version")
        }
        return IPVSInfo(version: version, connectionTableSize: try a[infoConnectionTableSize]?.uint32() ?? 0)
    }

    static func decodeTimeouts(_ message: NetlinkMessage) throws -> Timeouts {
        let a = try attributes(of: message)
        return Timeouts(tcp: try a[commandTimeoutTCP]?.uint32() ?? 0,
                        tcpFin: try a[commandTimeoutTCPFin]?.uint32() ?? 0,
                        udp: try a[commandTimeoutUDP]?.uint32() ?? 0)
    }

    static func decodeDaemon(_ message: NetlinkMessage) throws -> SyncDaemon? {
        guard let nested = try attributes(of: message)[commandDaemon] else { return nil }
        let a = try nested.nested()
        guard let state = try a[DaemonAttribute.state]?.uint32(), let role = SyncDaemon.Role(rawValue: state) else {
            return nil
        }
        var group: IPAddress?
        if let raw = a[DaemonAttribute.group]?.payload { group = decodeAddress(raw, family: .inet) }
        if let raw = a[DaemonAttribute.group6]?.payload { group = decodeAddress(raw, family: .inet6) }
        return SyncDaemon(
            role: role,
            interface: try a[DaemonAttribute.interface]?.string() ?? "",
            syncID: try a[DaemonAttribute.syncID]?.uint32() ?? 0,
            maximumLength: try a[DaemonAttribute.maximumLength]?.uint16(),
            multicastGroup: group,
            multicastPort: try a[DaemonAttribute.port]?.uint16(),
            multicastTTL: try a[DaemonAttribute.ttl]?.uint8())
    }
}
