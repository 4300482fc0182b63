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
/// (`pkg/proxy/ipvs/proxier.go`, `syncService` and `writeIptablesRules`).
enum PacketFilterMapper {
    /// `desired`'s virtual services sorted into the table's sets, each by the Service it comes from
    /// (`services`): its ClusterIPs, load-balancer IPs with their source ranges, and the rest
    /// (external IPs and node ports), which follow `externalTrafficPolicy`.
    static func state(of desired: DesiredState, services: [ObjectName: KubeService], options: PacketFilterOptions) -> PacketFilterState {
        var state = PacketFilterState(guardedAddresses: desired.addresses, clusterPrefixes: Set(options.clusterPrefixes))
        for (key, wanted) in desired.services {
            guard case .address(let transport, let address, let port) = key, let service = services[wanted.origin] else { continue }
            let frontend = Frontend(address, transport, port)
            if desired.addresses.contains(address) { state.accepted.insert(frontend) }
            for server in wanted.realServers.keys { state.hairpin.insert(Frontend(server.address, transport, server.port)) }
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
