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

// MARK: - Health overlay

/// What a health verdict does to a real server's configured weight in one virtual service.
public enum HealthAdjustment: Hashable, Sendable {
    /// Keep the server but send it no new connections (weight 0).
    case quiesce
    /// Delete the server from the service at once: unlike a removed endpoint it does not drain,
    /// so the kernel stops forwarding its existing connections too.
    case remove
    /// Serving, with the weight its check asked for instead of the configured one (exec checks
    /// with `health-exec-dynamic-weight: true`: exit status 2 to 255 asks for weight status - 2).
    case weight(Int32)
}

/// A seam for the health checker: adjustments of desired real servers, applied after mapping and
/// before the diff. An empty overlay leaves every configured weight as it is.
public struct HealthOverlay: Hashable, Sendable {
    /// Adjustments per backend: a virtual service and one of its real servers. Each virtual
    /// service's own checks decide its own weights; the same pod behind another virtual service
    /// (with no check, or a check that passes) is not adjusted there.
    public var adjustments: [BackendID: HealthAdjustment]
    /// Services below their health quorum, and what they serve instead (wins over `adjustments`).
    public var quorum: [ServiceKey: QuorumOverride]

    public init(adjustments: [BackendID: HealthAdjustment] = [:], quorum: [ServiceKey: QuorumOverride] = [:]) {
        self.adjustments = adjustments
        self.quorum = quorum
    }

    /// `state` with the adjustments applied.
    public func applied(to state: DesiredState) -> DesiredState {
        guard !adjustments.isEmpty || !quorum.isEmpty else { return state }
        var result = state
        for (key, desired) in state.services {
            if let adjusted = adjusted(desired, key: key) { result.services[key] = adjusted }
        }
        return result
    }

    /// `service` (desired under `key`) with its adjustments and its quorum override applied, or
    /// `nil` when none concerns it.
    public func adjusted(_ service: DesiredService, key: ServiceKey) -> DesiredService? {
        if let override = quorum[key] {
            var result = service
            result.realServers = override.servers(configured: service.realServers)
            // A fallback with health-on-failure: remove deletes the backends at once, as a verdict does.
            result.removedByHealth = Set(service.realServers.keys).subtracting(result.realServers.keys)
            return result
        }
        guard !adjustments.isEmpty else { return nil }
        var result = service
        var changed = false
        for id in service.realServers.keys {
            guard let adjustment = adjustments[BackendID(service: key, server: id)] else { continue }
            changed = true
            switch adjustment {
            case .quiesce:
                result.realServers[id]?.weight = 0
            case .remove:
                result.realServers[id] = nil
                result.removedByHealth.insert(id)
            case .weight(let weight):
                result.realServers[id]?.weight = weight
            }
        }
        return changed ? result : nil
    }

    /// The virtual services whose adjustments or quorum override differ between `self` and `other`.
    public func changedServices(comparedTo other: HealthOverlay) -> Set<ServiceKey> {
        var keys: Set<ServiceKey> = []
        for (id, adjustment) in adjustments where other.adjustments[id] != adjustment { keys.insert(id.service) }
        for id in other.adjustments.keys where adjustments[id] == nil { keys.insert(id.service) }
        for (key, override) in quorum where other.quorum[key] != override { keys.insert(key) }
        for key in other.quorum.keys where quorum[key] == nil { keys.insert(key) }
        return keys
    }

    /// Whether the overlay changes nothing.
    public var isEmpty: Bool { adjustments.isEmpty && quorum.isEmpty }
}
