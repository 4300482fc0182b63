import IPVS

/// What the healthCheckNodePort server of one Service answers: kube-proxy serves one for each
/// Service of type `LoadBalancer` with `externalTrafficPolicy: Local` (`NeedsHealthCheck`), on its
/// `spec.healthCheckNodePort`, so that the cloud load balancer sends traffic only to nodes that
/// have ready endpoints of it.
struct HealthCheckNodePort: Hashable, Sendable {
    /// `spec.healthCheckNodePort`.
    var port: UInt16
    /// This node's ready endpoints of the Service, each pod counted once (kube-proxy's
    /// `LocalReadyEndpoints`: distinct addresses, so a pod behind two ports counts once).
    var localEndpoints: Int

    /// The healthCheckNodePort of every Service that wants one, as the builder last mapped them.
    static func wanted(in builder: DesiredStateBuilder) -> [ObjectName: HealthCheckNodePort] {
        var wanted: [ObjectName: HealthCheckNodePort] = [:]
        for (name, entry) in builder.cache { wanted[name] = of(entry, nodeName: builder.options.nodeName) }
        return wanted
    }

    /// `previous` (what this returned last time) brought up to date with the Services the builder
    /// mapped again since then; every Service is looked at only when the builder says all changed.
    static func wanted(in builder: inout DesiredStateBuilder, updating previous: [ObjectName: HealthCheckNodePort])
        -> [ObjectName: HealthCheckNodePort] {
        guard let changed = builder.takeChangedServices(for: .serviceHealth) else { return wanted(in: builder) }
        var wanted = previous
        for name in changed { wanted[name] = builder.cache[name].flatMap { of($0, nodeName: builder.options.nodeName) } }
        return wanted
    }

    /// The healthCheckNodePort of one mapped Service, `nil` when it wants none.
    private static func of(_ entry: DesiredStateBuilder.Entry, nodeName: String?) -> HealthCheckNodePort? {
        let service = entry.service
        guard service.type == .loadBalancer, service.externalTrafficLocal, let port = service.healthCheckNodePort else { return nil }
        return HealthCheckNodePort(port: port, localEndpoints: localReadyEndpoints(of: service, slices: entry.slices, nodeName: nodeName))
    }

    /// The endpoints of `slices` that are ready (`conditions.ready`: terminating ones do not count,
    /// as kube-proxy's) on node `nodeName`, in the Service's IP families; a dual-stack pod, listed
    /// once per family, counts once.
    static func localReadyEndpoints(of service: KubeService, slices: [EndpointSlice], nodeName: String?) -> Int {
        guard let nodeName else { return 0 }
        let families = ServiceMapper.Families(service)
        var addresses: [AddressFamily: Set<IPAddress>] = [:]
        for slice in ServiceMapper.usableSlices(slices) where slice.addressFamily != nil {
            for endpoint in slice.endpoints where endpoint.ready && endpoint.nodeName == nodeName {
                guard let address = endpoint.address, address.family == slice.addressFamily, families.contains(address) else { continue }
                addresses[address.family, default: []].insert(address)
            }
        }
        return addresses.values.map(\.count).max() ?? 0
    }
}
