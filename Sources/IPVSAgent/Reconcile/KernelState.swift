import IPVS

/// The agent's model of the kernel's IPVS table: read once, then kept up to date from the results
/// of the operations the agent applies, and re-read by the periodic verification.
public struct KernelState: Hashable, Sendable {
    /// A virtual service as the kernel has it, with its real servers by address and port.
    public struct Entry: Hashable, Sendable {
        public var service: VirtualService
        public var realServers: [RealServerID: RealServer]

        public init(service: VirtualService, realServers: [RealServerID: RealServer] = [:]) {
            self.service = service
            self.realServers = realServers
        }
    }

    public var services: [ServiceKey: Entry]

    public init(services: [ServiceKey: Entry] = [:]) {
        self.services = services
    }

    /// The model of a table dump.
    public init(table: [ServiceTableEntry]) {
        var services: [ServiceKey: Entry] = [:]
        services.reserveCapacity(table.count)
        for entry in table {
            services[entry.service.key] = Entry(service: entry.service,
                                                realServers: Dictionary(entry.realServers.map { ($0.id, $0) }) { first, _ in first })
        }
        self.services = services
    }

    /// Records the effect of an operation the kernel accepted.
    public mutating func record(_ operation: IPVSOperation) {
        switch operation {
        case .addService(let service), .updateService(let service):
            let servers = services[service.key]?.realServers ?? [:]
            services[service.key] = Entry(service: service.configuration, realServers: servers)
        case .deleteService(let key):
            services[key] = nil
        case .addRealServer(let server, let key), .updateRealServer(let server, let key):
            services[key]?.realServers[server.id] = server.configuration
        case .deleteRealServer(let id, let key):
            services[key]?.realServers[id] = nil
        case .flush:
            services = [:]
        case .zero:
            break
        }
    }

    /// The number of real servers over all services.
    public var realServerCount: Int { services.values.reduce(0) { $0 + $1.realServers.count } }
}
