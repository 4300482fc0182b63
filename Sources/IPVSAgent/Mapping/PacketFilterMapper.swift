import IPVS
import PacketFilter

/// How the agent's nftables table treats ClusterIP traffic (`--cluster-cidr`, `--masquerade-all`).
public struct PacketFilterOptions: Hashable, Sendable {
    /// The pod network: ClusterIP traffic from elsewhere is masqueraded (`--cluster-cidr`).
    public var clusterPrefixes: [AddressPrefix]
    /// Masquerade all ClusterIP traffic, from pods too (`--masquerade-all`).
    public var masqueradeAll: Bool

    public init(clusterPrefixes: [AddressPrefix] = [], masqueradeAll: Bool = false) {
        self.clusterPrefixes = clusterPrefixes
        self.masqueradeAll = masqueradeAll
    }
}

/// The nftables state of a desired IPVS state, as kube-proxy's IPVS mode fills its ipsets
/// (`pkg/proxy/ipvs/proxier.go`, `syncService` and `writeIptablesRules`), one Service at a time: the
/// table holds the union of every Service's part (`PacketFilter.update`), so a change to one Service
/// maps that Service's part only.
enum PacketFilterMapper {
    /// The name of the part that holds the pod network (`--cluster-cidr`); no Service is named so
    /// (an object name never starts with `-`).
    static let clusterPart = "--cluster-cidr"

    /// The part of the table that holds the options' pod network.
    static func clusterState(options: PacketFilterOptions) -> PacketFilterState {
        PacketFilterState(clusterPrefixes: Set(options.clusterPrefixes))
    }

    /// The parts of the table, by name, for the Services `names` as the builder last mapped them
    /// (an empty part for a Service that went), or for every Service and the pod network when
    /// `names` is `nil`.
    static func parts(of builder: DesiredStateBuilder, names: Set<ObjectName>?, options: PacketFilterOptions) -> [String: PacketFilterState] {
        var parts: [String: PacketFilterState] = [:]
        if names == nil { parts[clusterPart] = clusterState(options: options) }
        for name in names ?? Set(builder.cache.keys) { parts[name.description] = state(of: name, in: builder, options: options) }
        return parts
    }

    /// The part of Service `name` as the builder last mapped it: the virtual services it holds in
    /// the merged state (not those another Service kept) and the addresses it binds; an empty state
    /// when the Service is gone.
    static func state(of name: ObjectName, in builder: DesiredStateBuilder, options: PacketFilterOptions) -> PacketFilterState {
        guard let entry = builder.cache[name] else { return PacketFilterState() }
        let held = entry.mapping.services.keys.lazy.compactMap { key in
            builder.state.services[key].flatMap { $0.origin == name ? (key, $0) : nil }
        }
        return state(of: entry.service, virtualServices: held, addresses: entry.mapping.addresses,
                     localEndpoints: localEndpoints(of: entry.slices, nodeName: builder.options.nodeName), options: options)
    }

    /// The addresses of `slices`' endpoints on node `nodeName`: kube-proxy's `IsLocal`. Only they
    /// can hairpin, since only a pod on this node sends its packets through this node's IPVS.
    static func localEndpoints(of slices: [EndpointSlice], nodeName: String?) -> Set<IPAddress> {
        guard let nodeName else { return [] }
        var local: Set<IPAddress> = []
        for slice in slices {
            for endpoint in slice.endpoints where endpoint.nodeName == nodeName { if let address = endpoint.address { local.insert(address) } }
        }
        return local
    }

    /// `service`'s virtual services sorted into the table's sets: its ClusterIPs, load-balancer IPs
    /// with their source ranges, and the rest (external IPs and node ports), which follow
    /// `externalTrafficPolicy`. `addresses` are the VIPs it binds; `localEndpoints` the endpoints on
    /// this node, the only ones that get a hairpin element (KUBE-LOOP-BACK holds local endpoints only).
    static func state(of service: KubeService, virtualServices: some Sequence<(ServiceKey, DesiredService)>,
                      addresses: Set<IPAddress>, localEndpoints: Set<IPAddress>, options: PacketFilterOptions) -> PacketFilterState {
        var state = PacketFilterState(guardedAddresses: addresses)
        for (key, wanted) in virtualServices {
            guard case .address(let transport, let address, let port) = key else { continue }
            let frontend = Frontend(address, transport, port)
            if addresses.contains(address) { state.accepted.insert(frontend) }
            for server in wanted.realServers.keys where localEndpoints.contains(server.address) {
                state.hairpin.insert(Frontend(server.address, transport, server.port))
            }
            if service.clusterIPs.contains(address) {
                // KUBE-CLUSTER-IP: everything with --masquerade-all, else what comes from outside the
                // pod network; without --cluster-cidr kube-proxy marks none of it either.
                if options.masqueradeAll {
                    state.masquerade.insert(frontend)
                } else if !options.clusterPrefixes.isEmpty {
                    state.masqueradeOutsideCluster.insert(frontend)
                }
                continue
            }
            // KUBE-EXTERNAL-IP, KUBE-LOAD-BALANCER, KUBE-NODE-PORT-*: masqueraded, unless Local
            // (their -LOCAL sets), which keeps the client's address and serves from local pods only.
            if !service.externalTrafficLocal { state.masquerade.insert(frontend) }
            if service.loadBalancerIngress.contains(address), !service.loadBalancerSourceRanges.isEmpty {
                state.sourceRanges[frontend] = Set(service.loadBalancerSourceRanges)
            }
        }
        return state
    }
}
