import AgentStatus
import IPVS

/// The reconciler's state that `/status` shows (copies that share storage with the reconciler's).
public struct StatusSource: Sendable {
    let ownership: Ownership
    let kernel: KernelState
    let drains: DrainTracker
    let desired: DesiredState

    /// The document: every owned service with its real servers, sorted.
    public func status() -> AgentStatus {
        let services = ownership.services.sorted().compactMap { key -> AgentStatus.Service? in
            guard let entry = kernel.services[key] else { return nil }
            let servers = entry.realServers.values.sorted { $0.id < $1.id }.map {
                AgentStatus.RealServer(address: $0.id.description, weight: $0.weight,
                                       draining: drains.isDraining(RealServerRef(service: key, server: $0.id)))
            }
            return AgentStatus.Service(service: key.description, scheduler: entry.service.scheduler.rawValue,
                                       kubernetesService: desired.services[key].map { "\($0.origin)" }, realServers: servers)
        }
        return AgentStatus(services: services, addresses: ownership.addresses.sorted().map(\.description))
    }
}

extension Reconciler {
    /// What the agent has programmed, for `/status`.
    public func status() -> AgentStatus {
        statusSource().status()
    }
}
