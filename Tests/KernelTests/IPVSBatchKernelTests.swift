import Foundation
@testable import IPVS
import XCTest

/// The batch API against the real kernel, and the library's view cross-checked with ipvsadm.
final class IPVSBatchKernelTests: XCTestCase {
    override func setUpWithError() throws {
        try KernelTest.requireKernel()
    }

    /// 1,000 services x 10 real servers in one batch; a dump reads back exactly that state, and
    /// `ipvsadm -Sn` in the same kernel agrees line for line.
    func testThousandServicesTimesTenRealServers() throws {
        let ipvs = try IPVSClient()
        var expected: [ServiceKey: (VirtualService, [RealServer])] = [:]
        var operations: [IPVSOperation] = []
        var expectedSave: [String] = []
        for index in 0..<1000 {
            let vip = IPAddress.v4(0x0A60_0000 + UInt32(index))        // 10.96.x.y
            let service = VirtualService(key: .address(.tcp, vip, port: 80), scheduler: index % 2 == 0 ? .roundRobin : .weightedLeastConnection)
            operations.append(.addService(service))
            expectedSave.append("-A -t \(vip):80 -s \(service.scheduler)")
            var servers: [RealServer] = []
            for backend in 0..<10 {
                let address = IPAddress.v4(0x0AF4_0000 + UInt32(index * 10 + backend)) // 10.244.x.y
                let server = RealServer(address: address, port: 8080, weight: Int32(backend + 1))
                servers.append(server)
                operations.append(.addRealServer(server, service: service.key))
                expectedSave.append("-a -t \(vip):80 -r \(address):8080 -m -w \(backend + 1)")
            }
            expected[service.key] = (service, servers)
        }
        let results = ipvs.apply(operations)
        XCTAssertEqual(results.count, 11_000)
        let failures = results.enumerated().compactMap { index, result -> String? in
            if case .failure(let error) = result { return "\(index): \(error)" }
            return nil
        }
        XCTAssertEqual(failures, [], "first failures: \(failures.prefix(5))")

        let table = try ipvs.table()
        XCTAssertEqual(table.count, 1000)
        for entry in table {
            guard let (service, servers) = expected[entry.service.key] else {
                XCTFail("unexpected service \(entry.service.key)")
                continue
            }
            XCTAssertEqual(entry.service.configuration, service)
            XCTAssertEqual(entry.realServers.map(\.configuration).sorted { $0.id < $1.id }, servers)
        }
        // Read until two reads agree: ipvsadm prints one dump, which a test changing services in another
        // namespace can tear (see testServiceListIsWholeWhileAnotherNamespaceChurns).
        let saved = try Golden.savedState().split(separator: "\n").map(String.init).sorted()
        XCTAssertEqual(saved, expectedSave.sorted())
    }

    /// A list of 1,500 services takes several datagrams, and the kernel resumes each at an index it counts
    /// over the services of every network namespace. While another namespace adds and deletes services, one
    /// dump can list services twice or miss some; every list `services()` returns is whole.
    func testServiceListIsWholeWhileAnotherNamespaceChurns() throws {
        let ipvs = try IPVSClient()
        let keys = (0..<1_500).map { ServiceKey.address(.tcp, .v4(0x0A61_0000 + UInt32($0)), port: 80) } // 10.97.x.y
            + [.address(.udp, IPAddress("fd00:97::35")!, port: 53), .address(.sctp, IPAddress("10.97.200.1")!, port: 3868),
               .firewallMark(7, family: .inet), .firewallMark(7, family: .inet6), .firewallMark(0xC000_0001, family: .inet)]
        let failures = ipvs.apply(keys.map { .addService(VirtualService(key: $0, scheduler: .roundRobin)) })
            .filter { if case .failure = $0 { true } else { false } }
        XCTAssertEqual(failures.count, 0)

        // Another namespace restores 300 services and flushes them, over and over, until told to stop.
        let rules = (0..<300).map { "-A -t 10.98.\($0 / 250).\($0 % 250 + 1):80 -s rr\n" }.joined()
        let churner = try BackgroundLoop(files: ["rules": rules], body: "ipvsadm -R < rules; ipvsadm -C", launcher: ["unshare", "-n"])
        defer { churner.stop() }

        let expected = Set(keys)
        // At least 4 reads, and more (up to 40) until one single dump was torn: the churning namespace
        // may not have started its first restore during the first reads on a loaded machine.
        var torn = 0, reads = 0
        for read in 0..<40 where read < 4 || torn == 0 {
            reads += 1
            let raw = try ipvs.servicesDump().0.map(\.key)
            if raw.count != keys.count || Set(raw) != expected { torn += 1 }
            let listed = try ipvs.services().map(\.key)
            let wrong = Set(listed).symmetricDifference(expected)
            XCTAssertEqual(listed.count, keys.count, "read \(read): a service listed twice or missed")
            XCTAssertTrue(wrong.isEmpty, "read \(read): \(wrong.count) services missing or extra, e.g. \(wrong.prefix(3).map(\.description))")
        }
        XCTAssertTrue(churner.isRunning, "the churning namespace ran throughout")
        // Without a torn dump this test would show nothing; in the VM most single dumps are torn.
        XCTAssertGreaterThan(torn, 0, "no single dump was torn by the other namespace's changes")
        print("single dumps torn by the other namespace's changes: \(torn) of \(reads)")
    }

    /// A service's 1,000 real servers take several datagrams, and the kernel resumes each at an index into
    /// its list of real servers. While another process adds and deletes 200 more, one dump can list real
    /// servers twice or miss some; `realServers(of:)` lists each of the 1,000 once.
    func testRealServerListIsWholeWhileTheServiceChanges() throws {
        let ipvs = try IPVSClient()
        let key = ServiceKey.address(.tcp, IPAddress("10.96.0.1")!, port: 80)
        let stable = (0..<1_000).map { RealServer(address: .v4(0x0AF4_0000 + UInt32($0)), port: 8080) } // 10.244.x.y
        let failures = ipvs.apply([.addService(VirtualService(key: key, scheduler: .roundRobin))]
            + stable.map { .addRealServer($0, service: key) })
            .filter { if case .failure = $0 { true } else { false } }
        XCTAssertEqual(failures.count, 0)

        // Another process adds 200 real servers (10.250.0.x) to the service and deletes them, over and over.
        let churned = (0..<200).map { "10.250.\($0 / 250).\($0 % 250 + 1)" }
        let churner = try BackgroundLoop(
            files: ["add": churned.map { "-a -t 10.96.0.1:80 -r \($0):8080 -m\n" }.joined(),
                    "delete": churned.map { "-d -t 10.96.0.1:80 -r \($0):8080\n" }.joined()],
            body: "ipvsadm -R < add; ipvsadm -R < delete")
        defer { churner.stop() }

        let stableIDs = Set(stable.map(\.id))
        let allowed = stableIDs.union(churned.map { RealServerID(address: IPAddress($0)!, port: 8080) })
        // At least 4 reads, and more (up to 40) until one single dump was torn, as in the services' test:
        // the churning process may not have started its first restore during the first reads.
        var torn = 0, reads = 0
        for read in 0..<40 where read < 4 || torn == 0 {
            reads += 1
            let raw = try ipvs.realServersDump(of: key).0.map(\.id)
            if Set(raw).count != raw.count || !stableIDs.isSubset(of: raw) { torn += 1 }
            let listed = try ipvs.realServers(of: key).map(\.id)
            let missing = stableIDs.subtracting(listed)
            XCTAssertEqual(Set(listed).count, listed.count, "read \(read): a real server listed twice")
            XCTAssertTrue(missing.isEmpty, "read \(read): \(missing.count) real servers missing, e.g. \(missing.prefix(3).map(\.description))")
            XCTAssertTrue(allowed.isSuperset(of: listed), "read \(read): a real server that was never added")
        }
        XCTAssertTrue(churner.isRunning, "the churning process ran throughout")
        XCTAssertGreaterThan(torn, 0, "no single dump was torn by the other process's changes")
        print("single dumps torn by the other process's changes: \(torn) of \(reads)")
    }

    /// Failing operations in a batch are reported one by one; the others still apply.
    func testPerOperationResults() throws {
        let ipvs = try IPVSClient()
        let key = ServiceKey.address(.udp, IPAddress("10.96.0.10")!, port: 53)
        let server = RealServer(address: IPAddress("10.244.0.2")!, port: 53)
        let results = ipvs.apply([
            .addService(VirtualService(key: key, scheduler: .roundRobin)),
            .addService(VirtualService(key: key, scheduler: .roundRobin)),      // exists
            .addRealServer(server, service: key),
            .addRealServer(server, service: key),                               // exists
            .deleteRealServer(RealServerID(address: IPAddress("10.244.0.9")!, port: 53), service: key), // missing
            .addService(VirtualService(key: .address(.tcp, IPAddress("10.96.0.11")!, port: 80), scheduler: "nosuch")),
            .updateRealServer(RealServer(address: IPAddress("10.244.0.2")!, port: 53, weight: 7), service: key),
        ])
        let kinds = results.map { result -> IPVSError.Kind? in
            if case .failure(let error) = result { return error.kind }
            return nil
        }
        XCTAssertEqual(kinds, [nil, .serviceExists, nil, .realServerExists, .realServerNotFound, .schedulerUnavailable, nil])
        XCTAssertEqual(try ipvs.realServers(of: key).map(\.weight), [7])
    }

    /// Many batch sends in a row (more than one send buffer's worth) keep sequence numbers and
    /// acknowledgements aligned.
    func testLargeBatchOfMixedOperationsSpansSeveralSends() throws {
        let ipvs = try IPVSClient()
        ipvs.batchSendSize = 4096
        let key = ServiceKey.address(.tcp, IPAddress("10.96.1.1")!, port: 443)
        var operations: [IPVSOperation] = [.addService(VirtualService(key: key))]
        for index in 0..<500 {
            operations.append(.addRealServer(RealServer(address: .v4(0x0AF4_1000 + UInt32(index)), port: 443), service: key))
        }
        for index in stride(from: 0, to: 500, by: 2) {
            operations.append(.deleteRealServer(RealServerID(address: .v4(0x0AF4_1000 + UInt32(index)), port: 443), service: key))
        }
        let results = ipvs.apply(operations)
        XCTAssertTrue(results.allSatisfy { if case .success = $0 { true } else { false } })
        XCTAssertEqual(try ipvs.realServers(of: key).count, 250)
    }
}
