#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// `-R`'s script walked over the table the kernel has, before anything is sent: which services
/// and real servers exist after each line, and the refusal the kernel would answer a line with
/// (add of an existing service or real server; edit, delete or zero of a missing one). A script
/// that would meet one changes nothing.
///
/// It follows the kernel's `ip_vs_genl_set_cmd`: a refused line changes nothing, so the lines
/// after it see the table without it. Refusals that depend on more than the table (a scheduler or
/// persistence engine the kernel cannot load, an address its routing calls not unicast) are
/// left to the kernel, and `-R` undoes the script when one comes (`TableRollback`).
struct RestoreCheck {
    /// The real servers of each service, by what identifies them in the kernel.
    private var servers: [ServiceKey: Set<RealServerID>]

    init(_ table: [ServiceTableEntry]) {
        servers = Dictionary(minimumCapacity: table.count)
        for entry in table { servers[entry.service.key] = Set(entry.realServers.map(\.id)) }
    }

    /// Every line of `script` that the kernel would refuse, given `table`, in order.
    static func refusals(of script: RestoreScript, against table: [ServiceTableEntry]) -> [(line: Int, error: IPVSError)] {
        var check = RestoreCheck(table)
        var refusals: [(line: Int, error: IPVSError)] = []
        for (line, step) in script.steps {
            if case .change(let operation) = step, let error = check.apply(operation) { refusals.append((line, error)) }
        }
        return refusals
    }

    /// Applies `operation` to the table when the kernel would accept it; else returns the kernel's
    /// refusal (with the kernel's error number) and leaves the table as it was.
    mutating func apply(_ operation: IPVSOperation) -> IPVSError? {
        func refusal(_ kind: IPVSError.Kind, _ code: Int32) -> IPVSError {
            IPVSError(kind: kind, operation: operation.description, errno: code)
        }
        switch operation {
        case .flush:
            servers.removeAll()
        case .zero(nil):
            break
        case .addService(let service):
            guard servers[service.key] == nil else { return refusal(.serviceExists, EEXIST) }
            servers[service.key] = []
        case .updateService(let service):
            guard servers[service.key] != nil else { return refusal(.serviceNotFound, ESRCH) }
        case .deleteService(let key):
            guard servers.removeValue(forKey: key) != nil else { return refusal(.serviceNotFound, ESRCH) }
        case .zero(let key?):
            guard servers[key] != nil else { return refusal(.serviceNotFound, ESRCH) }
        case .addRealServer(let server, let key):
            guard servers[key] != nil else { return refusal(.serviceNotFound, ESRCH) }
            guard servers[key, default: []].insert(server.id).inserted else { return refusal(.realServerExists, EEXIST) }
        case .updateRealServer(let server, let key):
            guard let ids = servers[key] else { return refusal(.serviceNotFound, ESRCH) }
            guard ids.contains(server.id) else { return refusal(.realServerNotFound, ENOENT) }
        case .deleteRealServer(let id, let key):
            guard servers[key] != nil else { return refusal(.serviceNotFound, ESRCH) }
            guard servers[key, default: []].remove(id) != nil else { return refusal(.realServerNotFound, ENOENT) }
        }
        return nil
    }
}
