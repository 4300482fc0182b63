import IPVS

/// The `--output json` documents. Field names are snake_case and stable; counters are exact
/// integers; absent values are `null`. See `HelpText.jsonReference` for the schema.
enum JSONListing {
    /// `-L [-t|-u|--sctp-service|-f SERVICE] --output json`.
    static func table(_ entries: [ServiceTableEntry], info: IPVSInfo?, sorted: Bool) -> TextBuffer {
        var json = JSONWriter()
        json.beginObject()
        if let info {
            json.field("version", info.versionString)
            json.field("connection_table_size", UInt64(info.connectionTableSize))
        }
        json.beginArray("services")
        let services = sorted ? ListingOrder.services(entries.map(\.service)) : entries.map(\.service)
        let servers = Dictionary(entries.map { ($0.service.key, $0.realServers) }, uniquingKeysWith: { first, _ in first })
        for service in services {
            let list = servers[service.key] ?? []
            write(service, realServers: sorted ? ListingOrder.realServers(list) : list, into: &json)
        }
        json.endArray()
        json.endObject()
        return json.finish()
    }

    private static func write(_ service: VirtualService, realServers: [RealServer], into json: inout JSONWriter) {
        json.beginObject()
        json.field("name", service.key.description)
        json.field("family", service.key.family == .inet ? "ipv4" : "ipv6")
        switch service.key {
        case .address(let proto, let address, let port):
            json.field("protocol", proto.description.lowercased())
            json.field("address", address.description)
            json.field("port", UInt64(port))
            json.field("fwmark", nil as UInt64?)
        case .firewallMark(let mark, _):
            json.field("protocol", nil as String?)
            json.field("address", nil as String?)
            json.field("port", nil as UInt64?)
            json.field("fwmark", UInt64(mark))
        }
        json.field("scheduler", service.scheduler.rawValue)
        json.field("scheduler_flags", strings: service.flags.schedulerFlagNames(for: service.scheduler))
        json.field("one_packet", service.flags.contains(.onePacket))
        if let persistence = service.persistence {
            json.beginObject("persistence")
            json.field("timeout", UInt64(persistence.timeout))
            json.field("prefix_length", UInt64(service.persistencePrefixLength))
            json.endObject()
        } else {
            json.field("persistence", nil as String?)
        }
        json.field("persistence_engine", service.persistenceEngine)
        statistics(service.statistics, into: &json)
        json.beginArray("real_servers")
        for server in realServers {
            json.beginObject()
            json.field("address", server.address.description)
            json.field("port", UInt64(server.port))
            json.field("forwarding", forwardingName(server.forwarding))
            json.field("weight", Int64(server.weight))
            json.field("upper_threshold", UInt64(server.upperThreshold))
            json.field("lower_threshold", UInt64(server.lowerThreshold))
            let connections = server.connections ?? ConnectionCounts()
            json.field("active_connections", UInt64(connections.active))
            json.field("inactive_connections", UInt64(connections.inactive))
            json.field("persistent_connections", UInt64(connections.persistent))
            if server.forwarding == .tunnel {
                json.beginObject("tunnel")
                json.field("type", server.tunnel.type.description)
                json.field("port", server.tunnel.type == .gue ? UInt64(server.tunnel.port) : nil)
                json.field("checksum", server.tunnel.flags.contains(.remoteChecksum) ? "remote"
                           : server.tunnel.flags.contains(.checksum) ? "on" : "off")
                json.endObject()
            } else {
                json.field("tunnel", nil as String?)
            }
            statistics(server.statistics, into: &json)
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }

    private static func statistics(_ statistics: Statistics?, into json: inout JSONWriter) {
        let s = statistics ?? Statistics()
        json.beginObject("stats")
        json.field("connections", s.connections)
        json.field("in_packets", s.incomingPackets)
        json.field("out_packets", s.outgoingPackets)
        json.field("in_bytes", s.incomingBytes)
        json.field("out_bytes", s.outgoingBytes)
        json.endObject()
        json.beginObject("rates")
        json.field("connections_per_second", s.connectionRate)
        json.field("in_packets_per_second", s.incomingPacketRate)
        json.field("out_packets_per_second", s.outgoingPacketRate)
        json.field("in_bytes_per_second", s.incomingByteRate)
        json.field("out_bytes_per_second", s.outgoingByteRate)
        json.endObject()
    }

    /// `masquerade`, `local`, `tunnel`, `route`.
    static func forwardingName(_ method: ForwardingMethod) -> String {
        switch method {
        case .masquerade: "masquerade"
        case .local: "local"
        case .tunnel: "tunnel"
        case .directRouting: "route"
        }
    }

    /// `-L --timeout --output json`.
    static func timeouts(_ timeouts: Timeouts) -> TextBuffer {
        var json = JSONWriter()
        json.beginObject()
        json.field("tcp", UInt64(timeouts.tcp))
        json.field("tcp_fin", UInt64(timeouts.tcpFin))
        json.field("udp", UInt64(timeouts.udp))
        json.endObject()
        return json.finish()
    }

    /// `-L --daemon --output json`.
    static func daemons(_ daemons: [SyncDaemon]) -> TextBuffer {
        var json = JSONWriter()
        json.beginObject()
        json.beginArray("daemons")
        for daemon in daemons {
            json.beginObject()
            json.field("role", daemon.role.description)
            json.field("interface", daemon.interface)
            json.field("sync_id", UInt64(daemon.syncID))
            json.field("max_length", daemon.maximumLength.map(UInt64.init))
            json.field("multicast_group", daemon.multicastGroup?.description)
            json.field("multicast_port", daemon.multicastPort.map(UInt64.init))
            json.field("multicast_ttl", daemon.multicastTTL.map(UInt64.init))
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.finish()
    }

    /// `-L -c --output json`.
    static func connections(_ entries: [ConnectionEntry]) -> TextBuffer {
        var json = JSONWriter()
        json.beginObject()
        json.beginArray("connections")
        for entry in entries {
            json.beginObject()
            json.field("protocol", entry.protocolName.lowercased())
            json.field("client_address", entry.client.description)
            json.field("client_port", UInt64(entry.clientPort))
            json.field("virtual_address", entry.virtual.description)
            json.field("virtual_port", UInt64(entry.virtualPort))
            json.field("destination_address", entry.destination.description)
            json.field("destination_port", UInt64(entry.destinationPort))
            json.field("state", entry.state)
            json.field("expires_seconds", Int64(entry.expiresSeconds))
            json.field("persistence_engine", entry.persistenceEngine)
            json.field("persistence_data", entry.persistenceData)
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.finish()
    }
}
