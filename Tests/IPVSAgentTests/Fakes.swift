import Dispatch
import IPVS
@testable import IPVSAgent

/// An in-memory IPVS table with the kernel's answers to duplicates and missing objects; counts
/// every operation it is asked to apply.
final class FakeIPVS: IPVSBackend, @unchecked Sendable {
    var state = KernelState()
    var applied: [IPVSOperation] = []
    var tableReads = 0
    /// Connection counts reported for real servers.
    var connections: [RealServerRef: ConnectionCounts] = [:]
    /// Real server addresses the fake kernel refuses to add (as the kernel refuses an invalid one).
    var refusedRealServers: Set<IPAddress> = []
    /// Called with every batch before it is applied (to look at what was recorded before).
    var beforeApply: (([IPVSOperation]) -> Void)?

    func table() throws -> [ServiceTableEntry] {
        tableReads += 1
        return state.services.values.map { entry in
            ServiceTableEntry(service: entry.service, realServers: entry.realServers.values.map { server in
                var copy = server
                copy.connections = connections[RealServerRef(service: entry.service.key, server: server.id)] ?? ConnectionCounts()
                return copy
            })
        }
    }

    func realServers(of key: ServiceKey) throws -> [RealServer] {
        guard let entry = state.services[key] else { throw IPVSError(kind: .serviceNotFound, operation: "list") }
        return entry.realServers.values.map { server in
            var copy = server
            copy.connections = connections[RealServerRef(service: key, server: server.id)] ?? ConnectionCounts()
            return copy
        }
    }

    func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] {
        beforeApply?(operations)
        applied += operations
        return operations.map { operation in
            let fail = { (kind: IPVSError.Kind) in IPVSOperationResult.failure(IPVSError(kind: kind, operation: operation.description)) }
            switch operation {
            case .addService(let service):
                if state.services[service.key] != nil { return fail(.serviceExists) }
            case .updateService(let service):
                if state.services[service.key] == nil { return fail(.serviceNotFound) }
            case .deleteService(let key):
                if state.services[key] == nil { return fail(.serviceNotFound) }
            case .addRealServer(let server, let key):
                guard let entry = state.services[key] else { return fail(.serviceNotFound) }
                if entry.realServers[server.id] != nil { return fail(.realServerExists) }
                if refusedRealServers.contains(server.address) { return fail(.invalidArgument) }
            case .updateRealServer(let server, let key):
                guard let entry = state.services[key] else { return fail(.serviceNotFound) }
                if entry.realServers[server.id] == nil { return fail(.realServerNotFound) }
            case .deleteRealServer(let id, let key):
                guard let entry = state.services[key] else { return fail(.serviceNotFound) }
                if entry.realServers[id] == nil { return fail(.realServerNotFound) }
            default:
                break
            }
            state.record(operation)
            return .success(())
        }
    }
}

final class FakeVIPs: VIPBackend, @unchecked Sendable {
    var interfaces: [String: Set<IPAddress>] = [:]
    var changes: [String] = []

    func ensureInterface(named name: String) throws -> Bool {
        if interfaces[name] != nil { return false }
        interfaces[name] = []
        return true
    }

    func addresses(on name: String) throws -> Set<IPAddress> { interfaces[name] ?? [] }

    func deleteInterfaceIfUnused(named name: String) throws -> Bool {
        guard interfaces[name]?.isEmpty == true else { return false }
        interfaces[name] = nil
        changes.append("delete \(name)")
        return true
    }

    /// Signalled after each address bound (bindings may run on a thread of their own).
    let bound = DispatchSemaphore(value: 0)

    /// Addresses the fake kernel refuses to bind.
    var refused: Set<IPAddress> = []

    /// Whether binding on a missing interface fails, as in the kernel (ENODEV).
    var requiresInterface = false

    /// Called with every address before it is bound (to look at what was recorded before).
    var beforeAdd: ((IPAddress) -> Void)?

    func add(_ address: IPAddress, to name: String) throws {
        beforeAdd?(address)
        if refused.contains(address) || (requiresInterface && interfaces[name] == nil) {
            bound.signal()
            throw NodeNetworkErrorStandIn(message: "refused \(address)")
        }
        changes.append("add \(address)")
        interfaces[name, default: []].insert(address)
        bound.signal()
    }

    func remove(_ address: IPAddress, from name: String) throws {
        changes.append("remove \(address)")
        interfaces[name]?.remove(address)
    }
}

/// What `FakeVIPs` throws for a refused address.
struct NodeNetworkErrorStandIn: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

// MARK: - Shorthands

func ip(_ text: String) -> IPAddress { IPAddress(text)! }
func tcp(_ address: String, _ port: UInt16) -> ServiceKey { .address(.tcp, ip(address), port: port) }
func udp(_ address: String, _ port: UInt16) -> ServiceKey { .address(.udp, ip(address), port: port) }
func server(_ address: String, _ port: UInt16, weight: Int32 = 1) -> RealServer {
    RealServer(address: ip(address), port: port, forwarding: .masquerade, weight: weight)
}
func desired(_ key: ServiceKey, _ servers: [RealServer], scheduler: Scheduler = .roundRobin) -> DesiredService {
    DesiredService(service: VirtualService(key: key, scheduler: scheduler),
                   realServers: Dictionary(uniqueKeysWithValues: servers.map { ($0.id, $0) }),
                   origin: ObjectName(namespace: "default", name: "test"))
}
