import Foundation
import IPVS
import PacketFilter

/// Reads and validates a `v1 Service`.
enum ServiceDecoder {
    static let specFields: FieldNames = [
        "ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity", "loadBalancerIP",
        "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy", "healthCheckNodePort",
        "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies", "ipFamilyPolicy",
        "allocateLoadBalancerNodePorts", "loadBalancerClass", "internalTrafficPolicy", "trafficDistribution",
    ]
    static let portFields: FieldNames = ["name", "protocol", "appProtocol", "port", "targetPort", "nodePort"]
    static let objectFields: FieldNames = ["apiVersion", "kind", "metadata", "spec", "status"]
    static let sessionAffinityConfigFields: FieldNames = ["clientIP"]
    static let clientIPFields: FieldNames = ["timeoutSeconds"]
    static let statusFields: FieldNames = ["loadBalancer", "conditions"]
    static let loadBalancerFields: FieldNames = ["ingress"]
    static let ingressFields: FieldNames = ["ip", "hostname", "ipMode", "ports"]

    /// Reads the Service; problems that leave the rest of it usable (a load-balancer IP left out)
    /// go to `warnings`.
    static func decode(_ reader: NodeReader, warnings: inout [FieldError]) throws -> KubeService {
        let object = try reader.mapping(known: objectFields)
        let metadata = try ManifestDecoder.metadata(try object.required("metadata"), name: .dns1035Label)
        var service = KubeService(name: metadata.name, annotations: metadata.annotations)
        service.creationTimestamp = metadata.creationTimestamp
        guard let specReader = object["spec"] else { throw reader.fail("a Service needs a spec") }
        let spec = try specReader.mapping(known: specFields)

        // MARK: Type and addresses
        if let type = spec["type"] {
            let text = try type.string()
            guard let value = KubeService.ServiceType(rawValue: text) else {
                throw type.fail("must be ClusterIP, NodePort, LoadBalancer or ExternalName, got \"\(text)\"")
            }
            service.type = value
        }
        let clusterIP = try spec.string("clusterIP")
        if clusterIP == "None" {
            service.isHeadless = true
        } else if let clusterIP, !clusterIP.isEmpty {
            service.clusterIPs = [try virtualAddress(spec.required("clusterIP"), role: .clusterIP)]
        }
        let clusterIPs = try spec.list("clusterIPs")
        if !clusterIPs.isEmpty, !service.isHeadless {
            let addresses = try clusterIPs.map { try virtualAddress($0, role: .clusterIP) }
            if let first = service.clusterIPs.first, first != addresses[0] {
                throw clusterIPs[0].fail("must equal spec.clusterIP (\(first)), got \(addresses[0])")
            }
            // At most two, of different families (a set of the families is built only for the message).
            if addresses.count > 2 || (addresses.count == 2 && addresses[0].family == addresses[1].family) {
                throw clusterIPs[0].fail("at most one address per family (dual-stack), got \(addresses.map(\.description))")
            }
            service.clusterIPs = addresses
        }
        service.externalIPs = try spec.list("externalIPs").map { try virtualAddress($0, role: .externalIP) }
        if let status = object["status"] {
            service.loadBalancerIngress = try loadBalancerIngress(status, warnings: &warnings)
        }

        // MARK: Ports
        // Duplicates are found among the ports read so far (a Service has a handful); the paths of
        // the earlier entries are only put together for the message.
        let portReaders = try spec.list("ports")
        for entry in portReaders {
            let fields = try entry.mapping(known: portFields)
            let name = try fields.string("name") ?? ""
            let transport = try fields["protocol"]?.transportProtocol() ?? .tcp
            let port = try fields.required("port").port()
            var targetPort: ServicePort.TargetPort?
            if let target = fields["targetPort"] {
                targetPort = target.isInteger ? .number(try target.port()) : .name(try portName(target))
            }
            let nodePort = try fields["nodePort"]?.port()
            if let previous = service.ports.firstIndex(where: { $0.port == port && $0.transport == transport }) {
                throw entry.fail("duplicate port \(port)/\(transport) (also \(portReaders[previous].path))")
            }
            if let previous = service.ports.firstIndex(where: { $0.name == name }) {
                let also = portReaders[previous].path
                throw entry.fail(name.isEmpty ? "ports must be named when a Service has several (also \(also))"
                                              : "duplicate port name \"\(name)\" (also \(also))")
            }
            service.ports.append(ServicePort(name: name, transport: transport, port: port, targetPort: targetPort, nodePort: nodePort))
        }
        if service.ports.isEmpty, service.type != .externalName, !service.isHeadless {
            throw specReader.fail("spec.ports must list at least one port")
        }

        // MARK: Policies
        if let affinity = try spec.string("sessionAffinity") {
            switch affinity {
            case "None": break
            case "ClientIP":
                let config = try spec["sessionAffinityConfig"]?.mapping(known: sessionAffinityConfigFields)
                let clientIP = try config?["clientIP"]?.mapping(known: clientIPFields)
                service.sessionAffinityTimeout = UInt32(try clientIP?["timeoutSeconds"]?.integer(in: 1...86400) ?? 10800)
            default:
                throw try spec.required("sessionAffinity").fail("must be None or ClientIP, got \"\(affinity)\"")
            }
        }
        service.externalTrafficLocal = try trafficPolicy(spec, "externalTrafficPolicy")
        service.internalTrafficLocal = try trafficPolicy(spec, "internalTrafficPolicy")
        service.loadBalancerSourceRanges = try spec.list("loadBalancerSourceRanges").map { entry in
            let text = try entry.string()
            // The API server takes the range with spaces around it, as kube-proxy does.
            guard let range = AddressPrefix(text.trimmingCharacters(in: .whitespaces)) else {
                throw entry.fail("must be an address range in CIDR notation (10.0.0.0/8, 2001:db8::/32), got \"\(text)\"")
            }
            return range
        }
        service.healthCheckNodePort = try spec["healthCheckNodePort"]?.port()
        try schedulerAnnotations(metadata.annotations, reader: reader, into: &service)
        return service
    }

    private static func portName(_ reader: NodeReader) throws -> String {
        let name = try reader.string()
        let allowed = name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
        guard !name.isEmpty, name.count <= 15, allowed, name.contains(where: \.isLetter),
              !name.hasPrefix("-"), !name.hasSuffix("-") else {
            throw reader.fail("must be a port number 1..65535 or a port name (up to 15 lowercase letters, digits and '-'), got \"\(name)\"")
        }
        return name
    }

    private static func trafficPolicy(_ spec: MappingReader, _ field: String) throws -> Bool {
        guard let value = try spec.string(field) else { return false }
        switch value {
        case "Local": return true
        case "Cluster": return false
        default: throw try spec.required(field).fail("must be Cluster or Local, got \"\(value)\"")
        }
    }

    private static func loadBalancerIngress(_ status: NodeReader, warnings: inout [FieldError]) throws -> [IPAddress] {
        let fields = try status.mapping(known: statusFields)
        guard let balancer = try fields["loadBalancer"]?.mapping(known: loadBalancerFields) else { return [] }
        var addresses: [IPAddress] = []
        for entry in try balancer.list("ingress") {
            let ingress = try entry.mapping(known: ingressFields)
            // Like kube-proxy: an `ipMode: Proxy` balancer sends traffic to the node, not to the VIP.
            if try ingress.string("ipMode") == "Proxy" { continue }
            guard let ip = ingress["ip"] else { continue }
            let address = try ip.ipAddress()
            // The API server takes such an address here, and kube-proxy would map the Service's others.
            if let refusal = refusal(of: address, at: ip, role: .loadBalancerIP) { warnings.append(refusal); continue }
            addresses.append(address)
        }
        return addresses
    }

    // MARK: - Virtual addresses

    /// What an address of a Service is used as.
    enum AddressRole: String {
        case clusterIP = "a ClusterIP"
        case externalIP = "an external IP"
        case loadBalancerIP = "a load-balancer IP"
    }

    /// Reads an address that becomes a virtual service's address and a VIP bound on the dummy
    /// interface: an unspecified, loopback, link-local, multicast or broadcast address is refused
    /// (bound on the node, a loopback or link-local VIP would capture the node's own traffic).
    static func virtualAddress(_ reader: NodeReader, role: AddressRole) throws -> IPAddress {
        let address = try reader.ipAddress()
        if let refusal = refusal(of: address, at: reader, role: role) { throw refusal }
        return address
    }

    /// Why `address` (read at `reader`) cannot be used as `role`, or `nil` when it can.
    static func refusal(of address: IPAddress, at reader: NodeReader, role: AddressRole) -> FieldError? {
        guard let purpose = address.specialPurpose else { return nil }
        let advice = switch role {
        case .clusterIP: "the API server refuses it; use an address of the cluster's Service CIDR"
        case .externalIP: "use a unicast address routed to the nodes"
        case .loadBalancerIP: "this address is left out, the Service's other addresses are mapped"
        }
        let article = purpose == .unspecified ? "an" : "a"
        return reader.fail("\(address) is \(article) \(purpose) address and cannot be \(role.rawValue) (\(advice))")
    }

    // MARK: - Scheduler annotations

    /// The words of the flags annotation: the sh and mh flag names (`ServiceFlags.schedulerFlagNames`;
    /// the generic `flag-N` names are ipvsctl's only) and `onepacket`.
    static let flagWords: [String] = (ServiceFlags.schedulerFlagNames.filter { $0.scheduler != nil }.map(\.name) + ["onepacket"]).sorted()

    private static func schedulerAnnotations(_ annotations: [String: String], reader: NodeReader, into service: inout KubeService) throws {
        if annotations.isEmpty { return }
        let prefix = reader.fieldPrefix
        if let name = annotations[ManifestDecoder.schedulerAnnotation] {
            let field = "metadata.annotations[\(ManifestDecoder.schedulerAnnotation)]"
            let scheduler = Scheduler(rawValue: name.trimmingCharacters(in: .whitespaces))
            guard scheduler.isKnown else {
                throw FieldError(path: prefix + field, line: reader.line,
                                 message: "unknown scheduler \"\(name)\"; use one of \(Scheduler.knownNames)")
            }
            service.scheduler = scheduler
        }
        if let text = annotations[ManifestDecoder.schedulerFlagsAnnotation] {
            let flagsField = prefix + "metadata.annotations[\(ManifestDecoder.schedulerFlagsAnnotation)]"
            var flags: ServiceFlags = []
            var named: (word: String, scheduler: Scheduler)?
            for word in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !word.isEmpty {
                if word == "onepacket" {
                    flags.insert(.onePacket)
                    continue
                }
                guard let flag = ServiceFlags.schedulerFlag(named: word), let scheduler = flag.scheduler else {
                    throw FieldError(path: flagsField, line: reader.line,
                                     message: "unknown scheduler flag \"\(word)\"; use \(flagWords.joined(separator: ", "))")
                }
                // Whether the flags apply to the Service's scheduler is decided when it is mapped
                // (ServiceMapper), where `--scheduler` is known; flags of two schedulers never apply.
                if let named, named.scheduler != scheduler {
                    throw FieldError(path: flagsField, line: reader.line,
                                     message: "\"\(named.word)\" and \"\(word)\" are flags of two schedulers (\(named.scheduler) and \(scheduler)); name the flags of one")
                }
                named = (word, scheduler)
                flags.insert(flag.flag)
            }
            service.flagsScheduler = named?.scheduler
            service.schedulerFlags = flags
        }
    }
}
