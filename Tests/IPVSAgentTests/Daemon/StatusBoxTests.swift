import AgentStatus
import Foundation
import Synchronization
import XCTest
@testable import IPVSAgent

final class StatusBoxTests: XCTestCase {
    /// `/status` is made when asked for: each document shows the state at that moment.
    func testTheDocumentIsMadeWhenAskedFor() async throws {
        let box = StatusBox()
        let empty = await box.document()
        XCTAssertEqual(String(decoding: empty, as: UTF8.self), "{}")

        let addresses = Mutex<[String]>(["10.96.0.10"])
        box.setProvider { AgentStatus(services: [], addresses: addresses.withLock { $0 }) }
        var status = try JSONDecoder().decode(AgentStatus.self, from: await box.document())
        XCTAssertEqual(status.addresses, ["10.96.0.10"])

        addresses.withLock { $0.append("10.96.0.11") }
        status = try JSONDecoder().decode(AgentStatus.self, from: await box.document())
        XCTAssertEqual(status.addresses, ["10.96.0.10", "10.96.0.11"])
    }
}
