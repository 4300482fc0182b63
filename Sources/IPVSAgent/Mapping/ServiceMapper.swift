import HealthCheck
import IPVS

/// Settings of the mapping from Kubernetes objects to IPVS.
public struct MappingOptions: Hashable, Sendable {
    /// The scheduler of Services without the scheduler annotation (`--scheduler`).
    public var scheduler: Scheduler
    /// This node's name, for `internalTrafficPolicy`/`externalTrafficPolicy: Local` and node hints (`--node-name`).
    public var nodeName: String?
    /// This node's zone, for the zone hints of EndpointSlices: its Node's `topology.kubernetes.io/zone`
    /// label with the API server, `--node-zone` with files; `nil` (no zone) ignores zone hints.
    public var zone: String?
    /// The addresses NodePorts listen on (`--node-ip`).
    public var nodeAddresses: [IPAddress]
    /// Every address the node holds on its interfaces other than the dummy one: an external or
    /// load-balancer IP among them gets its virtual services but is never bound on the dummy
    /// interface (kube-proxy's rule), so the agent never takes a node's address over.
    public var localAddresses: Set<IPAddress>
    /// The health check of Services before their `ipvs.swift.dev/health-*` annotations
    /// (`--health-check`, then the configuration file's `healthChecks.default`); kind `.disabled`
    /// means no checks unless a Service asks for them.
    public var health: HealthCheckConfiguration
    /// The health checks the configuration file sets for single Services (`healthChecks.services`),
    /// used instead of `health` under those Services' annotations.
    public var serviceHealth: [ObjectName: HealthCheckConfiguration]
    /// The exec checks and fallback servers Service annotations may name (`healthChecks.allowed`).
    public var allowed: OperatorAllowances

    public init(scheduler: Scheduler = .roundRobin, nodeName: String? = nil,
                nodeAddresses: [IPAddress] = [], localAddresses: Set<IPAddress> = [], zone: String? = nil,
                health: HealthCheckConfiguration = MappingOptions.noHealthChecks,
                serviceHealth: [ObjectName: HealthCheckConfiguration] = [:], allowed: OperatorAllowances = .none) {
        self.zone = zone
        self.health = health
        self.serviceHealth = serviceHealth
        self.allowed = allowed
        self.scheduler = scheduler
        self.nodeName = nodeName
        self.nodeAddresses = nodeAddresses
        self.localAddresses = localAddresses
    }
}

extension MappingOptions {
    /// The default: no health checks unless a Service's annotations ask for them.
    public static let noHealthChecks: HealthCheckConfiguration = {
        var configuration = HealthCheckConfiguration.default
        configuration.kind = .disabled
        return configuration
    }()
}

/// What one Kubernetes Service maps to.
public struct ServiceMapping: Hashable, Sendable {
    public var services: [ServiceKey: DesiredService] = [:]
    public var addresses: Set<IPAddress> = []
    public var issues: [ManifestIssue] = []
}

/// Maps a Service and its endpoints to virtual services, the way kube-proxy's IPVS mode does.
///
/// - Every Service port on every ClusterIP (both families), external IP and load balancer ingress IP,
///   and for NodePort and LoadBalancer Services on every node address at the node port; frontends
///   only in the Service's own IP families (those of its ClusterIPs), as kube-proxy runs one proxier
///   per family and each skips a Service without a ClusterIP of its family.
/// - Endpoints: the ready ones; when none is ready, the ones both serving and terminating (so a
///   rolling restart does not drop traffic). `Local` traffic policies keep this node's endpoints only;
///   `Cluster` ones follow the slices' topology hints as kube-proxy's `CategorizeEndpoints` does
///   (`pkg/proxy/topology.go`, `Topology`).
///   One real server per endpoint, at its first address: the API calls an endpoint's addresses
///   interchangeable, and kube-proxy uses the first.
/// - Scheduler `mh` without the flags annotation gets `mh-port`, as kube-proxy sets
///   `IP_VS_SVC_F_SCHED_MH_PORT` on its `mh` services. Flags of another scheduler than the Service's
///   (whether the annotation or `--scheduler` chose it) are reported and left out, and the Service
///   is programmed: kube-proxy never refuses a Service over scheduler flags.
/// - Real servers are reached by NAT with weight 1, as kube-proxy's.
/// - The endpoint port is the slice port named like the Service port (the EndpointSlice controller
///   resolves named target ports per pod); a numeric `targetPort` is the fallback for slices without ports.
/// - `sessionAffinity: ClientIP` becomes persistence with the Service's timeout.
/// - ExternalName and headless Services map to nothing.
public enum ServiceMapper {
    public static func map(_ service: KubeService, slices: [EndpointSlice], options: MappingOptions) -> ServiceMapping {
        var result = ServiceMapping()
        if service.type == .externalName || service.isHeadless { return result }
        let object = "Service \(service.name)"

        // MARK: Scheduler
        let scheduler = service.scheduler ?? options.scheduler
        var flags = service.schedulerFlags ?? (scheduler == .maglevHashing ? .mhPort : [])
        if let named = service.flagsScheduler, named != scheduler {
            let source = service.scheduler == nil ? "--scheduler" : ManifestDecoder.schedulerAnnotation
            let names = flags.schedulerFlagNames(for: named).joined(separator: ",")
            result.issues.append(ManifestIssue(at: service.location, object: object,
                                               field: "metadata.annotations[\(ManifestDecoder.schedulerFlagsAnnotation)]",
                                               message: "\(names): flags of the \(named) scheduler, which \(scheduler) (set by \(source)) does not take; the Service is programmed without them"))
            flags.subtract(flags.schedulerFlags)
        }
        let persistence = service.sessionAffinityTimeout.map { Persistence(timeout: $0) }

        // MARK: Health checks
        var health: HealthCheckConfiguration?
        do throws(HealthSettingsError) {
            let configuration = try HealthSettings.configuration(annotations: service.annotations, prefix: ManifestDecoder.annotationPrefix,
                                                                 defaults: options.serviceHealth[service.name] ?? options.health,
                                                                 author: .tenant(allowed: options.allowed))
            if configuration.kind != .disabled {
                health = configuration
            } else if let tuning = unusedHealthAnnotation(service.annotations) {
                // Settings for a check that does not run: most likely a forgotten health-check.
                let prefix = ManifestDecoder.annotationPrefix
                result.issues.append(ManifestIssue(at: service.location, object: object, field: "metadata.annotations[\(tuning)]",
                                                   message: "has no effect: no health check applies to this Service; set \(prefix)health-check "
                                                       + "(or a default check: --health-check, or healthChecks.default in --config)"))
            }
        } catch {
            let (key, message): (String?, String)
            switch error {
            case .setting(let setting, let value, let problem):
                (key, message) = (ManifestDecoder.annotationPrefix + setting.annotationName, "\"\(value)\" \(problem)")
            case .unknown(let annotation, let value, let problem):
                (key, message) = (annotation, "\"\(value)\" \(problem)")
            case .defaults(let invalid):
                (key, message) = (nil, "\(invalid)")
            }
            result.issues.append(ManifestIssue(at: service.location, object: object,
                                               field: key.map { "metadata.annotations[\($0)]" } ?? "metadata.annotations",
                                               message: "\(message); the Service is not health-checked"))
        }

        // MARK: Frontends
        let usable = usableSlices(slices)
        let families = Families(service)
        for (index, address) in service.externalIPs.enumerated() where !families.contains(address) {
            result.issues.append(ManifestIssue(at: service.location, object: object, field: "spec.externalIPs[\(index)]",
                                               message: "\(address) is \(address.family) but the Service has no \(address.family) ClusterIP; "
                                                   + "it is left out, as kube-proxy does (make the Service dual-stack, or remove the address)"))
        }
        for port in service.ports {
            var frontends: [(address: IPAddress, port: UInt16, external: Bool)] = []
            frontends += service.clusterIPs.map { ($0, port.port, false) }
            frontends += service.externalIPs.lazy.filter(families.contains).map { ($0, port.port, true) }
            frontends += service.loadBalancerIngress.lazy.filter(families.contains).map { ($0, port.port, true) }
            if service.type != .clusterIP, let nodePort = port.nodePort {
                frontends += options.nodeAddresses.lazy.filter(families.contains).map { ($0, nodePort, true) }
            }
            for family in AddressFamily.allCases where frontends.contains(where: { $0.address.family == family }) {
                let candidates = endpoints(for: port, family: family, slices: usable, service: service, into: &result)
                let internalServers = realServers(select(candidates, local: service.internalTrafficLocal, options: options), options: options)
                // Chosen again only for external frontends under another traffic policy: most
                // Services have none.
                let externalServers = !frontends.contains(where: { $0.external && $0.address.family == family }) ? [:]
                    : service.externalTrafficLocal == service.internalTrafficLocal ? internalServers
                    : realServers(select(candidates, local: service.externalTrafficLocal, options: options), options: options)
                for frontend in frontends where frontend.address.family == family {
                    let key = ServiceKey.address(port.transport, frontend.address, port: frontend.port)
                    let virtual = VirtualService(key: key, scheduler: scheduler, flags: flags, persistence: persistence)
                    result.services[key] = DesiredService(service: virtual, realServers: frontend.external ? externalServers : internalServers,
                                                          origin: service.name, portName: port.name, health: health)
                }
            }
        }
        result.addresses = Set(addresses(of: service, options: options))
        return result
    }

    /// The VIPs a Service binds on the dummy interface: its cluster IPs, and its external IPs and
    /// load balancer ingress IPs in its own families that are not the node's own addresses
    /// (`options.localAddresses`); none for ExternalName and headless Services. They depend on
    /// the Service object (not its endpoints), so they are known as soon as it is decoded.
    public static func addresses(of service: KubeService, options: MappingOptions) -> [IPAddress] {
        if service.type == .externalName || service.isHeadless { return [] }
        let families = Families(service)
        let external = (service.externalIPs + service.loadBalancerIngress).filter {
            families.contains($0) && !options.localAddresses.contains($0)
        }
        return service.clusterIPs + external
    }

    /// The VIPs of the Service objects among `objects`.
    public static func addresses(in objects: [ManifestObject], options: MappingOptions) -> [IPAddress] {
        objects.flatMap { object -> [IPAddress] in
            if case .service(let service) = object { return addresses(of: service, options: options) }
            return []
        }
    }

    /// The IP families of a Service's ClusterIPs: the only families its frontends are in.
    struct Families {
        private var inet = false, inet6 = false

        init(_ service: KubeService) {
            for address in service.clusterIPs {
                if address.family == .inet { inet = true } else { inet6 = true }
            }
        }

        func contains(_ address: IPAddress) -> Bool { address.family == .inet ? inet : inet6 }
    }

    /// The first `health-*` annotation of a Service that does not say `health-check` itself.
    static func unusedHealthAnnotation(_ annotations: [String: String]) -> String? {
        let prefix = ManifestDecoder.annotationPrefix + "health-"
        guard annotations[prefix + "check"] == nil else { return nil }
        return annotations.keys.filter { $0.hasPrefix(prefix) }.min()
    }

    // MARK: - Endpoints

    /// The slices whose endpoints count: the EndpointSlices, or the converted `v1 Endpoints` of a
    /// Service that has no EndpointSlice.
    static func usableSlices(_ slices: [EndpointSlice]) -> [EndpointSlice] {
        let endpointSlices = slices.filter { $0.origin == .endpointSlice }
        return endpointSlices.isEmpty ? slices : endpointSlices
    }

    /// An endpoint address with its resolved port and conditions.
    struct Candidate: Hashable {
        var address: IPAddress
        var port: UInt16
        var endpoint: Endpoint
    }

    private static func endpoints(for port: ServicePort, family: AddressFamily, slices: [EndpointSlice],
                                  service: KubeService, into result: inout ServiceMapping) -> [Candidate] {
        var candidates: [Candidate] = []
        for slice in slices where slice.addressFamily == nil || slice.addressFamily == family {
            let resolved: UInt16
            if let match = slice.ports.first(where: { $0.name == port.name && $0.transport == port.transport }) {
                resolved = match.port
            } else if case .number(let number) = port.targetPort, slice.ports.isEmpty {
                resolved = number
            } else {
                if !slice.endpoints.isEmpty {
                    let target: String = switch port.targetPort {
                    case .number(let number): "\(number)"
                    case .name(let name): "\"\(name)\""
                    }
                    let kind = slice.origin == .endpoints ? "Endpoints" : "EndpointSlice"
                    result.issues.append(ManifestIssue(
                        at: slice.location, object: "\(kind) \(slice.name)", field: slice.origin == .endpoints ? "subsets[].ports" : "ports",
                        message: "no \(port.transport) port named \"\(port.name)\" for port \(port.port) (targetPort \(target)) of Service \(service.name); its endpoints are left out of that port"))
                }
                continue
            }
            // The first address only: the API calls the others interchangeable (kube-proxy's choice).
            for endpoint in slice.endpoints {
                guard let address = endpoint.address, address.family == family else { continue }
                candidates.append(Candidate(address: address, port: resolved, endpoint: endpoint))
            }
        }
        return candidates
    }

    /// kube-proxy's choice (`CategorizeEndpoints`): ready endpoints, else the serving and terminating
    /// ones; `local` keeps only this node's before choosing, and `Cluster` traffic keeps the ready
    /// endpoints the topology hints give this node or zone (`Topology`), never the terminating ones.
    static func select(_ candidates: [Candidate], local: Bool, options: MappingOptions) -> [Candidate] {
        let pool = local ? candidates.filter { $0.endpoint.nodeName != nil && $0.endpoint.nodeName == options.nodeName } : candidates
        let topology: Topology = local ? .none : Topology(candidates.map(\.endpoint), nodeName: options.nodeName, zone: options.zone)
        let ready = pool.filter { $0.endpoint.ready && topology.admits($0.endpoint) }
        if !ready.isEmpty { return ready }
        return pool.filter { $0.endpoint.serving && $0.endpoint.terminating }
    }

    private static func realServers(_ candidates: [Candidate], options: MappingOptions) -> [RealServerID: RealServer] {
        var servers: [RealServerID: RealServer] = [:]
        servers.reserveCapacity(candidates.count)
        for candidate in candidates {
            let server = RealServer(address: candidate.address, port: candidate.port, forwarding: .masquerade, weight: 1)
            servers[server.id] = server
        }
        return servers
    }
}
