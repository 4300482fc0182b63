import Conntrack
import Foundation
import IPVS
import XCTest

/// `Conntrack` against the kernel's connection tracking table of the test's own network namespace:
/// real UDP datagrams make the entries, a filter deletes exactly the ones it names.
final class ConntrackKernelTests: XCTestCase {
    override func setUp() async throws {
        try KernelTest.requireKernel()
        // Connection tracking runs in a namespace only once something uses it: a `ct` rule does.
        _ = try KernelTest.shell("nft add table inet ct-test && nft add chain inet ct-test out '{ type filter hook output priority 0; }' && nft add rule inet ct-test out ct state new accept")
    }

    override func tearDown() {
        _ = try? KernelTest.run(["nft", "delete", "table", "inet", "ct-test"])
    }

    /// Sends one datagram from `source` to `destination:port` (nothing listens: the entry stays, unreplied).
    func send(_ family: Int32, from source: String, to destination: String, _ port: UInt16) throws {
        let descriptor = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(descriptor) }
        var storage = sockaddr_storage(), length = socklen_t(0)
        if family == AF_INET {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            XCTAssertEqual(inet_pton(AF_INET, destination, &address.sin_addr), 1)
            withUnsafeBytes(of: address) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            XCTAssertEqual(inet_pton(AF_INET6, destination, &address.sin6_addr), 1)
            withUnsafeBytes(of: address) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        let sent = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, "ping", 4, 0, $0, length) }
        }
        XCTAssertEqual(sent, 4, "send to \(destination):\(port) from \(source)")
    }

    /// The test's UDP entries (to ports 5301 and 5302) of the table, as `<address>:<port>` of their original destination.
    func udpEntries() throws -> [String] {
        try String(contentsOfFile: "/proc/net/nf_conntrack", encoding: .utf8).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.contains("udp"), let dst = fields.first(where: { $0.hasPrefix("dst=") }).flatMap({ IPAddress(String($0.dropFirst(4))) }),
                  let dport = fields.first(where: { $0.hasPrefix("dport=") })?.dropFirst(6), dport == "5301" || dport == "5302" else { return nil }
            return "\(dst):\(dport)"
        }.sorted()
    }

    func testDeletesTheEntriesItsFiltersMatchAndNoOthers() throws {
        _ = try KernelTest.shell("ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true")
        try send(AF_INET, from: "127.0.0.1", to: "127.0.0.1", 5301)
        try send(AF_INET, from: "127.0.0.1", to: "127.0.0.1", 5302)
        try send(AF_INET, from: "127.0.0.1", to: "127.0.0.2", 5301)
        try send(AF_INET6, from: "::1", to: "::1", 5301)
        try send(AF_INET6, from: "::1", to: "::1", 5302)
        XCTAssertEqual(try udpEntries(), ["127.0.0.1:5301", "127.0.0.1:5302", "127.0.0.2:5301", "::1:5301", "::1:5302"])

        // A reply source no entry has: nothing goes.
        let none = Conntrack().deleteEntries(matching: [
            ConntrackFilter(transport: .udp, destination: IPAddress("127.0.0.1")!, port: 5301, replySource: IPAddress("10.244.1.5")!),
            ConntrackFilter(transport: .tcp, destination: IPAddress("127.0.0.1")!, port: 5301),
        ])
        XCTAssertEqual(none.deleted, 0)
        XCTAssertEqual(none.failures, [])
        XCTAssertEqual(try udpEntries().count, 5)

        // A deleted endpoint's flows (frontend and reply source), and a frontend's every flow, in both families.
        let deletion = Conntrack().deleteEntries(matching: [
            ConntrackFilter(transport: .udp, destination: IPAddress("127.0.0.1")!, port: 5301, replySource: IPAddress("127.0.0.1")!),
            ConntrackFilter(transport: .udp, destination: IPAddress("::1")!, port: 5302),
        ])
        XCTAssertEqual(deletion.failures, [])
        XCTAssertEqual(deletion.deleted, 2)
        XCTAssertEqual(try udpEntries(), ["127.0.0.1:5302", "127.0.0.2:5301", "::1:5301"])
    }
}
