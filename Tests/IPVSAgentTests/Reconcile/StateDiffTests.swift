import IPVS
import XCTest
@testable import IPVSAgent

final class StateDiffTests: XCTestCase {
    let now = ContinuousClock.now
    let drains = DrainTracker(timeout: .seconds(60))

    func state(_ services: [DesiredService]) -> DesiredState {
        DesiredState(services: Dictionary(uniqueKeysWithValues: services.map { ($0.service.key, $0) }))
    }

    func kernel(_ services: [DesiredService]) -> KernelState {
        KernelState(services: Dictionary(uniqueKeysWithValues: services.map {
            ($0.service.key, KernelState.Entry(service: $0.service, realServers: $0.realServers))
        }))
    }

    func testColdSyncAddsServicesBeforeTheirRealServers() {
        let want = state([desired(tcp("10.96.0.10", 80), [server("10.244.1.5", 8080), server("10.244.1.6", 8080)])])
        let plan = StateDiff.plan(desired: want, actual: KernelState(), owned: [], drains: drains, now: now)
        XCTAssertEqual(plan.operations.map(IPVSRule.command), [
            "-A -t 10.96.0.10:80 -s rr",
            "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
            "-a -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1",
        ])
    }

    func testNoOpResyncIsEmpty() {
        let services = (0..<100).map { desired(tcp("10.96.0.\($0)", 80), [server("10.244.1.\($0)", 8080)]) }
        let plan = StateDiff.plan(desired: state(services), actual: kernel(services), owned: Set(services.map(\.service.key)),
                                  drains: drains, now: now)
        XCTAssertEqual(plan, ReconcilePlan())
    }

    func testOneEndpointChangeIsOneOperationAmongThousands() {
        var services = (0..<2000).map { desired(tcp("10.96.\($0 / 250).\($0 % 250)", 80), [server("10.244.1.\($0 % 250)", 8080)]) }
        let actual = kernel(services)
        let key = services[1234].service.key
        services[1234].realServers[RealServerID(address: ip("10.244.9.9"), port: 8080)] = server("10.244.9.9", 8080)
        let owned = Set(services.map(\.service.key))
        let full = StateDiff.plan(desired: state(services), actual: actual, owned: owned, drains: drains, now: now)
        let scoped = StateDiff.plan(desired: state(services), actual: actual, owned: owned, drains: drains, keys: [key], now: now)
        XCTAssertEqual(full.operations, [.addRealServer(server("10.244.9.9", 8080), service: key)])
        XCTAssertEqual(scoped, full)
    }

    func testEditsInPlaceInsteadOfDeleteAndAdd() {
        let old = desired(tcp("10.96.0.10", 80), [server("10.244.1.5", 8080)])
        var new = desired(tcp("10.96.0.10", 80), [server("10.244.1.5", 8080, weight: 3)], scheduler: .weightedLeastConnection)
        new.service.persistence = Persistence(timeout: 600)
        let plan = StateDiff.plan(desired: state([new]), actual: kernel([old]), owned: [old.service.key], drains: drains, now: now)
        XCTAssertEqual(plan.operations.map(IPVSRule.command), [
            "-E -t 10.96.0.10:80 -s wlc -p 600",
            "-e -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 3",
        ])
    }

    func testPortChangeIsDeleteAndAddInSafeOrder() {
        let old = desired(tcp("10.96.0.10", 80), [server("10.244.1.5", 8080)])
        let new = desired(tcp("10.96.0.10", 81), [server("10.244.1.5", 8080)])
        let plan = StateDiff.plan(desired: state([new]), actual: kernel([old]), owned: [old.service.key], drains: drains, now: now)
        XCTAssertEqual(plan.operations.map(IPVSRule.command), [
            "-A -t 10.96.0.10:81 -s rr", "-a -t 10.96.0.10:81 -r 10.244.1.5:8080 -m -w 1", "-D -t 10.96.0.10:80",
        ])
    }

    func testForeignServicesAreNeverTouchedAndDesiredOnesAreAdopted() {
        let foreign = desired(tcp("192.0.2.1", 80), [server("192.0.2.100", 80)])
        let existing = desired(tcp("10.96.0.10", 80), [server("10.244.1.5", 8080, weight: 0)])
        let want = desired(tcp("10.96.0.10", 80), [server("10.244.1.5", 8080)])
        let plan = StateDiff.plan(desired: state([want]), actual: kernel([foreign, existing]), owned: [], drains: drains, now: now)
        XCTAssertEqual(plan.adopted, [want.service.key])
        // The ready endpoint left at weight 0 by an earlier drain is restored; nothing is flushed.
        XCTAssertEqual(plan.operations, [.updateRealServer(server("10.244.1.5", 8080), service: want.service.key)])
    }

    func testRemovedTCPEndpointDrainsAndUDPGoesAtOnce() {
        let key = tcp("10.96.0.10", 80), dns = udp("10.96.0.10", 53)
        let old = [desired(key, [server("10.244.1.5", 8080), server("10.244.1.6", 8080)]),
                   desired(dns, [server("10.244.1.5", 53), server("10.244.1.6", 53)])]
        let new = [desired(key, [server("10.244.1.5", 8080)]), desired(dns, [server("10.244.1.5", 53)])]
        let plan = StateDiff.plan(desired: state(new), actual: kernel(old), owned: [key, dns], drains: drains, now: now)
        XCTAssertEqual(plan.operations.map(IPVSRule.command), [
            "-e -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 0",
            "-d -u 10.96.0.10:53 -r 10.244.1.6:53",
        ])
        XCTAssertEqual(plan.drainsStarted, [RealServerRef(service: key, server: RealServerID(address: ip("10.244.1.6"), port: 8080))])
    }

    func testDrainingServerIsDeletedWhenIdleOrAtItsDeadline() {
        let key = tcp("10.96.0.10", 80)
        let ref = RealServerRef(service: key, server: RealServerID(address: ip("10.244.1.6"), port: 8080))
        var tracker = drains
        tracker.begin(ref, now: now)
        var actual = kernel([desired(key, [server("10.244.1.6", 8080, weight: 0)])])
        actual.services[key]?.realServers[ref.server]?.connections = ConnectionCounts(active: 2, inactive: 1)
        let want = state([desired(key, [])])
        // Busy and before the deadline: nothing to do.
        XCTAssertEqual(StateDiff.plan(desired: want, actual: actual, owned: [key], drains: tracker, now: now + .seconds(59)).operations, [])
        // Past the deadline: deleted even with connections.
        XCTAssertEqual(StateDiff.plan(desired: want, actual: actual, owned: [key], drains: tracker, now: now + .seconds(60)).operations,
                       [.deleteRealServer(ref.server, service: key)])
        // Idle: deleted at once.
        actual.services[key]?.realServers[ref.server]?.connections = ConnectionCounts()
        XCTAssertEqual(StateDiff.plan(desired: want, actual: actual, owned: [key], drains: tracker, now: now + .seconds(1)).operations,
                       [.deleteRealServer(ref.server, service: key)])
        // It comes back: restored to its weight, no longer draining.
        let back = StateDiff.plan(desired: state([desired(key, [server("10.244.1.6", 8080)])]), actual: actual, owned: [key],
                                  drains: tracker, now: now)
        XCTAssertEqual(back.operations, [.updateRealServer(server("10.244.1.6", 8080), service: key)])
        XCTAssertEqual(back.drainsEnded, [ref])
    }

    func testAddressesRemovesOnlyOwnedOnes() {
        let result = StateDiff.addresses(desired: [ip("10.96.0.10"), ip("10.96.0.11")],
                                         actual: [ip("10.96.0.10"), ip("10.96.0.99"), ip("192.0.2.1")],
                                         owned: [ip("10.96.0.99")])
        XCTAssertEqual(result.add, [ip("10.96.0.11")])
        XCTAssertEqual(result.remove, [ip("10.96.0.99")])
    }

    /// The dry run prints what ipvsctl's `-S` prints (issue 18: it printed `-b` before `-o` and
    /// dropped the tunnel options).
    func testDryRunLinesAreIpvsadmSaveLines() {
        var service = VirtualService(key: .address(.sctp, ip("fd00::1"), port: 9), scheduler: .maglevHashing, flags: [.mhFallback, .mhPort])
        service.persistence = Persistence(timeout: 300, prefixLength: 64)
        XCTAssertEqual(IPVSRule.command(.addService(service)), "-A --sctp-service [fd00::1]:9 -s mh -p 300 -M 64 -b mh-fallback,mh-port")
        let udpService = VirtualService(key: udp("10.96.0.1", 53), scheduler: .maglevHashing, flags: [.onePacket, .mhPort])
        XCTAssertEqual(IPVSRule.command(.updateService(udpService)), "-E -u 10.96.0.1:53 -s mh -o -b mh-port")
        var tunnelled = server("10.0.0.2", 80)
        tunnelled.forwarding = .tunnel
        tunnelled.tunnel = Tunnel(type: .gue, port: 6080, flags: [.checksum])
        XCTAssertEqual(IPVSRule.command(.addRealServer(tunnelled, service: udp("10.96.0.1", 53))),
                       "-a -u 10.96.0.1:53 -r 10.0.0.2:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum")
        XCTAssertEqual(IPVSRule.command(.deleteRealServer(RealServerID(address: ip("10.0.0.1"), port: 80), service: udp("10.96.0.1", 53))),
                       "-d -u 10.96.0.1:53 -r 10.0.0.1:80")
    }
}
