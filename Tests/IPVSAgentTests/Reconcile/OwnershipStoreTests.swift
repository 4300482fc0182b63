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

    /// A line of the claims journal is what `JSONEncoder` writes for a `Claim` (compact, keys sorted), on one line.
    func testAClaimLineIsWhatJSONEncoderWrites() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for names in Self.cases {
            let file = OwnershipStore.file(Self.ownership(names))
            let expected = try encoder.encode(OwnershipStore.Claim(services: file.services, addresses: file.addresses)) + Data("\n".utf8)
            let line = OwnershipStore.line(Self.ownership(names))
            XCTAssertEqual(String(decoding: line, as: UTF8.self), String(decoding: expected, as: UTF8.self), "\(names)")
            XCTAssertEqual(line.filter { $0 == UInt8(ascii: "\n") }.count, 1, "one line")
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

/// Claims: what the agent is about to create, recorded before the kernel change and settled by
/// the save that records its outcome.
final class OwnershipClaimTests: XCTestCase {
    var folder: URL!

    override func setUp() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ownership-claims-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    var path: String { folder.appendingPathComponent("state.json").path }

    /// A first start killed before its first save leaves no state file, only claims.
    func testClaimsWithoutAStateFileLoad() throws {
        try OwnershipStore(path: path).claim(services: [tcp("10.96.0.2", 80)], addresses: [ip("10.96.0.2")])
        try OwnershipStore(path: path).claim(services: [], addresses: [ip("10.96.0.3")])
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        let loaded = try OwnershipStore(path: path).load()
        XCTAssertEqual(loaded.services, [])
        XCTAssertEqual(loaded.claimedServices, [tcp("10.96.0.2", 80)])
        XCTAssertEqual(loaded.claimedAddresses, [ip("10.96.0.2"), ip("10.96.0.3")])
    }

    /// A claim being written when the agent died (no newline yet) was not acted on: ignored. A
    /// broken line before it is an error naming the file and the line.
    func testATornLastClaimIsIgnoredAndABrokenOneIsAnError() throws {
        let store = OwnershipStore(path: path)
        try store.claim(services: [], addresses: [ip("10.96.0.2")])
        let journal = try XCTUnwrap(FileHandle(forWritingAtPath: store.claimsPath))
        try journal.seekToEnd()
        try journal.write(contentsOf: Data("{\"services\":[],\"addre".utf8))
        XCTAssertEqual(try OwnershipStore(path: path).load().claimedAddresses, [ip("10.96.0.2")])
        try journal.write(contentsOf: Data("\n".utf8))
        try journal.close()
        XCTAssertThrowsError(try OwnershipStore(path: path).load()) { error in
            XCTAssertTrue("\(error)".contains("line 2 of the claims file \(store.claimsPath) is not valid"), "\(error)")
        }
    }

    func testClaimsStayUntilASaveSettlesThem() throws {
        let store = OwnershipStore(path: path)
        let web = ObjectName(namespace: "default", name: "web")
        try store.save(Ownership(services: [tcp("10.96.0.1", 80)], addresses: [ip("10.96.0.1")]))
        try store.claim(services: [tcp("10.96.0.2", 80)], origins: [tcp("10.96.0.2", 80): web], addresses: [ip("10.96.0.2")])
        try store.claim(services: [], addresses: [ip("10.96.0.3")])

        // What a start after a crash here reads.
        var loaded = try OwnershipStore(path: path).load()
        XCTAssertEqual(loaded.services, [tcp("10.96.0.1", 80)])
        XCTAssertEqual(loaded.claimedServices, [tcp("10.96.0.2", 80)])
        XCTAssertEqual(loaded.claimedAddresses, [ip("10.96.0.2"), ip("10.96.0.3")])
        XCTAssertEqual(loaded.origins[tcp("10.96.0.2", 80)], web)

        // A save that settles nothing keeps every claim.
        try store.save(Ownership(services: [tcp("10.96.0.1", 80)], addresses: [ip("10.96.0.1")], interface: "kube-ipvs0"))
        loaded = try OwnershipStore(path: path).load()
        XCTAssertEqual(loaded.interface, "kube-ipvs0")
        XCTAssertEqual(loaded.claimedAddresses, [ip("10.96.0.2"), ip("10.96.0.3")])

        // The outcome recorded: 10.96.0.2 created, 10.96.0.3 refused by the kernel; both settled.
        var outcome = Ownership(services: [tcp("10.96.0.1", 80), tcp("10.96.0.2", 80)], addresses: [ip("10.96.0.1"), ip("10.96.0.2")],
                                origins: [tcp("10.96.0.2", 80): web])
        try store.save(outcome, settling: Ownership(services: [tcp("10.96.0.2", 80)], addresses: [ip("10.96.0.2"), ip("10.96.0.3")]))
        loaded = try OwnershipStore(path: path).load()
        XCTAssertEqual(loaded, outcome)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.claimsPath), "every claim is settled")

        // The claims a store loaded are its own: the next save still writes them, until settled.
        try store.claim(services: [], addresses: [ip("10.96.0.4")])
        let restarted = OwnershipStore(path: path)
        outcome = try restarted.load()
        outcome.claimedAddresses = []
        try restarted.save(outcome)
        XCTAssertEqual(try OwnershipStore(path: path).load().claimedAddresses, [ip("10.96.0.4")])
        try restarted.save(outcome, settling: Ownership(addresses: [ip("10.96.0.4")]))
        XCTAssertEqual(try OwnershipStore(path: path).load().claimedAddresses, [])
    }

    func testAClaimThatCannotBeWrittenThrowsNamingTheStateFile() throws {
        // The state file's folder is a file: nothing can be written there.
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let blocked = folder.appendingPathComponent("file").path
        _ = FileManager.default.createFile(atPath: blocked, contents: Data())
        let store = OwnershipStore(path: blocked + "/state.json")
        XCTAssertThrowsError(try store.claim(services: [tcp("10.96.0.2", 80)], addresses: [])) { error in
            XCTAssertTrue("\(error)".contains("cannot write the state file's claims \(blocked)/state.json.claims"), "\(error)")
        }
    }
}
