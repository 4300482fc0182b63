import Conntrack
import IPVS

/// The connection tracking entries that kernel changes left stale, as kube-proxy's IPVS mode
/// finds them (`pkg/proxy/conntrack`, the generation that cleans after each change): only UDP,
/// whose flows have no end a real server's removal could close.
/// - A UDP real server deleted (not merely set to weight 0), or deleted with its virtual service:
///   the entries from the virtual service's address and port to that real server
///   (kube-proxy's `DeletedUDPEndpoints`).
/// - A UDP virtual service that gains its first real server of non-zero weight: the entries
///   cached for its address and port while nothing served them (`NewlyActiveUDPServices`).
///
/// Every virtual service is one frontend (a ClusterIP, an external or load-balancer IP, or one
/// node address of a node port), so the filters name its address and port.
struct ConntrackCleanup: Sendable {
    /// The filters found since the last `take()`, without repeats.
    private var filters: Set<ConntrackFilter> = []

    var isEmpty: Bool { filters.isEmpty }

    /// Notes the entries `operation` leaves stale; `kernel` is the model before it was applied.
    mutating func note(_ operation: IPVSOperation, before kernel: KernelState) {
        filters.formUnion(Self.filters(for: operation, before: kernel))
    }

    /// Notes the entries a cold start's new virtual service `entry` leaves stale (it gained its real servers at once).
    mutating func noteAdded(_ entry: KernelState.Entry) {
        guard let server = entry.realServers.values.first(where: { $0.weight > 0 }) else { return }
        note(.addRealServer(server, service: entry.service.key), before: KernelState())
    }

    /// The filters noted so far, in order; forgets them.
    mutating func take() -> [ConntrackFilter] {
        defer { filters = [] }
        return filters.sorted()
    }

    /// The entries `operation` leaves stale when the kernel applies it to `kernel`.
    static func filters(for operation: IPVSOperation, before kernel: KernelState) -> [ConntrackFilter] {
        switch operation {
        case .deleteRealServer(let id, let key):
            guard case .address(.udp, let address, let port) = key else { return [] }
            return [ConntrackFilter(transport: .udp, destination: address, port: port, replySource: id.address)]
        case .deleteService(let key):
            guard case .address(.udp, let address, let port) = key else { return [] }
            let servers = Set(kernel.services[key]?.realServers.keys.map(\.address) ?? [])
            return servers.sorted().map { ConntrackFilter(transport: .udp, destination: address, port: port, replySource: $0) }
        case .addRealServer(let server, let key), .updateRealServer(let server, let key):
            guard case .address(.udp, let address, let port) = key, server.weight > 0,
                  kernel.services[key]?.realServers.values.contains(where: { $0.weight > 0 }) != true else { return [] }
            return [ConntrackFilter(transport: .udp, destination: address, port: port)]
        default:
            return []
        }
    }
}
