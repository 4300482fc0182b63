import IPVS

/// What the agent's nftables table should hold: the elements of its sets. The table's chains and
/// rules never change; a sync adds and deletes set elements only (`PacketFilterRuleset`).
public struct PacketFilterState: Hashable, Sendable {
    /// Addresses on which only `accepted` frontends are reachable: every other new TCP, UDP or SCTP
    /// connection to them is dropped (the VIPs bound on the dummy interface; kube-proxy's
    /// `KUBE-IPVS-IPS` and `KUBE-IPVS-FILTER`).
    public var guardedAddresses: Set<IPAddress>
    /// The frontends reachable on `guardedAddresses` (every virtual service on them).
    public var accepted: Set<Frontend>
    /// Frontends whose forwarded traffic is always masqueraded (node ports, external and load-balancer
    /// IPs of Services without `externalTrafficPolicy: Local`; ClusterIPs with `--masquerade-all`).
    public var masquerade: Set<Frontend>
    /// Frontends whose traffic is masqueraded unless it comes from `clusterPrefixes` (ClusterIPs with
    /// `--cluster-cidr`; kube-proxy's `KUBE-CLUSTER-IP`).
    public var masqueradeOutsideCluster: Set<Frontend>
    /// The pod network (`--cluster-cidr`).
    public var clusterPrefixes: Set<AddressPrefix>
    /// Frontends reachable only from the given sources (`loadBalancerSourceRanges`; kube-proxy's
    /// `KUBE-LOAD-BALANCER-FW` and `KUBE-LOAD-BALANCER-SOURCE-CIDR`). An empty set of sources is no limit.
    public var sourceRanges: [Frontend: Set<AddressPrefix>]
    /// Endpoints (pod address, protocol, target port) whose traffic from themselves is masqueraded,
    /// so that a pod reaching itself through a Service gets its answer (kube-proxy's `KUBE-LOOP-BACK`).
    public var hairpin: Set<Frontend>

    public init(guardedAddresses: Set<IPAddress> = [], accepted: Set<Frontend> = [], masquerade: Set<Frontend> = [],
                masqueradeOutsideCluster: Set<Frontend> = [], clusterPrefixes: Set<AddressPrefix> = [],
                sourceRanges: [Frontend: Set<AddressPrefix>] = [:], hairpin: Set<Frontend> = []) {
        self.guardedAddresses = guardedAddresses
        self.accepted = accepted
        self.masquerade = masquerade
        self.masqueradeOutsideCluster = masqueradeOutsideCluster
        self.clusterPrefixes = clusterPrefixes
        self.sourceRanges = sourceRanges
        self.hairpin = hairpin
    }
}
