import IPVS
@testable import IPVSControl

/// An in-memory table standing in for the kernel: enough to run whole command lines and see
/// which operations they send. It says nothing about what the kernel accepts.
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
    func setTimeouts(_ timeouts: Timeouts) throws { timeoutsValue = timeouts }
    func syncDaemons() throws -> [SyncDaemon] { [] }
    func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] {
        applied.append(operations)
        return operations.map { operation in
            if let error = failing(operation) { return .failure(error) }
            return .success(())
        }
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
