import IPVS

/// Prints the table as ipvsadm 1.31 does, byte for byte: `-L` in all its formats and `-S`.
struct ListingFormatter {
    var format: ListingFormat
    let resolver: NameResolver

    init(format: ListingFormat, resolver: NameResolver = NameResolver()) {
        self.format = format
        self.resolver = resolver
    }

    // MARK: - Header and title

    /// `IP Virtual Server version 1.2.1 (size=4096)`, printed by `-L` without a service.
    func header(_ info: IPVSInfo, into out: inout TextBuffer) {
        out.write("IP Virtual Server version \(info.versionString) (size=\(Int32(bitPattern: info.connectionTableSize)))\n")
    }

    /// The column titles of the format (none for `-S`).
    func title(into out: inout TextBuffer) {
        let first = "Prot LocalAddress:Port"
        func columns(_ names: [String], widths: [Int], leftAligned: Bool) {
            out.left(first, 33)
            for (name, width) in zip(names, widths) {
                out.write(" ")
                if leftAligned { out.left(name, width) } else { out.right(name, width) }
            }
            out.write("\n  -> RemoteAddress:Port\n")
        }
        if format.contains(.stats) {
            columns(["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"], widths: [8, 8, 8, 8, 8], leftAligned: false)
        } else if format.contains(.rate) {
            columns(["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"], widths: [8, 8, 8, 8, 8], leftAligned: false)
        } else if format.contains(.thresholds) {
            columns(["Uthreshold", "Lthreshold", "ActiveConn", "InActConn"], widths: [10, 10, 10, 10], leftAligned: true)
        } else if format.contains(.persistentConnections) {
            columns(["Weight", "PersistConn", "ActiveConn", "InActConn"], widths: [9, 11, 10, 10], leftAligned: true)
        } else if format.contains(.tunnelInfo) {
            out.write("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
        } else if !format.contains(.rule) {
            out.write("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
        }
    }

    // MARK: - Services

    /// Every service with its real servers, sorted unless `--nosort`.
    func table(_ entries: [ServiceTableEntry], into out: inout TextBuffer) {
        if format.contains(.noSort) {
            for entry in entries { self.entry(entry.service, entry.realServers, into: &out) }
        } else {
            let servers = Dictionary(entries.map { ($0.service.key, $0.realServers) }, uniquingKeysWith: { first, _ in first })
            for service in ListingOrder.services(entries.map(\.service)) {
                entry(service, servers[service.key] ?? [], into: &out)
            }
        }
    }

    /// One service line and its real server lines.
    func entry(_ service: VirtualService, _ servers: [RealServer], into out: inout TextBuffer) {
        let name = serviceName(service.key)
        if format.contains(.rule) {
            ruleLine(service, name: name, into: &out)
        } else if format.contains(.stats) || format.contains(.rate) {
            out.left(name, 33)
            let s = service.statistics ?? Statistics()
            let values = format.contains(.stats)
                ? [s.connections, s.incomingPackets, s.outgoingPackets, s.incomingBytes, s.outgoingBytes]
                : [s.connectionRate, s.incomingPacketRate, s.outgoingPacketRate, s.incomingByteRate, s.outgoingByteRate]
            for value in values { largeNumber(value, into: &out) }
        } else {
            serviceLine(service, name: name, into: &out)
        }
        out.write("\n")
        let sorted = format.contains(.noSort) ? servers : ListingOrder.realServers(servers)
        for server in sorted { serverLine(server, in: service, serviceName: name, into: &out) }
    }

    /// `TCP  10.0.0.1:80` (`-t 10.0.0.1:80` for rules), `FWM  7`, `FWM  7 IPv6`.
    func serviceName(_ key: ServiceKey) -> String {
        switch key {
        case .firewallMark(let mark, let family):
            // ipvsadm 1.31 prints the mark with %d: marks above 2^31 come out negative.
            if format.contains(.rule) { return IPVSRule.service(key) }
            let shown = Int32(bitPattern: mark)
            return family == .inet6 ? "FWM  \(shown) IPv6" : "FWM  \(shown)"
        case .address(let proto, let address, let port):
            let endpoint = endpointName(address, port, proto)
            if format.contains(.rule) { return IPVSRule.service(key, endpoint: endpoint) }
            var text = proto.description
            if text.utf8.count < 4 { text += String(repeating: " ", count: 4 - text.utf8.count) }
            text += " " + endpoint
            return address.family == .inet6 ? text : TextBuffer.truncated(text, to: 33)
        }
    }

    /// `10.0.0.1:80`, `[fd00::1]:443`, or with names (`localhost:http`) unless `-n`.
    func endpointName(_ address: IPAddress, _ port: UInt16, _ proto: TransportProtocol?) -> String {
        let text: String
        if format.contains(.numeric) {
            text = address.family == .inet ? "\(address):\(port)" : "[\(address)]:\(port)"
        } else {
            let host = resolver.hostName(address) ?? address.description
            let service = resolver.serviceName(port, proto) ?? String(port)
            text = address.family == .inet ? "\(host):\(service)" : "[\(host)]:\(service)"
        }
        return TextBuffer.truncated(text, to: 59)
    }

    private func serviceLine(_ service: VirtualService, name: String, into out: inout TextBuffer) {
        out.write(name)
        out.write(" ")
        out.write(service.scheduler.rawValue)
        if !service.flags.schedulerFlags.isEmpty {
            out.write(" (")
            out.write(service.flags.schedulerFlagNames(for: service.scheduler).joined(separator: ","))
            out.write(")")
        }
        if let persistence = service.persistence {
            out.write(" persistent \(persistence.timeout)")
            if let mask = maskText(service) { out.write(" mask \(mask)") }
            if let engine = service.persistenceEngine { out.write(" pe \(engine)") }
        }
        if service.flags.contains(.onePacket) { out.write(" ops") }
    }

    private func ruleLine(_ service: VirtualService, name: String, into out: inout TextBuffer) {
        out.write("-A \(name) ")
        out.write(IPVSRule.settings(of: service))
    }

    /// The persistence mask when it is not the full address: `255.255.255.0`, or `64` for IPv6.
    private func maskText(_ service: VirtualService) -> String? {
        guard let length = service.persistence?.prefixLength, length != service.key.family.maxPrefixLength else { return nil }
        return Persistence.netmaskText(prefixLength: length, family: service.key.family)
    }

    // MARK: - Real servers

    private func serverLine(_ server: RealServer, in service: VirtualService, serviceName: String, into out: inout TextBuffer) {
        // Firewall-mark services have no protocol, so their real servers' ports stay numeric.
        var name = endpointName(server.address, server.port, service.key.transportProtocol)
        if !format.contains(.rule), server.address.family != .inet6 { name = TextBuffer.truncated(name, to: 28) }
        let connections = server.connections ?? ConnectionCounts()
        if format.contains(.rule) {
            out.write("-a \(serviceName) ")
            out.write(IPVSRule.settings(of: server, name: name))
            out.write("\n")
            return
        }
        out.write("  -> ")
        out.left(name, 28)
        if format.contains(.stats) {
            let s = server.statistics ?? Statistics()
            for value in [s.connections, s.incomingPackets, s.outgoingPackets, s.incomingBytes, s.outgoingBytes] {
                largeNumber(value, into: &out)
            }
        } else if format.contains(.rate) {
            let s = server.statistics ?? Statistics()
            for value in [s.connectionRate, s.incomingPacketRate, s.outgoingPacketRate] {
                out.write(" ")
                out.right(String(value), 8)
            }
            largeNumber(s.incomingByteRate, into: &out)
            largeNumber(s.outgoingByteRate, into: &out)
        } else if format.contains(.thresholds) {
            for value in [server.upperThreshold, server.lowerThreshold, connections.active, connections.inactive] {
                out.write(" ")
                out.left(String(value), 10)
            }
        } else if format.contains(.persistentConnections) {
            out.write(" ")
            out.left(String(UInt32(bitPattern: server.weight)), 9)
            out.write(" ")
            out.left(String(connections.persistent), 11)
            for value in [connections.active, connections.inactive] {
                out.write(" ")
                out.left(String(value), 10)
            }
        } else {
            out.write(" ")
            out.left(server.forwarding.description, 7)
            if format.contains(.tunnelInfo) {
                out.write(" ")
                out.left(Self.tunnelInfo(server) ?? "n/a", 13)
            }
            out.write(" ")
            out.left(String(server.weight), 6)
            for value in [connections.active, connections.inactive] {
                out.write(" ")
                out.left(String(value), 10)
            }
        }
        out.write("\n")
    }

    /// `ipip`, `gue:5555:+c`, `gre:-c` for tunnelling servers; `nil` otherwise.
    static func tunnelInfo(_ server: RealServer) -> String? {
        guard server.forwarding == .tunnel else { return nil }
        let checksum = server.tunnel.flags.contains(.remoteChecksum) ? "r+c" : server.tunnel.flags.contains(.checksum) ? "+c" : "-c"
        switch server.tunnel.type {
        case .ipip: return "ipip"
        case .gue: return "gue:\(server.tunnel.port):\(checksum)"
        case .gre: return "gre:\(checksum)"
        }
    }

    // MARK: - Numbers

    /// ipvsadm's counters: right-aligned in 9 columns, shortened to K/M/G/T above 10^8
    /// (`--exact`: every digit, one leading space at least).
    func largeNumber(_ value: UInt64, into out: inout TextBuffer) {
        if format.contains(.exact) {
            let digits = String(value)
            out.right(digits, digits.utf8.count <= 8 ? 9 : digits.utf8.count + 1)
            return
        }
        switch value {
        case ..<100_000_000: out.right(String(value), 9)
        case ..<1_000_000_000: out.right(String(value / 1_000), 8); out.write("K")
        case ..<100_000_000_000: out.right(String(value / 1_000_000), 8); out.write("M")
        case ..<100_000_000_000_000: out.right(String(value / 1_000_000_000), 8); out.write("G")
        default: out.right(String(value / 1_000_000_000_000), 8); out.write("T")
        }
    }
}

extension ServiceKey {
    /// The transport protocol of an address service; firewall-mark services have none.
    var transportProtocol: TransportProtocol? {
        if case .address(let proto, _, _) = self { return proto }
        return nil
    }
}
