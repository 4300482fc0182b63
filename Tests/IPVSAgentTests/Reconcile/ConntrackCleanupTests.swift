import Conntrack
import Foundation
import IPVS
import Logging
import TestSupport
import XCTest
@testable import IPVSAgent

/// The UDP conntrack entries kernel changes leave stale (`ConntrackCleanup`), as kube-proxy's IPVS
/// mode finds them, and the reconciler noting them for the sync pass.
final class ConntrackCleanupTests: XCTestCase {
    let dns = udp("10.96.0.10", 53)

    func filter(_ address: String, _ port: UInt16, reply: String? = nil) -> ConntrackFilter {
        ConntrackFilter(transport: .udp, destination: ip(address), port: port, replySource: reply.map(ip))
    }

    func kernel(_ key: ServiceKey, _ servers: [RealServer]) -> KernelState {
        KernelState(services: [key: KernelState.Entry(service: VirtualService(key: key), realServers: Dictionary(uniqueKeysWithValues: servers.map { ($0.id, $0) }))])
    }

    func testADeletedUDPRealServerLeavesItsFlowsFromTheFrontendStale() {
        let before = kernel(dns, [server("10.244.1.5", 5353), server("10.244.2.7", 5353)])
        XCTAssertEqual(ConntrackCleanup.filters(for: .deleteRealServer(server("10.244.1.5", 5353).id, service: dns), before: before),
                       [filter("10.96.0.10", 53, reply: "10.244.1.5")])
        // A node port's virtual service is one node address: its address and port.
        XCTAssertEqual(ConntrackCleanup.filters(for: .deleteRealServer(server("10.244.1.5", 5353).id, service: udp("192.168.0.2", 30053)), before: before),
                       [filter("192.168.0.2", 30053, reply: "10.244.1.5")])
    }

    func testADeletedUDPServiceLeavesEachRealServersFlowsStale() {
        let before = kernel(dns, [server("10.244.1.5", 5353), server("10.244.2.7", 5353), server("10.244.2.7", 5354)])
        XCTAssertEqual(ConntrackCleanup.filters(for: .deleteService(dns), before: before),
                       [filter("10.96.0.10", 53, reply: "10.244.1.5"), filter("10.96.0.10", 53, reply: "10.244.2.7")])
    }

    func testTheFirstServingRealServerLeavesTheFrontendsCachedFlowsStale() {
        let added = server("10.244.1.5", 5353)
        XCTAssertEqual(ConntrackCleanup.filters(for: .addRealServer(added, service: dns), before: kernel(dns, [])),
                       [filter("10.96.0.10", 53)])
        // Only weight-0 (draining or quiesced) servers before: nothing served the frontend either.
        XCTAssertEqual(ConntrackCleanup.filters(for: .addRealServer(added, service: dns), before: kernel(dns, [server("10.244.2.7", 5353, weight: 0)])),
                       [filter("10.96.0.10", 53)])
        XCTAssertEqual(ConntrackCleanup.filters(for: .updateRealServer(added, service: dns), before: kernel(dns, [server("10.244.1.5", 5353, weight: 0)])),
                       [filter("10.96.0.10", 53)])
        // A second server, or one at weight 0, changes nothing of the existing flows.
        XCTAssertEqual(ConntrackCleanup.filters(for: .addRealServer(added, service: dns), before: kernel(dns, [server("10.244.2.7", 5353)])), [])
        XCTAssertEqual(ConntrackCleanup.filters(for: .addRealServer(server("10.244.1.5", 5353, weight: 0), service: dns), before: kernel(dns, [])), [])
    }

    func testOnlyUDPIsCleaned() {
        let tcpKey = tcp("10.96.0.10", 80), sctpKey = ServiceKey.address(.sctp, ip("10.96.0.10"), port: 9)
        let rs = server("10.244.1.5", 8080)
        for key in [tcpKey, sctpKey, ServiceKey.firewallMark(7, family: .inet)] {
            let before = kernel(key, [rs])
            XCTAssertEqual(ConntrackCleanup.filters(for: .deleteRealServer(rs.id, service: key), before: before), [], "\(key)")
            XCTAssertEqual(ConntrackCleanup.filters(for: .deleteService(key), before: before), [], "\(key)")
            XCTAssertEqual(ConntrackCleanup.filters(for: .addRealServer(rs, service: key), before: kernel(key, [])), [], "\(key)")
        }
    }

    /// The reconciler notes what its applied operations left stale, once, for the sync pass to take.
    func testTheReconcilerNotesAReplacedPodsFlowsOnce() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ipvs-agent-conntrack-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let ipvs = FakeIPVS(), vips = FakeVIPs()
        let reconciler = Reconciler(ipvs: ipvs, vips: vips, store: OwnershipStore(path: folder.appendingPathComponent("state.json").path),
                                    options: .init(interface: "kube-ipvs0"), logger: Logger(label: "test"))
        try await reconciler.start()
        func state(_ pods: [String]) -> DesiredState {
            DesiredState(services: [dns: desired(dns, pods.map { server($0, 5353) })], addresses: [ip("10.96.0.10")])
        }
        await reconciler.reconcile(state([]))
        let empty = await reconciler.takeStaleConntrack()
        XCTAssertEqual(empty, [])
        await reconciler.reconcile(state(["10.244.1.5"]))
        let first = await reconciler.takeStaleConntrack()
        XCTAssertEqual(first, [filter("10.96.0.10", 53)])
        await reconciler.reconcile(state(["10.244.2.7"]))
        let replaced = await reconciler.takeStaleConntrack()
        XCTAssertEqual(replaced, [filter("10.96.0.10", 53, reply: "10.244.1.5")], "UDP is deleted at once, not drained")
        let again = await reconciler.takeStaleConntrack()
        XCTAssertEqual(again, [])
    }
}
