import Foundation
import IPVS
import Logging
import XCTest
@testable import IPVSAgent

final class AgentRunnerTests: XCTestCase {
    /// A kernel with IPVS whose table cannot be read: as for a user without CAP_NET_ADMIN (EPERM),
    /// or for another reason.
    final class RefusingIPVS: IPVSBackend, @unchecked Sendable {
        let kind: IPVSError.Kind
        init(_ kind: IPVSError.Kind) { self.kind = kind }
        func info() throws -> IPVSInfo { throw IPVSError(kind: kind, operation: "read IPVS info") }
        func services() throws -> [VirtualService] { throw IPVSError(kind: kind, operation: "list services") }
        func service(_ key: ServiceKey) throws -> VirtualService { throw IPVSError(kind: kind, operation: "read service") }
        func table() throws -> [ServiceTableEntry] { throw IPVSError(kind: kind, operation: "list services") }
        func realServers(of key: ServiceKey) throws -> [RealServer] { throw IPVSError(kind: kind, operation: "list real servers") }
        func timeouts() throws -> Timeouts { throw IPVSError(kind: kind, operation: "read timeouts") }
        func setTimeouts(_ timeouts: Timeouts) throws { throw IPVSError(kind: kind, operation: "set timeouts") }
        func syncDaemons() throws -> [SyncDaemon] { throw IPVSError(kind: kind, operation: "list sync daemons") }
        func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] {
            operations.map { .failure(IPVSError(kind: kind, operation: $0.description)) }
        }
    }

    func runner() throws -> AgentRunner {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("ipvs-agent-\(UUID())/state.json").path
        let command = try AgentCommand.parse(["--manifests", "cluster.yaml", "--dry-run", "--state-file", state])
        return AgentRunner(command: command, configurationFile: nil, logger: Logger(label: "test"))
    }

    func testDryRunComparesWithAnEmptyKernelWhenTheKernelRefusesToShowItsTable() async throws {
        let reconciler = try await runner().startDryRunReconciler(links: nil, makeIPVS: { RefusingIPVS(.permissionDenied) })
        let key = tcp("10.96.0.10", 80)
        let plan = await reconciler.dryRun(DesiredState(services: [key: desired(key, [server("10.244.1.5", 8080)])]))
        XCTAssertEqual(plan.operations.count, 2, "\(plan.operations)")
        guard case .addService(let service) = plan.operations.first else { return XCTFail("\(plan.operations)") }
        XCTAssertEqual(service.key, key)
    }

    func testDryRunStillFailsOnOtherKernelErrors() async throws {
        do {
            _ = try await runner().startDryRunReconciler(links: nil, makeIPVS: { RefusingIPVS(.malformedReply) })
            XCTFail("a table that cannot be read for another reason than permission must not be taken as empty")
        } catch let error as IPVSError {
            XCTAssertEqual(error.kind, .malformedReply)
        }
    }
}
