import IPVS
import TestSupport
@testable import IPVSControl

/// Runs ipvsctl command lines against a `FakeIPVS`, capturing the output.
final class Harness {
    let backend = FakeIPVS()
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
