import HealthCheck
import IPVS

/// One virtual service the agent wants in the kernel, with its real servers.
public struct DesiredService: Hashable, Sendable {
    public var service: VirtualService
    public var realServers: [RealServerID: RealServer]
    /// The Kubernetes Service it comes from.
    public var origin: ObjectName
    /// The Service port's name (empty when unnamed).
    public var portName: String
    /// How its real servers are health-checked (the Service's `ipvs.swift.dev/health-*`
    /// annotations over `--health-check`), or `nil` for no checks.
    public var health: HealthCheckConfiguration?
    /// Endpoints that health checks took out of `realServers` (`health-on-failure: remove`): they
    /// are deleted from the kernel at once, not drained, so their existing connections stop too.
    public var removedByHealth: Set<RealServerID>

    public init(service: VirtualService, realServers: [RealServerID: RealServer] = [:], origin: ObjectName, portName: String = "",
                health: HealthCheckConfiguration? = nil, removedByHealth: Set<RealServerID> = []) {
        self.service = service
        self.realServers = realServers
        self.origin = origin
        self.portName = portName
        self.health = health
        self.removedByHealth = removedByHealth
    }

    /// `default/web:http`: the Service and port, for logs and the health status.
    public var displayName: String { portName.isEmpty ? origin.description : "\(origin):\(portName)" }
}

/// Everything the agent wants in the kernel: virtual services and the VIPs bound on the dummy interface.
public struct DesiredState: Hashable, Sendable {
    public var services: [ServiceKey: DesiredService]
    /// Addresses to bind on the dummy interface (ClusterIPs, external IPs, load balancer IPs).
    public var addresses: Set<IPAddress>

    public init(services: [ServiceKey: DesiredService] = [:], addresses: Set<IPAddress> = []) {
        self.services = services
        self.addresses = addresses
    }

    /// The number of real servers over all services.
    public var realServerCount: Int { services.values.reduce(0) { $0 + $1.realServers.count } }
}
