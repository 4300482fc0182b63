import Foundation
import IPVS
import NodeNetwork
import XCTest

/// The dummy interface and its addresses on a real kernel, each test in a fresh network namespace.
/// `ip` (iproute2) cross-checks what the kernel holds and plays "someone else".
final class NodeNetworkTests: XCTestCase {
    private let dummy = "kube-ipvs0"

    private func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    /// The `ip -o link show` line of `name`.
    private func linkLine(_ name: String) throws -> String {
        try KernelTest.shell("ip -o link show dev \(name)")
    }

    /// The addresses `ip` lists on `name`, as `address/prefix`.
    private func ipAddresses(on name: String) throws -> Set<String> {
        let output = try KernelTest.shell("ip -o addr show dev \(name)")
        return Set(output.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            guard let index = words.firstIndex(where: { $0 == "inet" || $0 == "inet6" }), index + 1 < words.count else { return nil }
            return String(words[index + 1])
        })
    }

    // MARK: - Interface

    func testEnsureDummyInterfaceCreatesOnceAndSetsItUp() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        XCTAssertNil(try links.interfaceIndex(named: dummy))

        XCTAssertTrue(try links.ensureDummyInterface(named: dummy))
        let line = try linkLine(dummy)
        XCTAssertTrue(line.contains(",UP") || line.contains("<UP"), "not up: \(line)")
        let details = try KernelTest.shell("ip -d -o link show dev \(dummy)")
        XCTAssertTrue(details.contains(" dummy "), "not a dummy interface: \(details)")
        let index = try XCTUnwrap(try links.interfaceIndex(named: dummy))
        XCTAssertTrue(line.hasPrefix("\(index): \(dummy):"), "index \(index) differs from ip's: \(line)")

        XCTAssertFalse(try links.ensureDummyInterface(named: dummy), "second call must report an existing interface")
        XCTAssertEqual(try links.interfaceIndex(named: dummy), index)
    }

    func testEnsureDummyInterfaceSetsAnExistingDownInterfaceUp() throws {
        try KernelTest.requireKernel()
        try KernelTest.shell("ip link add \(dummy) type dummy")
        XCTAssertFalse(try linkLine(dummy).contains(",UP"), "precondition: created down")

        let links = try LinkManager()
        XCTAssertFalse(try links.ensureDummyInterface(named: dummy))
        let line = try linkLine(dummy)
        XCTAssertTrue(line.contains(",UP") || line.contains("<UP"), "not set up: \(line)")
    }

    /// `up: false` creates the interface down (and leaves an existing one as it is); its addresses
    /// are local while it is down, and stay bound and local once it is set up, IPv6 ones included.
    func testEnsureDummyInterfaceDownBindsLocalAddressesAndKeepsThemWhenSetUp() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        XCTAssertTrue(try links.ensureDummyInterface(named: dummy, up: false))
        var line = try linkLine(dummy)
        XCTAssertFalse(line.contains(",UP"), "created up: \(line)")
        let v4 = IPAddress("10.96.7.1")!, v6 = IPAddress("fd00:96::7:1")!
        XCTAssertTrue(links.addAddresses([v4, v6], to: dummy).allSatisfy { (try? $0.get()) != nil })
        /// `ip route get` of both addresses: each starts with `local` when it is delivered here.
        func routes() throws -> [String] {
            try ["ip route get 10.96.7.1", "ip -6 route get fd00:96::7:1"].map {
                try KernelTest.shell($0).trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        var found = try routes()
        XCTAssertTrue(found.allSatisfy { $0.hasPrefix("local ") }, "not local while down: \(found)")
        XCTAssertFalse(try links.ensureDummyInterface(named: dummy, up: false))
        line = try linkLine(dummy)
        XCTAssertFalse(line.contains(",UP"), "set up: \(line)")

        XCTAssertFalse(try links.ensureDummyInterface(named: dummy))
        line = try linkLine(dummy)
        XCTAssertTrue(line.contains(",UP") || line.contains("<UP"), "not set up: \(line)")
        let bound = Set(try links.addresses(on: dummy).map(\.address))
        XCTAssertTrue(bound.isSuperset(of: [v4, v6]), "\(bound)")
        found = try routes()
        XCTAssertTrue(found.allSatisfy { $0.hasPrefix("local ") }, "not local once up: \(found)")
    }

    func testInterfacesThatAreNotDummyAreRefused() throws {
        try KernelTest.requireKernel()
        try KernelTest.shell("ip link add veth-a type veth peer name veth-b")
        let links = try LinkManager()
        for name in ["veth-a", "lo"] {
            XCTAssertThrowsError(try links.ensureDummyInterface(named: name)) { error in
                let error = error as? NodeNetworkError
                XCTAssertEqual(error?.kind, .notDummy, "\(name): \(String(describing: error))")
                XCTAssertTrue(error?.description.contains("not a dummy") == true, "\(String(describing: error))")
            }
            XCTAssertThrowsError(try links.deleteInterface(named: name)) { error in
                XCTAssertEqual((error as? NodeNetworkError)?.kind, .notDummy)
            }
        }
        XCTAssertNotNil(try links.interfaceIndex(named: "veth-a"), "a refused interface must stay")
    }

    func testAddAddressesPipelinesManyRequestsAndReportsEachOne() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        try links.addAddress(ip("10.96.0.7"), to: dummy) // Already bound: a success.
        // More than one send's worth (256 per send), IPv6 among them.
        let addresses = (0..<600).map { ip("10.96.\($0 / 250).\($0 % 250 + 1)") } + [ip("fd00::7")]
        let results = links.addAddresses(addresses, to: dummy)
        XCTAssertEqual(results.count, addresses.count)
        for (address, result) in zip(addresses, results) {
            if case .failure(let error) = result { XCTFail("\(address): \(error)") }
        }
        XCTAssertTrue(try ipAddresses(on: dummy).contains("fd00::7/128"))
        let bound = try ipAddresses(on: dummy)
        XCTAssertEqual(bound.filter { $0.hasPrefix("10.96.") }.count, 600)

        // The interface missing: every address fails with the reason.
        let missing = links.addAddresses([ip("10.96.9.1"), ip("10.96.9.2")], to: "missing0")
        for result in missing {
            guard case .failure(let error) = result else { return XCTFail("an address bound on a missing interface") }
            XCTAssertEqual(error.kind, .notFound)
        }
    }

    func testDeleteInterface() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        try links.addAddress(ip("10.96.0.1"), to: dummy)

        try links.deleteInterface(named: dummy)
        XCTAssertNil(try links.interfaceIndex(named: dummy))
        XCTAssertFalse(try KernelTest.shell("ip -o link show").contains(dummy))
        XCTAssertNoThrow(try links.deleteInterface(named: dummy), "deleting a missing interface is not an error")
    }

    func testInterfaceNamesTheKernelRefusesGiveAClearError() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        let before = try KernelTest.shell("ip -o link show | wc -l")
        let cases: [(String, String)] = [
            ("kube-ipvs-dummy0", "at most 15"),   // 16 bytes
            ("", "empty"),
            ("bad/name", "'/'"),
            ("bad:name", "':'"),
            ("bad name", "white space"),
            ("tab\tname", "white space"),
            ("..", "reserved"),
            ("dummy%d", "'%'"),
        ]
        for (name, words) in cases {
            XCTAssertThrowsError(try links.ensureDummyInterface(named: name), "\(name.debugDescription)") { error in
                let error = error as? NodeNetworkError
                XCTAssertEqual(error?.kind, .invalidName, "\(name.debugDescription): \(String(describing: error))")
                let text = error?.description ?? ""
                XCTAssertTrue(text.contains(words) && text.contains("15 characters"), "\(name.debugDescription): \(text)")
            }
            XCTAssertThrowsError(try links.addAddress(ip("10.0.0.1"), to: name))
        }
        XCTAssertEqual(try KernelTest.shell("ip -o link show | wc -l"), before, "nothing may be created")
        // 15 bytes is the longest name the kernel takes.
        XCTAssertTrue(try links.ensureDummyInterface(named: "kube-ipvs-dummy"))
    }

    // MARK: - Addresses

    func testAddListAndRemoveVIPs() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        let v4 = ip("10.96.0.1"), v6 = ip("fd00::1")

        try links.addAddress(v4, to: dummy)
        try links.addAddress(v6, to: dummy)
        let listed = try links.addresses(on: dummy)
        XCTAssertTrue(listed.contains(InterfaceAddress(address: v4, prefixLength: 32)), "\(listed)")
        XCTAssertTrue(listed.contains(InterfaceAddress(address: v6, prefixLength: 128)), "\(listed)")
        XCTAssertEqual(listed.filter(\.isHostPrefix).map(\.address), [v4, v6])
        XCTAssertTrue(try ipAddresses(on: dummy).isSuperset(of: ["10.96.0.1/32", "fd00::1/128"]))
        // The IPv6 address is usable at once: no duplicate address detection (IFA_F_NODAD).
        let v6Line = try KernelTest.shell("ip -o addr show dev \(dummy) to fd00::1/128")
        XCTAssertFalse(v6Line.contains("tentative"), v6Line)

        XCTAssertNoThrow(try links.addAddress(v4, to: dummy), "adding a bound address again is success")
        XCTAssertNoThrow(try links.addAddress(v6, to: dummy))
        XCTAssertEqual(try links.addresses(on: dummy), listed)

        try links.removeAddress(v4, from: dummy)
        try links.removeAddress(v6, from: dummy)
        XCTAssertEqual(try links.addresses(on: dummy).filter(\.isHostPrefix), [])
        XCTAssertTrue(try ipAddresses(on: dummy).isDisjoint(with: ["10.96.0.1/32", "fd00::1/128"]))

        XCTAssertNoThrow(try links.removeAddress(v4, from: dummy), "removing a missing address is not an error")
        XCTAssertNoThrow(try links.removeAddress(v6, from: "missing0"), "nor on a missing interface")
    }

    func testAddressesOfOthersAreListedAndKept() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        try KernelTest.shell("ip addr add 10.96.0.9/32 dev \(dummy)")
        try KernelTest.shell("ip addr add 10.1.2.3/24 dev \(dummy)")
        try KernelTest.shell("ip addr add fd00::9/64 dev \(dummy) nodad")

        try links.addAddress(ip("10.96.0.1"), to: dummy)
        let listed = Set(try links.addresses(on: dummy).map(\.description))
        XCTAssertTrue(listed.isSuperset(of: ["10.96.0.9/32", "10.1.2.3/24", "fd00::9/64", "10.96.0.1/32"]), "\(listed)")

        try links.removeAddress(ip("10.96.0.1"), from: dummy)
        // Same address, other prefix: the host-prefix removal must not take the /24 or the /64.
        try links.removeAddress(ip("10.1.2.3"), from: dummy)
        try links.removeAddress(ip("fd00::9"), from: dummy)
        let after = try ipAddresses(on: dummy)
        XCTAssertTrue(after.isSuperset(of: ["10.96.0.9/32", "10.1.2.3/24", "fd00::9/64"]), "\(after)")
        XCTAssertFalse(after.contains("10.96.0.1/32"))
    }

    func testAddingToAMissingInterfaceSaysToCreateIt() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        XCTAssertThrowsError(try links.addAddress(ip("10.96.0.1"), to: "missing0")) { error in
            let error = error as? NodeNetworkError
            XCTAssertEqual(error?.kind, .notFound)
            XCTAssertTrue(error?.description.contains("create the interface first") == true, "\(String(describing: error))")
        }
        XCTAssertThrowsError(try links.addresses(on: "missing0")) { error in
            XCTAssertEqual((error as? NodeNetworkError)?.kind, .notFound)
        }
    }

    func testNodeAddressesSkipLoopbackLinkLocalAndExcludedInterfaces() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        try links.addAddress(ip("10.96.0.1"), to: dummy)
        try links.addAddress(ip("fd00::1"), to: dummy)
        // A stand-in for the node's network card.
        try KernelTest.shell("ip link add node0 type dummy && ip link set node0 up")
        try KernelTest.shell("ip addr add 192.0.2.10/24 dev node0 && ip addr add 2001:db8::10/64 dev node0 nodad")
        try KernelTest.shell("ip addr add 169.254.1.1/16 dev node0 && ip addr add 127.0.0.2/8 dev lo")
        // The node's own addresses as /32 and /128 on lo (routing on the host): NodePort addresses,
        // as kube-proxy's GetAllLocalAddressesExcept reads them.
        try KernelTest.shell("ip addr add 198.51.100.1/32 dev lo && ip addr add 2001:db8:1::1/128 dev lo nodad")

        let addresses = try links.nodeAddresses(excluding: [dummy])
        XCTAssertEqual(addresses, [ip("192.0.2.10"), ip("198.51.100.1"), ip("2001:db8::10"), ip("2001:db8:1::1")])
        XCTAssertTrue(try KernelTest.shell("ip -o addr show dev node0").contains("fe80::"), "precondition: a link-local address")

        let withDummy = try links.nodeAddresses(excluding: [])
        XCTAssertEqual(withDummy, [ip("10.96.0.1"), ip("192.0.2.10"), ip("198.51.100.1"), ip("2001:db8::10"), ip("2001:db8:1::1"), ip("fd00::1")])

        // Every address but the dummy interface's, loopback and link-local ones too: those an
        // external IP must never be bound over.
        let local = try links.localAddresses(excluding: [dummy])
        for address in ["127.0.0.1", "127.0.0.2", "::1", "169.254.1.1", "192.0.2.10", "198.51.100.1", "2001:db8:1::1"] {
            XCTAssertTrue(local.contains(ip(address)), "\(address) missing from \(local)")
        }
        XCTAssertTrue(local.contains { $0.description.hasPrefix("fe80:") }, "\(local)")
        XCTAssertFalse(local.contains(ip("10.96.0.1")), "\(local)")
    }
}

// MARK: - Interfaces replaced behind the manager's back

extension NodeNetworkTests {
    func testAnInterfaceRecreatedBySomeoneElseIsFollowed() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        try links.addAddress(ip("10.96.0.1"), to: dummy)
        let first = try XCTUnwrap(try links.interfaceIndex(named: dummy))

        // Deleted and created again: a new index.
        try KernelTest.shell("ip link del \(dummy) && ip link add \(dummy) type dummy")
        try links.addAddress(ip("10.96.0.2"), to: dummy)
        XCTAssertNotEqual(try links.interfaceIndex(named: dummy), first)
        XCTAssertTrue(try ipAddresses(on: dummy).contains("10.96.0.2/32"))

        // Renamed away and replaced: the next listing sees the new one, and so do later adds.
        try KernelTest.shell("ip link set \(dummy) name old-ipvs0 && ip link add \(dummy) type dummy")
        XCTAssertEqual(try links.addresses(on: dummy).filter(\.isHostPrefix), [])
        try links.addAddress(ip("10.96.0.3"), to: dummy)
        XCTAssertEqual(try ipAddresses(on: dummy).filter { $0.hasPrefix("10.") }, ["10.96.0.3/32"])
        XCTAssertEqual(try ipAddresses(on: "old-ipvs0"), ["10.96.0.2/32"])

        // Gone: adding says so, removing is fine.
        try KernelTest.shell("ip link del \(dummy)")
        XCTAssertThrowsError(try links.addAddress(ip("10.96.0.4"), to: dummy)) { error in
            XCTAssertEqual((error as? NodeNetworkError)?.kind, .notFound)
        }
        XCTAssertNoThrow(try links.removeAddress(ip("10.96.0.3"), from: dummy))
    }
}
