import IPVS

/// An in-memory IPVS table that answers as the kernel does through `IPVSClient`, for the unit tests
/// of every target (say nothing about the kernel itself: that is what the kernel tests are for).
///
/// It refuses what the kernel refuses for the table alone: adding a service or real server that
/// exists (`serviceExists`, `realServerExists`, EEXIST), editing, deleting or listing the real
/// servers of a missing one (`serviceNotFound`, `realServerNotFound`, ESRCH and ENOENT). It keeps
/// what the kernel keeps: the configuration of services and real servers, not their counters.
/// `failing` adds other refusals (an address the kernel would not take, a scheduler it lacks).
public final class FakeIPVS: IPVSBackend, @unchecked Sendable {
    /// The table in the order the kernel lists it (the order services were added).
    public var entries: [ServiceTableEntry] = []
    /// Every operation asked for, refused ones too, in order.
    public var applied: [IPVSOperation] = []
    /// Every `apply(_:)` call's operations.
    public var batches: [[IPVSOperation]] = []
    /// How many times `table()` was read.
    public var tableReads = 0
    /// Connection counts the table reports for real servers (zero when missing).
    public var connections: [ServiceKey: [RealServerID: ConnectionCounts]] = [:]
    /// The connection timeouts (`--set`).
    public var timeoutsValue = Timeouts(tcp: 900, tcpFin: 120, udp: 300)
    /// Called with every batch before it is applied (to look at what was recorded before).
    public var beforeApply: (([IPVSOperation]) -> Void)?
    /// An error for an operation the kernel would refuse for another reason than the table, or `nil`.
    public var failing: (IPVSOperation) -> IPVSError? = { _ in nil }

    public init() {}

    // MARK: - Reads

    public func info() throws -> IPVSInfo { IPVSInfo(version: 0x010201, connectionTableSize: 4096) }

    public func services() throws -> [VirtualService] { entries.map(\.service) }

    public func service(_ key: ServiceKey) throws -> VirtualService {
        guard let entry = entries.first(where: { $0.service.key == key }) else {
            throw IPVSError(kind: .serviceNotFound, operation: "read service \(key)", errno: 3)
        }
        return entry.service
    }

    public func realServers(of key: ServiceKey) throws -> [RealServer] {
        guard let entry = entries.first(where: { $0.service.key == key }) else {
            throw IPVSError(kind: .serviceNotFound, operation: "list real servers of \(key)", errno: 3)
        }
        return entry.realServers.map { counted($0, of: key) }
    }

    public func table() throws -> [ServiceTableEntry] {
        tableReads += 1
        return entries.map { entry in
            ServiceTableEntry(service: entry.service, realServers: entry.realServers.map { counted($0, of: entry.service.key) })
        }
    }

    private func counted(_ server: RealServer, of key: ServiceKey) -> RealServer {
        var copy = server
        copy.connections = connections[key]?[server.id] ?? server.connections ?? ConnectionCounts()
        return copy
    }

    public func timeouts() throws -> Timeouts { timeoutsValue }

    public func setTimeouts(_ timeouts: Timeouts) throws {
        // As the kernel: a zero field leaves that timeout unchanged.
        if timeouts.tcp != 0 { timeoutsValue.tcp = timeouts.tcp }
        if timeouts.tcpFin != 0 { timeoutsValue.tcpFin = timeouts.tcpFin }
        if timeouts.udp != 0 { timeoutsValue.udp = timeouts.udp }
    }

    public func syncDaemons() throws -> [SyncDaemon] { [] }

    // MARK: - Changes

    public func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] {
        beforeApply?(operations)
        batches.append(operations)
        applied += operations
        return operations.map { operation in
            if let error = failing(operation) { return .failure(error) }
            return perform(operation)
        }
    }

    private func perform(_ operation: IPVSOperation) -> IPVSOperationResult {
        func refusal(_ kind: IPVSError.Kind, _ errno: Int32) -> IPVSOperationResult {
            .failure(IPVSError(kind: kind, operation: operation.description, errno: errno))
        }
        let eexist: Int32 = 17, esrch: Int32 = 3, enoent: Int32 = 2
        guard let key = operation.serviceKey else {
            if operation == .flush { entries = [] }
            return .success(())
        }
        let index = entries.firstIndex { $0.service.key == key }
        if case .addService(let service) = operation {
            guard index == nil else { return refusal(.serviceExists, eexist) }
            entries.append(ServiceTableEntry(service: service.configuration, realServers: []))
            return .success(())
        }
        guard let index else { return refusal(.serviceNotFound, esrch) }
        let server = entries[index].realServers.firstIndex { existing in
            switch operation {
            case .addRealServer(let new, _), .updateRealServer(let new, _): existing.id == new.id
            case .deleteRealServer(let id, _): existing.id == id
            default: false
            }
        }
        switch operation {
        case .updateService(let service): entries[index].service = service.configuration
        case .deleteService: entries.remove(at: index)
        case .addRealServer(let new, _):
            guard server == nil else { return refusal(.realServerExists, eexist) }
            entries[index].realServers.append(new.configuration)
        case .updateRealServer(let new, _):
            guard let server else { return refusal(.realServerNotFound, enoent) }
            entries[index].realServers[server] = new.configuration
        case .deleteRealServer:
            guard let server else { return refusal(.realServerNotFound, enoent) }
            entries[index].realServers.remove(at: server)
        case .addService, .zero, .flush:
            break
        }
        return .success(())
    }
}
