import IPVS
@testable import IPVSControl

/// An in-memory table standing in for the kernel: enough to run whole command lines and see
/// which operations they send and what table they leave. Operations change `entries` as the
/// kernel changes its table, refusing what it refuses for the table alone (add of an existing
/// service or real server, edit or delete of a missing one); `failing` adds other refusals. It
/// says nothing about what the kernel accepts beyond that.
final class FakeBackend: IPVSBackend {
    var entries: [ServiceTableEntry] = []
    var applied: [[IPVSOperation]] = []
    var timeoutsValue = Timeouts(tcp: 900, tcpFin: 120, udp: 300)
    var failing: (IPVSOperation) -> IPVSError? = { _ in nil }

    func info() throws -> IPVSInfo { IPVSInfo(version: 0x010201, connectionTableSize: 4096) }
    func services() throws -> [VirtualService] { entries.map(\.service) }
    func service(_ key: ServiceKey) throws -> VirtualService {
        guard let entry = entries.first(where: { $0.service.key == key }) else {
            throw IPVSError(kind: .serviceNotFound, operation: "read service \(key)", errno: 3)
        }
        return entry.service
    }
    func realServers(of key: ServiceKey) throws -> [RealServer] {
        entries.first { $0.service.key == key }?.realServers ?? []
    }
    func timeouts() throws -> Timeouts { timeoutsValue }
    func setTimeouts(_ timeouts: Timeouts) throws {
        // As the kernel: a zero field leaves that timeout unchanged.
        if timeouts.tcp != 0 { timeoutsValue.tcp = timeouts.tcp }
        if timeouts.tcpFin != 0 { timeoutsValue.tcpFin = timeouts.tcpFin }
        if timeouts.udp != 0 { timeoutsValue.udp = timeouts.udp }
    }
    func syncDaemons() throws -> [SyncDaemon] { [] }
    func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] {
        applied.append(operations)
        return operations.map { operation in
            if let error = failing(operation) { return .failure(error) }
            return perform(operation)
        }
    }

    private func perform(_ operation: IPVSOperation) -> IPVSOperationResult {
        func refusal(_ kind: IPVSError.Kind) -> IPVSOperationResult {
            .failure(IPVSError(kind: kind, operation: operation.description))
        }
        guard let key = operation.serviceKey else {
            if operation == .flush { entries = [] }
            return .success(())
        }
        let index = entries.firstIndex { $0.service.key == key }
        switch operation {
        case .addService(let service):
            guard index == nil else { return refusal(.serviceExists) }
            entries.append(ServiceTableEntry(service: service, realServers: []))
            return .success(())
        case .flush, .zero(nil):
            return .success(())
        default:
            break
        }
        guard let index else { return refusal(.serviceNotFound) }
        let server = entries[index].realServers.firstIndex { existing in
            switch operation {
            case .addRealServer(let new, _), .updateRealServer(let new, _): existing.id == new.id
            case .deleteRealServer(let id, _): existing.id == id
            default: false
            }
        }
        switch operation {
        case .updateService(let service): entries[index].service = service
        case .deleteService: entries.remove(at: index)
        case .addRealServer(let new, _):
            guard server == nil else { return refusal(.realServerExists) }
            entries[index].realServers.append(new)
        case .updateRealServer(let new, _):
            guard let server else { return refusal(.realServerNotFound) }
            entries[index].realServers[server] = new
        case .deleteRealServer:
            guard let server else { return refusal(.realServerNotFound) }
            entries[index].realServers.remove(at: server)
        case .addService, .zero, .flush:
            break
        }
        return .success(())
    }
}

/// Runs ipvsctl command lines against a `FakeBackend`, capturing the output.
final class Harness {
    let backend = FakeBackend()
    var output: [UInt8] = []
    var error = ""
    var input: [UInt8] = []
    var files: [String: String] = [:]
    var catalog = SchedulerCatalog(available: ["rr", "wlc"], isComplete: false, kernelRelease: "test")
    var backendOpened = false
    /// The body `ipvsctl status` gets from the agent; `nil`: fetch for real.
    var agentStatus: [UInt8]?
    var agentAddresses: [String] = []
    var now = 1_796_080_000

    var text: String { String(decoding: output, as: UTF8.self) }

    @discardableResult
    func run(_ arguments: String, input: String? = nil) -> Int32 {
        run(arguments.split(separator: " ").map(String.init), input: input)
    }

    @discardableResult
    func run(_ arguments: [String], input: String? = nil) -> Int32 {
        output = []
        error = ""
        if let input { self.input = Array(input.utf8) }
        let environment = ControlEnvironment(
            openBackend: { self.backendOpened = true; return self.backend },
            readStandardInput: { self.input },
            readFile: { path in
                guard let text = self.files[path] else { throw ReadFailure(what: path, errno: 2) }
                return text
            },
            writeOutput: { self.output += $0 },
            writeError: { self.error += $0 },
            schedulerCatalog: { self.catalog },
            fetchAgentStatus: { address in
                self.agentAddresses.append(address)
                guard let body = self.agentStatus else { return try AgentHTTPClient.get("/status", from: address, timeoutSeconds: 2) }
                return body
            },
            currentTime: { self.now })
        return IPVSControl.run(arguments, environment: environment)
    }
}
