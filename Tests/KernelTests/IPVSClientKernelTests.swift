#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IPVS
import XCTest

/// The IPVS client against the real kernel: every attribute round-trips, every error surfaces
/// as its typed kind. Each test runs in its own process and network namespace.
final class IPVSClientKernelTests: XCTestCase {
    var ipvs: IPVSClient!

    let vip = IPAddress("10.96.0.1")!
    let vip6 = IPAddress("fd00:96::1")!
    func key(_ port: UInt16, _ proto: TransportProtocol = .tcp) -> ServiceKey { .address(proto, vip, port: port) }

    override func setUpWithError() throws {
        try KernelTest.requireKernel()
        if ProcessInfo.processInfo.environment["IPVS_TEST_WITHOUT_NET_ADMIN"] != nil { return }
        ipvs = try IPVSClient()
        XCTAssertEqual(try ipvs.services(), [], "a fresh network namespace has no IPVS services")
    }

    // MARK: - Services

    func testEverySchedulerRoundTrips() throws {
        let kernelHasTwos = KernelVersion.current >= KernelVersion(6, 8)
        for (index, scheduler) in Scheduler.allKnown.enumerated() {
            let service = VirtualService(key: key(UInt16(1000 + index)), scheduler: scheduler)
            if scheduler == .randomTwos && !kernelHasTwos {
                XCTAssertThrowsError(try ipvs.addService(service)) { error in
                    XCTAssertEqual((error as? IPVSError)?.kind, .schedulerUnavailable, "\(error)")
                    XCTAssertTrue("\(error)".contains("add service TCP 10.96.0.1:1013"), "\(error)")
                }
                continue
            }
            try ipvs.addService(service)
            XCTAssertEqual(try ipvs.service(service.key).configuration, service, "scheduler \(scheduler)")
        }
        XCTAssertEqual(try ipvs.services().count, kernelHasTwos ? 14 : 13)
    }

    func testUnknownSchedulerIsUnavailable() throws {
        XCTAssertThrowsError(try ipvs.addService(VirtualService(key: key(80), scheduler: "nosuch"))) { error in
            guard let error = error as? IPVSError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.kind, .schedulerUnavailable)
            XCTAssertTrue(error.description.contains("rr, wrr"), error.description)
        }
        XCTAssertEqual(try ipvs.services(), [])
    }

    func testSchedulerFlagsRoundTrip() throws {
        let sh = VirtualService(key: key(80), scheduler: .sourceHashing, flags: [.shFallback, .shPort])
        let mh = VirtualService(key: key(81), scheduler: .maglevHashing, flags: [.mhFallback])
        let onePacket = VirtualService(key: key(53, .udp), scheduler: .roundRobin, flags: [.onePacket])
        for service in [sh, mh, onePacket] {
            try ipvs.addService(service)
            let read = try ipvs.service(service.key)
            XCTAssertEqual(read.configuration, service)
            XCTAssertTrue(read.flags.isSuperset(of: service.flags))
        }
    }

    func testPersistenceRoundTripsForIPv4AndIPv6() throws {
        let v4 = VirtualService(key: key(443), scheduler: .weightedLeastConnection,
                                persistence: Persistence(timeout: 10800, prefixLength: 24))
        let v4Full = VirtualService(key: key(444), persistence: Persistence(timeout: 60))
        let v6 = VirtualService(key: .address(.tcp, vip6, port: 443), scheduler: .roundRobin,
                                persistence: Persistence(timeout: 600, prefixLength: 64))
        for service in [v4, v4Full, v6] {
            try ipvs.addService(service)
            XCTAssertEqual(try ipvs.service(service.key).configuration, service)
        }
        let ipvsadm = try KernelTest.shell("ipvsadm -Sn")
        XCTAssertTrue(ipvsadm.contains("-A -t 10.96.0.1:443 -s wlc -p 10800 -M 255.255.255.0"), ipvsadm)
        XCTAssertTrue(ipvsadm.contains("-A -t [fd00:96::1]:443 -s rr -p 600 -M 64"), ipvsadm)
    }

    func testPersistenceEngineIsSentToTheKernel() throws {
        let service = VirtualService(key: key(5060, .udp), scheduler: .roundRobin,
                                     persistence: Persistence(timeout: 30), persistenceEngine: "sip")
        do {
            try ipvs.addService(service)
            XCTAssertEqual(try ipvs.service(service.key).configuration, service)
        } catch let error as IPVSError where error.kind == .persistenceEngineUnavailable {
            // The guest may lack ip_vs_pe_sip; the typed error is then the expected outcome.
            XCTAssertTrue(error.description.contains("persistence engine"), error.description)
        }
    }

    func testEditServiceChangesSchedulerFlagsAndPersistence() throws {
        var service = VirtualService(key: key(80), scheduler: .roundRobin)
        try ipvs.addService(service)
        service.scheduler = .sourceHashing
        service.flags = [.shPort]
        service.persistence = Persistence(timeout: 120)
        try ipvs.updateService(service)
        XCTAssertEqual(try ipvs.service(service.key).configuration, service)
        service.persistence = nil
        service.flags = []
        try ipvs.updateService(service)
        XCTAssertEqual(try ipvs.service(service.key).configuration, service)
    }

    func testIPv6AndFirewallMarkServices() throws {
        let services = [
            VirtualService(key: .address(.udp, vip6, port: 53), scheduler: .roundRobin),
            VirtualService(key: .address(.sctp, vip, port: 3868), scheduler: .leastConnection),
            VirtualService(key: .firewallMark(7, family: .inet), scheduler: .weightedRoundRobin),
            VirtualService(key: .firewallMark(8, family: .inet6), scheduler: .neverQueue),
        ]
        for service in services { try ipvs.addService(service) }
        XCTAssertEqual(Set(try ipvs.services().map(\.configuration)), Set(services))
        let server6 = RealServer(address: IPAddress("fd00:244::5")!, port: 53, weight: 2)
        try ipvs.addRealServer(server6, to: services[0].key)
        try ipvs.addRealServer(RealServer(address: IPAddress("10.244.0.7")!, port: 0, forwarding: .directRouting), to: services[2].key)
        XCTAssertEqual(try ipvs.realServers(of: services[0].key).map(\.configuration), [server6])
        let listing = try KernelTest.shell("ipvsadm -Sn")
        XCTAssertTrue(listing.contains("-A -f 7 -s wrr"), listing)
        XCTAssertTrue(listing.contains("-A -f 8 -6 -s nq"), listing)
        XCTAssertTrue(listing.contains("-a -u [fd00:96::1]:53 -r [fd00:244::5]:53 -m -w 2"), listing)
        XCTAssertTrue(listing.contains("--sctp-service 10.96.0.1:3868"), listing)
        for service in services { try ipvs.deleteService(service.key) }
        XCTAssertEqual(try ipvs.services(), [])
    }

    func testDuplicateAndMissingServicesAreTypedErrors() throws {
        let service = VirtualService(key: key(80))
        try ipvs.addService(service)
        XCTAssertThrowsError(try ipvs.addService(service)) { XCTAssertEqual(($0 as? IPVSError)?.kind, .serviceExists, "\($0)") }
        try ipvs.deleteService(service.key)
        XCTAssertThrowsError(try ipvs.deleteService(service.key)) { XCTAssertEqual(($0 as? IPVSError)?.kind, .serviceNotFound, "\($0)") }
        XCTAssertThrowsError(try ipvs.service(service.key)) { XCTAssertEqual(($0 as? IPVSError)?.kind, .serviceNotFound, "\($0)") }
        XCTAssertThrowsError(try ipvs.updateService(service)) { XCTAssertEqual(($0 as? IPVSError)?.kind, .serviceNotFound, "\($0)") }
        XCTAssertThrowsError(try ipvs.realServers(of: service.key)) { XCTAssertEqual(($0 as? IPVSError)?.kind, .serviceNotFound, "\($0)") }
        XCTAssertThrowsError(try ipvs.addRealServer(RealServer(address: IPAddress("10.244.0.1")!, port: 80), to: service.key)) {
            XCTAssertEqual(($0 as? IPVSError)?.kind, .serviceNotFound, "\($0)")
        }
    }

    // MARK: - Real servers

    func testEveryForwardingMethodAndThresholdsRoundTrip() throws {
        let service = VirtualService(key: key(80), scheduler: .weightedRoundRobin)
        try ipvs.addService(service)
        let servers = [
            RealServer(address: IPAddress("10.244.0.1")!, port: 8080, forwarding: .masquerade, weight: 5, upperThreshold: 1000, lowerThreshold: 100),
            RealServer(address: IPAddress("10.244.0.2")!, port: 80, forwarding: .directRouting, weight: 0),
            RealServer(address: IPAddress("10.244.0.3")!, port: 80, forwarding: .tunnel, weight: 1),
            RealServer(address: IPAddress("10.244.0.4")!, port: 80, forwarding: .tunnel, weight: 1,
                       tunnel: Tunnel(type: .gue, port: 6080, flags: [.checksum])),
            RealServer(address: IPAddress("10.244.0.5")!, port: 80, forwarding: .tunnel, weight: 1,
                       tunnel: Tunnel(type: .gre, flags: [.checksum])),
            RealServer(address: IPAddress("10.244.0.6")!, port: 80, forwarding: .local, weight: 1),
        ]
        for server in servers { try ipvs.addRealServer(server, to: service.key) }
        let read = try ipvs.realServers(of: service.key).sorted { $0.id < $1.id }
        XCTAssertEqual(read.map(\.configuration), servers)
        XCTAssertEqual(read.first?.connections, ConnectionCounts())
    }

    /// Linux 6.1 stores the requested method even for a local address (older kernels switched
    /// it to `Local`); the client must report what the kernel stores.
    func testLocalAddressKeepsTheRequestedForwardingMethod() throws {
        let service = VirtualService(key: key(80), scheduler: .roundRobin)
        try ipvs.addService(service)
        try ipvs.addRealServer(RealServer(address: IPAddress("127.0.0.1")!, port: 8080, forwarding: .masquerade), to: service.key)
        try ipvs.addRealServer(RealServer(address: IPAddress("127.0.0.1")!, port: 8081, forwarding: .local), to: service.key)
        XCTAssertEqual(try ipvs.realServers(of: service.key).sorted { $0.id < $1.id }.map(\.forwarding), [.masquerade, .local])
        XCTAssertTrue(try KernelTest.shell("ipvsadm -Ln").contains("127.0.0.1:8081               Local"))
    }

    func testEditAndDeleteRealServers() throws {
        let service = VirtualService(key: key(80), scheduler: .weightedRoundRobin)
        try ipvs.addService(service)
        var server = RealServer(address: IPAddress("10.244.0.1")!, port: 8080, weight: 3)
        try ipvs.addRealServer(server, to: service.key)
        XCTAssertThrowsError(try ipvs.addRealServer(server, to: service.key)) {
            XCTAssertEqual(($0 as? IPVSError)?.kind, .realServerExists, "\($0)")
        }
        server.weight = 0
        server.upperThreshold = 10
        try ipvs.updateRealServer(server, in: service.key)
        XCTAssertEqual(try ipvs.realServers(of: service.key).map(\.configuration), [server])
        try ipvs.deleteRealServer(server.id, from: service.key)
        XCTAssertEqual(try ipvs.realServers(of: service.key), [])
        XCTAssertThrowsError(try ipvs.deleteRealServer(server.id, from: service.key)) {
            XCTAssertEqual(($0 as? IPVSError)?.kind, .realServerNotFound, "\($0)")
        }
        XCTAssertThrowsError(try ipvs.updateRealServer(server, in: service.key)) {
            XCTAssertEqual(($0 as? IPVSError)?.kind, .realServerNotFound, "\($0)")
        }
    }

    func testNonUnicastRealServerIsAnInvalidArgument() throws {
        try ipvs.addService(VirtualService(key: key(80)))
        XCTAssertThrowsError(try ipvs.addRealServer(RealServer(address: IPAddress("224.0.0.1")!, port: 80), to: key(80))) { error in
            XCTAssertEqual((error as? IPVSError)?.kind, .invalidArgument, "\(error)")
            XCTAssertTrue("\(error)".contains("224.0.0.1:80"), "\(error)")
        }
    }

    // MARK: - Global state

    func testInfoTimeoutsZeroAndFlush() throws {
        let info = try ipvs.info()
        XCTAssertEqual(info.versionString, "1.2.1")
        XCTAssertGreaterThan(info.connectionTableSize, 0)

        try ipvs.setTimeouts(Timeouts(tcp: 900, tcpFin: 30, udp: 60))
        XCTAssertEqual(try ipvs.timeouts(), Timeouts(tcp: 900, tcpFin: 30, udp: 60))
        try ipvs.setTimeouts(Timeouts(tcp: 0, tcpFin: 0, udp: 200))
        XCTAssertEqual(try ipvs.timeouts(), Timeouts(tcp: 900, tcpFin: 30, udp: 200))
        XCTAssertTrue(try KernelTest.shell("ipvsadm -L --timeout").contains("900 30 200"))

        for port in 1...5 { try ipvs.addService(VirtualService(key: key(UInt16(port)))) }
        try ipvs.zero()
        try ipvs.zero(key(1))
        XCTAssertThrowsError(try ipvs.zero(key(99))) { XCTAssertEqual(($0 as? IPVSError)?.kind, .serviceNotFound, "\($0)") }
        try ipvs.flush()
        XCTAssertEqual(try ipvs.services(), [])
        XCTAssertEqual(try KernelTest.shell("ipvsadm -Sn"), "")
    }

    func testCountersCountRealConnectionsAndZeroClearsThem() throws {
        let listener = try LocalTraffic.listen(address: "127.0.0.1", port: 8080)
        defer { close(listener) }
        let service = VirtualService(key: .address(.tcp, IPAddress("127.0.0.1")!, port: 80), scheduler: .roundRobin)
        try ipvs.addService(service)
        try ipvs.addRealServer(RealServer(address: IPAddress("127.0.0.1")!, port: 8080), to: service.key)
        for _ in 0..<3 {
            let client = try LocalTraffic.connect(address: "127.0.0.1", port: 80)
            let accepted = accept(listener, nil, nil)
            XCTAssertGreaterThanOrEqual(accepted, 0)
            close(accepted)
            close(client)
        }
        let server0 = try XCTUnwrap(try ipvs.realServers(of: service.key).first)
        XCTAssertGreaterThan((server0.connections?.active ?? 0) + (server0.connections?.inactive ?? 0), 0)
        // Counters are folded in by the kernel's estimator every 2 s.
        var stats = try XCTUnwrap(try ipvs.service(service.key).statistics)
        for _ in 0..<20 where stats.connections < 3 {
            usleep(500_000)
            stats = try XCTUnwrap(try ipvs.service(service.key).statistics)
        }
        XCTAssertEqual(stats.connections, 3)
        XCTAssertGreaterThan(stats.incomingPackets, 0)
        XCTAssertGreaterThan(stats.incomingBytes, 0)
        let server = try XCTUnwrap(try ipvs.realServers(of: service.key).first)
        XCTAssertEqual(server.statistics?.connections, 3)
        try ipvs.zero(service.key)
        XCTAssertEqual(try ipvs.service(service.key).statistics?.connections, 0)
    }

    func testSyncDaemonStateIsRead() throws {
        XCTAssertEqual(try ipvs.syncDaemons(), [])
        try KernelTest.shell("ipvsadm --start-daemon master --mcast-interface lo --syncid 7")
        let daemons = try ipvs.syncDaemons()
        XCTAssertEqual(daemons.map(\.role), [.master])
        XCTAssertEqual(daemons.first?.interface, "lo")
        XCTAssertEqual(daemons.first?.syncID, 7)
        try KernelTest.shell("ipvsadm --stop-daemon master")
    }

    /// Runs itself again without CAP_NET_ADMIN (`setpriv --bounding-set=-net_admin`), where the
    /// client must fail with `.permissionDenied`.
    func testMissingCapabilityIsPermissionDenied() throws {
        if ProcessInfo.processInfo.environment["IPVS_TEST_WITHOUT_NET_ADMIN"] != nil {
            XCTAssertThrowsError(try IPVSClient().services()) { error in
                XCTAssertEqual((error as? IPVSError)?.kind, .permissionDenied, "\(error)")
                XCTAssertTrue("\(error)".contains("CAP_NET_ADMIN"), "\(error)")
            }
            return
        }
        let result = try KernelTest.run(
            ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", CommandLine.arguments[0],
             "KernelTests.IPVSClientKernelTests/testMissingCapabilityIsPermissionDenied"],
            environment: ["IPVS_TEST_WITHOUT_NET_ADMIN": "1"])
        XCTAssertEqual(result.status, 0, result.standardOutput + result.standardError)
        XCTAssertTrue((result.standardOutput + result.standardError).contains("Executed 1 test, with 0 failures"),
                      result.standardOutput + result.standardError)
    }
}
