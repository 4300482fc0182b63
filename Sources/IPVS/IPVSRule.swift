/// The command-line form of IPVS objects and changes, as `ipvsadm -S` saves a table and `ipvsadm -R`
/// reads it back: `-A -t 10.96.0.10:80 -s rr`, `-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1`.
///
/// Written once for ipvsctl's `-S` (byte for byte ipvsadm's) and the agent's dry run. Addresses are
/// numeric unless the caller passes the names it resolved.
public enum IPVSRule {
    /// The option naming a service: `-t 10.0.0.1:80`, `-u …`, `--sctp-service …`, `-f 7`, `-f 7 -6`.
    /// `endpoint` replaces the numeric `address:port` (ipvsctl's `-S` without `-n` prints names).
    public static func service(_ key: ServiceKey, endpoint: String? = nil) -> String {
        switch key {
        case .address(let transport, let address, let port):
            let option = switch transport {
            case .tcp: "-t"
            case .udp: "-u"
            case .sctp: "--sctp-service"
            }
            return "\(option) \(endpoint ?? address.withPort(port))"
        case .firewallMark(let mark, let family):
            // ipvsadm prints the mark with %d: marks above 2^31 come out negative.
            let shown = Int32(bitPattern: mark)
            return family == .inet6 ? "-f \(shown) -6" : "-f \(shown)"
        }
    }

    /// A service's settings after its name, in ipvsadm's order: `-s rr -p 300 -M 255.255.255.0
    /// --pe sip -o -b mh-fallback,mh-port`.
    public static func settings(of service: VirtualService) -> String {
        var text = "-s \(service.scheduler.rawValue)"
        if let persistence = service.persistence {
            text += " -p \(persistence.timeout)"
            if let length = persistence.prefixLength, length != service.key.family.maxPrefixLength {
                text += " -M " + Persistence.netmaskText(prefixLength: length, family: service.key.family)
            }
        }
        if let engine = service.persistenceEngine { text += " --pe \(engine)" }
        if service.flags.contains(.onePacket) { text += " -o" }
        // As ipvsadm: ` -b ` whenever a flag bit is set, though sh and mh have no name for flag 3.
        if !service.flags.schedulerFlags.isEmpty {
            text += " -b " + service.flags.schedulerFlagNames(for: service.scheduler).joined(separator: ",")
        }
        return text
    }

    /// A real server's settings after the service's name: `-r 10.244.1.5:8080 -m -w 1`, with the
    /// tunnel's options for `-i` (`--tun-type gue --tun-port 6080 --tun-csum`). `name` replaces the
    /// numeric `address:port`.
    public static func settings(of server: RealServer, name: String? = nil) -> String {
        var text = "-r \(name ?? server.id.description) \(forwardingSwitch(server.forwarding)) -w \(server.weight)"
        if server.forwarding == .tunnel {
            text += " --tun-type \(server.tunnel.type)"
            switch server.tunnel.type {
            case .ipip: break
            case .gue: text += " --tun-port \(server.tunnel.port) \(checksumOption(server.tunnel.flags))"
            case .gre: text += " \(checksumOption(server.tunnel.flags))"
            }
        }
        return text
    }

    /// An operation as the ipvsadm command that makes it: `-A …`, `-E …`, `-D …`, `-a …`, `-e …`,
    /// `-d -t 10.0.0.1:80 -r 10.244.1.5:8080`, `-Z`, `-C`.
    public static func command(_ operation: IPVSOperation) -> String {
        switch operation {
        case .addService(let service): "-A \(self.service(service.key)) \(settings(of: service))"
        case .updateService(let service): "-E \(self.service(service.key)) \(settings(of: service))"
        case .deleteService(let key): "-D \(service(key))"
        case .addRealServer(let server, let key): "-a \(service(key)) \(settings(of: server))"
        case .updateRealServer(let server, let key): "-e \(service(key)) \(settings(of: server))"
        case .deleteRealServer(let id, let key): "-d \(service(key)) -r \(id)"
        case .zero(let key?): "-Z \(service(key))"
        case .zero(nil): "-Z"
        case .flush: "-C"
        }
    }

    /// `-m`, `-i` or `-g` (also for local servers, as ipvsadm saves them).
    public static func forwardingSwitch(_ method: ForwardingMethod) -> String {
        switch method {
        case .masquerade: "-m"
        case .tunnel: "-i"
        case .local, .directRouting: "-g"
        }
    }

    /// The checksum option of a GUE or GRE tunnel: `--tun-remcsum`, `--tun-csum` or `--tun-nocsum`.
    public static func checksumOption(_ flags: TunnelFlags) -> String {
        flags.contains(.remoteChecksum) ? "--tun-remcsum" : flags.contains(.checksum) ? "--tun-csum" : "--tun-nocsum"
    }
}
