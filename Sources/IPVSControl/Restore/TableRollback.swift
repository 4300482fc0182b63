import IPVS

/// The changes that turn one IPVS table back into another: what `-R` sends, when the kernel
/// refused one of its lines, to put back the table it read before applying anything (a `-C` of
/// the script included).
///
/// Services and real servers are compared by their configuration (scheduler, flags, persistence,
/// persistence engine; forwarding, weight, thresholds, tunnel), never by their counters.
struct TableRollback {
    /// The operations, in an order the kernel accepts: services that must go, then services that
    /// must come back or change, each followed by its real servers.
    var operations: [IPVSOperation] = []

    /// The rollback from `current` to `saved`; empty when the two tables are the same.
    init(from current: [ServiceTableEntry], to saved: [ServiceTableEntry]) {
        var now = Dictionary(current.map { ($0.service.key, $0) }, uniquingKeysWith: { first, _ in first })
        let wanted = Set(saved.map(\.service.key))
        for entry in current where !wanted.contains(entry.service.key) {
            operations.append(.deleteService(entry.service.key))
        }
        for entry in saved {
            let key = entry.service.key
            guard let existing = now.removeValue(forKey: key) else {
                operations.append(.addService(entry.service.configuration))
                for server in entry.realServers {
                    operations.append(.addRealServer(server.configuration, service: key))
                }
                continue
            }
            if existing.service.configuration != entry.service.configuration {
                operations.append(.updateService(entry.service.configuration))
            }
            var servers = Dictionary(existing.realServers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let wantedServers = Set(entry.realServers.map(\.id))
            for server in existing.realServers where !wantedServers.contains(server.id) {
                operations.append(.deleteRealServer(server.id, service: key))
            }
            for server in entry.realServers {
                if let present = servers.removeValue(forKey: server.id) {
                    if present.configuration != server.configuration {
                        operations.append(.updateRealServer(server.configuration, service: key))
                    }
                } else {
                    operations.append(.addRealServer(server.configuration, service: key))
                }
            }
        }
    }
}
