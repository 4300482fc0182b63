import Dispatch
import IPVS
import TestSupport
@testable import IPVSAgent

extension FakeIPVS {
    /// The table as the reconciler models it; tests read it and change it behind the agent's back.
    var state: KernelState {
        get { KernelState(table: entries) }
        set {
            entries = newValue.services.values.map { entry in
                ServiceTableEntry(service: entry.service, realServers: Array(entry.realServers.values))
            }
        }
    }
}

final class FakeVIPs: VIPBackend, @unchecked Sendable {
    var interfaces: [String: Set<IPAddress>] = [:]
    var changes: [String] = []

    /// The interfaces set up; with `interfaces`, the fake's link state.
    var up: Set<String> = []
    /// Interfaces created and set up, and addresses bound, in order: "create NAME", "up NAME", "add ADDRESS".
    var timeline: [String] = []

    func ensureInterface(named name: String, up: Bool) throws -> Bool {
        let created = interfaces[name] == nil
        if created {
            interfaces[name] = []
            self.up.remove(name) // Deleted behind the agent's back and created again: down.
            timeline.append("create \(name)")
        }
        if up, self.up.insert(name).inserted { timeline.append("up \(name)") }
        return created
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
        timeline.append("add \(address)")
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
