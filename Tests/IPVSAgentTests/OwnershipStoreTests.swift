import Foundation
import IPVS
import XCTest
@testable import IPVSAgent

/// The state file is written by hand (for speed) and read with `JSONDecoder`: it must be what
/// `JSONEncoder` writes, and read back to the same ownership.
final class OwnershipStoreTests: XCTestCase {
    static func ownership(_ names: [String]) -> Ownership {
        var ownership = Ownership()
        for (index, name) in names.enumerated() {
            let address = IPAddress(index % 2 == 0 ? "10.96.0.\(index + 1)" : "fd00::\(index + 1)")!
            let key = ServiceKey.address(index % 3 == 0 ? .udp : .tcp, address, port: UInt16(80 + index))
            ownership.services.insert(key)
            ownership.addresses.insert(address)
            if index % 4 != 3 { ownership.origins[key] = ObjectName(namespace: "ns", name: name) }
        }
        if names.count % 2 == 1 { ownership.interface = names.first.map { "ipvs-\($0)" } } // with and without one
        return ownership
    }

    static let cases: [[String]] = [
        [], ["web"], ["web", "dns", "api", "no-origin", "x"],
        ["quote\"d", "back\\slash", "new\nline", "tab\t", "bell\u{7}", "nul\u{0}", "e\u{301}", "\u{1F600}", "unit\u{1F}", "del\u{7F}"],
    ]

    func testTextIsWhatJSONEncoderWrites() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        for names in Self.cases {
            let ownership = Self.ownership(names)
            let expected = String(decoding: try encoder.encode(OwnershipStore.file(ownership)), as: UTF8.self)
            XCTAssertEqual(OwnershipStore.json(ownership), expected, "\(names)")
        }
    }

    func testSavedOwnershipLoadsBack() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ownership-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = OwnershipStore(path: folder.appendingPathComponent("state.json").path)
        for names in Self.cases {
            let ownership = Self.ownership(names)
            try store.save(ownership)
            XCTAssertEqual(try store.load(), ownership, "\(names)")
        }
    }
}
