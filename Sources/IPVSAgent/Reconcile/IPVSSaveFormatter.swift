import IPVS

/// Prints operations as `ipvsadm` command arguments in the form `ipvsadm -S` saves them
/// (`-A -t 10.96.0.10:80 -s rr`, `-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1`), so a dry run can
/// be read by anyone who knows ipvsadm, or even piped into `ipvsadm -R`.
public enum IPVSSaveFormatter {
    public static func line(_ operation: IPVSOperation) -> String {
        switch operation {
        case .addService(let service): "-A " + serviceArguments(service)
        case .updateService(let service): "-E " + serviceArguments(service)
        case .deleteService(let key): "-D " + keyArguments(key)
        case .addRealServer(let server, let key): "-a " + serverArguments(server, key)
        case .updateRealServer(let server, let key): "-e " + serverArguments(server, key)
        case .deleteRealServer(let id, let key): "-d \(keyArguments(key)) -r \(id)"
        case .zero(let key?): "-Z " + keyArguments(key)
        case .zero(nil): "-Z"
        case .flush: "-C"
        }
    }

    /// Every operation, one per line, then the VIP changes as `ip address` commands in comments.
    public static func lines(_ plan: ReconcilePlan, interface: String) -> [String] {
        plan.addressesToAdd.map { "# ip address add \($0)/\($0.family.maxPrefixLength) dev \(interface)" }
            + plan.operations.map(line)
            + plan.addressesToRemove.map { "# ip address del \($0)/\($0.family.maxPrefixLength) dev \(interface)" }
    }

    static func keyArguments(_ key: ServiceKey) -> String {
        switch key {
        case .address(let transport, let address, let port):
            let option = switch transport {
            case .tcp: "-t"
            case .udp: "-u"
            case .sctp: "--sctp-service"
            }
            return "\(option) \(address.withPort(port))"
        case .firewallMark(let mark, let family):
            return family == .inet ? "-f \(mark)" : "-f \(mark) -6"
        }
    }

    private static func serviceArguments(_ service: VirtualService) -> String {
        var text = "\(keyArguments(service.key)) -s \(service.scheduler)"
        let schedulerFlags = service.flags.intersection([.scheduler1, .scheduler2, .scheduler3])
        if !schedulerFlags.isEmpty {
            let prefix = service.scheduler.rawValue == "sh" ? "sh" : service.scheduler.rawValue == "mh" ? "mh" : "flag"
            var names: [String] = []
            if schedulerFlags.contains(.scheduler1) { names.append(prefix == "flag" ? "flag-1" : "\(prefix)-fallback") }
            if schedulerFlags.contains(.scheduler2) { names.append(prefix == "flag" ? "flag-2" : "\(prefix)-port") }
            if schedulerFlags.contains(.scheduler3) { names.append("flag-3") }
            text += " -b " + names.joined(separator: ",")
        }
        if service.flags.contains(.onePacket) { text += " -o" }
        if let persistence = service.persistence {
            text += " -p \(persistence.timeout)"
            if let prefix = persistence.prefixLength, prefix != service.key.family.maxPrefixLength {
                text += service.key.family == .inet ? " -M \(netmask(prefix))" : " -M \(prefix)"
            }
        }
        if let engine = service.persistenceEngine { text += " --pe \(engine)" }
        return text
    }

    private static func serverArguments(_ server: RealServer, _ key: ServiceKey) -> String {
        let method = switch server.forwarding {
        case .masquerade: "-m"
        case .directRouting, .local: "-g"
        case .tunnel: "-i"
        }
        var text = "\(keyArguments(key)) -r \(server.id) \(method) -w \(server.weight)"
        if server.upperThreshold != 0 { text += " -x \(server.upperThreshold)" }
        if server.lowerThreshold != 0 { text += " -y \(server.lowerThreshold)" }
        return text
    }

    private static func netmask(_ prefix: Int) -> String {
        let value: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefix)
        return IPAddress.v4(value).description
    }
}
