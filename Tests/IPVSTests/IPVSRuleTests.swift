import XCTest
import IPVS

/// The words IPVS writes once for ipvsctl and the agent: `ipvsadm -S` lines, scheduler flag names
/// and persistence netmasks.
final class IPVSRuleTests: XCTestCase {
    let web = ServiceKey.address(.tcp, IPAddress("10.0.0.1")!, port: 80)

    func testServiceSettingsComeInIpvsadmOrder() {
        let service = VirtualService(key: .address(.udp, IPAddress("10.0.0.1")!, port: 53), scheduler: .sourceHashing,
                                     flags: [.onePacket, .shPort], persistence: Persistence(timeout: 60, prefixLength: 24),
                                     persistenceEngine: "sip")
        XCTAssertEqual(IPVSRule.command(.addService(service)), "-A -u 10.0.0.1:53 -s sh -p 60 -M 255.255.255.0 --pe sip -o -b sh-port")
        XCTAssertEqual(IPVSRule.settings(of: VirtualService(key: web, scheduler: .roundRobin, persistence: Persistence(timeout: 300))),
                       "-s rr -p 300")
    }

    func testServiceNames() {
        XCTAssertEqual(IPVSRule.service(web), "-t 10.0.0.1:80")
        XCTAssertEqual(IPVSRule.service(web, endpoint: "localhost:http"), "-t localhost:http")
        XCTAssertEqual(IPVSRule.service(.address(.sctp, IPAddress("fd00::1")!, port: 9)), "--sctp-service [fd00::1]:9")
        XCTAssertEqual(IPVSRule.service(.firewallMark(7, family: .inet6)), "-f 7 -6")
        XCTAssertEqual(IPVSRule.service(.firewallMark(0x8000_0001, family: .inet)), "-f -2147483647")
    }

    func testRealServerSettingsKeepTheTunnel() {
        var server = RealServer(address: IPAddress("10.1.0.5")!, port: 8080, forwarding: .tunnel, weight: 3)
        XCTAssertEqual(IPVSRule.settings(of: server), "-r 10.1.0.5:8080 -i -w 3 --tun-type ipip")
        server.tunnel = Tunnel(type: .gre, flags: [.remoteChecksum])
        XCTAssertEqual(IPVSRule.command(.updateRealServer(server, service: web)),
                       "-e -t 10.0.0.1:80 -r 10.1.0.5:8080 -i -w 3 --tun-type gre --tun-remcsum")
        server.forwarding = .local
        XCTAssertEqual(IPVSRule.settings(of: server, name: "pod:http-alt"), "-r pod:http-alt -g -w 3")
    }

    func testOtherCommands() {
        XCTAssertEqual(IPVSRule.command(.deleteService(web)), "-D -t 10.0.0.1:80")
        XCTAssertEqual(IPVSRule.command(.zero(web)), "-Z -t 10.0.0.1:80")
        XCTAssertEqual(IPVSRule.command(.zero(nil)), "-Z")
        XCTAssertEqual(IPVSRule.command(.flush), "-C")
    }

    func testSchedulerFlagNamesDependOnTheScheduler() {
        let all: ServiceFlags = [.scheduler1, .scheduler2, .scheduler3]
        XCTAssertEqual(all.schedulerFlagNames(for: .sourceHashing), ["sh-fallback", "sh-port"])
        XCTAssertEqual(all.schedulerFlagNames(for: .maglevHashing), ["mh-fallback", "mh-port"])
        XCTAssertEqual(all.schedulerFlagNames(for: .roundRobin), ["flag-1", "flag-2", "flag-3"])
        XCTAssertEqual(ServiceFlags.scheduler2.schedulerFlagNames(for: .maglevHashing), ["mh-port"])
        XCTAssertEqual(ServiceFlags.schedulerFlag(named: "mh-port")?.flag, .mhPort)
        XCTAssertEqual(ServiceFlags.schedulerFlag(named: "mh-port")?.scheduler, .maglevHashing)
        XCTAssertNil(ServiceFlags.schedulerFlag(named: "onepacket"))
        XCTAssertEqual(Scheduler.maglevHashing.supportedFlags, [.mhFallback, .mhPort])
        XCTAssertEqual(Scheduler.roundRobin.supportedFlags, [])
        // sh with flag 3 alone: ipvsadm still writes `-b`, with no name after it.
        let service = VirtualService(key: web, scheduler: .sourceHashing, flags: .scheduler3)
        XCTAssertEqual(IPVSRule.settings(of: service), "-s sh -b ")
    }

    func testNetmasksAndPrefixLengths() {
        XCTAssertEqual(Persistence.netmask(prefixLength: 24, family: .inet), 0xFFFF_FF00)
        XCTAssertEqual(Persistence.netmask(prefixLength: 0, family: .inet), 0)
        XCTAssertEqual(Persistence.netmask(prefixLength: 32, family: .inet), 0xFFFF_FFFF)
        XCTAssertEqual(Persistence.netmask(prefixLength: 64, family: .inet6), 64)
        for length in 0...32 {
            XCTAssertEqual(Persistence.prefixLength(netmask: Persistence.netmask(prefixLength: length, family: .inet), family: .inet), length)
        }
        // A mask that is not contiguous is not the round trip of its length.
        let holes: UInt32 = 0xFF00_FF00
        XCTAssertNotEqual(Persistence.netmask(prefixLength: Persistence.prefixLength(netmask: holes, family: .inet), family: .inet), holes)
        XCTAssertEqual(Persistence.netmaskText(prefixLength: 20, family: .inet), "255.255.240.0")
        XCTAssertEqual(Persistence.netmaskText(prefixLength: 48, family: .inet6), "48")
    }
}
