import TestSupport
import XCTest
@testable import IPVS
@testable import Netlink

/// Every request kind against saved bytes. The expected bytes are written out field by field
/// from `<linux/ip_vs.h>` and `<linux/netlink.h>`; family id 0x24, sequence 1, port id 0.
final class IPVSWireEncodingTests: XCTestCase {
    let family: UInt16 = 0x24
    let web = ServiceKey.address(.tcp, IPAddress("10.0.0.1")!, port: 80)

    // nlmsghdr: length, type 0x24, flags REQUEST|ACK, seq 1, pid 0.
    func header(_ length: Int, flags: String = "0500") -> String {
        String(format: "%02x%02x 0000 2400 ", length & 0xFF, length >> 8) + flags + " 0100 0000 0000 0000"
    }

    // The identifying attributes of `web`: AF_INET, TCP, 10.0.0.1, port 80 (network order).
    let webKey = """
        0600 0100 0200 0000
        0600 0200 0600 0000
        1400 0300 0a00 0001 0000 0000 0000 0000 0000 0000
        0600 0400 0050 0000
        """

    func testAddService() {
        let service = VirtualService(key: web, scheduler: .roundRobin)
        let expected = hex(header(104) + "0101 0000" + "5400 0180" + webKey + """
            0700 0600 7272 0000
            0c00 0700 0000 0000 ffff ffff
            0800 0800 0000 0000
            0800 0900 ffff ffff
            """)
        XCTAssertEqual(IPVSWire.encode(.addService(service), family: family, sequence: 1), expected)
    }

    func testEditPersistentServiceWithFlagsAndEngine() {
        let service = VirtualService(key: web, scheduler: .sourceHashing, flags: [.shFallback, .shPort, .onePacket],
                                     persistence: Persistence(timeout: 600, prefixLength: 24), persistenceEngine: "sip")
        // flags = PERSISTENT|ONEPACKET|SCHED1|SCHED2 = 0x1d; netmask 255.255.255.0 in network order.
        let expected = hex(header(112) + "0201 0000" + "5c00 0180" + webKey + """
            0700 0600 7368 0000
            0800 0b00 7369 7000
            0c00 0700 1d00 0000 ffff ffff
            0800 0800 5802 0000
            0800 0900 ffff ff00
            """)
        XCTAssertEqual(IPVSWire.encode(.updateService(service), family: family, sequence: 1), expected)
    }

    func testDeleteFirewallMarkIPv6Service() {
        let expected = hex(header(40) + "0301 0000" + """
            1400 0180
            0600 0100 0a00 0000
            0800 0500 0700 0000
            """)
        XCTAssertEqual(IPVSWire.encode(.deleteService(.firewallMark(7, family: .inet6)), family: family, sequence: 1), expected)
    }

    func testIPv6ServiceNetmaskIsAPrefixLength() {
        let key = ServiceKey.address(.udp, IPAddress("fd00::1")!, port: 53)
        let bytes = IPVSWire.encode(.addService(VirtualService(key: key, scheduler: .roundRobin,
                                                                persistence: Persistence(timeout: 30, prefixLength: 64))),
                                    family: family, sequence: 1)
        XCTAssertEqual(Array(bytes.suffix(8)), hex("0800 0900 4000 0000"))
        XCTAssertEqual(Array(bytes[40..<60]), hex("1400 0300 fd00 0000 0000 0000 0000 0000 0000 0001"))
    }

    func testAddRealServer() {
        let server = RealServer(address: IPAddress("10.244.1.5")!, port: 8080, forwarding: .masquerade,
                                weight: 3, upperThreshold: 100, lowerThreshold: 10)
        let expected = hex(header(140) + "0501 0000" + "3000 0180" + webKey + """
            4800 0280
            0600 0b00 0200 0000
            1400 0100 0af4 0105 0000 0000 0000 0000 0000 0000
            0600 0200 1f90 0000
            0800 0300 0000 0000
            0800 0400 0300 0000
            0800 0500 6400 0000
            0800 0600 0a00 0000
            """)
        XCTAssertEqual(IPVSWire.encode(.addRealServer(server, service: web), family: family, sequence: 1), expected)
    }

    func testEditTunnelRealServerCarriesTunnelAttributes() {
        let server = RealServer(address: IPAddress("10.244.1.5")!, port: 80, forwarding: .tunnel, weight: 1,
                                tunnel: Tunnel(type: .gue, port: 6080, flags: [.checksum]))
        let bytes = IPVSWire.encode(.updateRealServer(server, service: web), family: family, sequence: 1)
        XCTAssertEqual(bytes[16], 6) // IPVS_CMD_SET_DEST
        XCTAssertEqual(Array(bytes.suffix(24)), hex("""
            0500 0d00 0100 0000
            0600 0e00 17c0 0000
            0600 0f00 0100 0000
            """))
    }

    func testDeleteRealServerCarriesOnlyItsIdentity() {
        let id = RealServerID(address: IPAddress("10.244.1.5")!, port: 8080)
        let expected = hex(header(108) + "0701 0000" + "3000 0180" + webKey + """
            2800 0280
            0600 0b00 0200 0000
            1400 0100 0af4 0105 0000 0000 0000 0000 0000 0000
            0600 0200 1f90 0000
            """)
        XCTAssertEqual(IPVSWire.encode(.deleteRealServer(id, service: web), family: family, sequence: 1), expected)
    }

    func testZeroFlushAndQueries() {
        XCTAssertEqual(IPVSWire.encode(.flush, family: family, sequence: 1), hex(header(20) + "1101 0000"))
        XCTAssertEqual(IPVSWire.encode(.zero(nil), family: family, sequence: 1), hex(header(20) + "1001 0000"))
        XCTAssertEqual(IPVSWire.encode(.zero(web), family: family, sequence: 1),
                       hex(header(68) + "1001 0000" + "3000 0180" + webKey))
        XCTAssertEqual(IPVSWire.dumpServices(family: family, sequence: 1), hex(header(20, flags: "0103") + "0401 0000"))
        XCTAssertEqual(IPVSWire.dumpRealServers(web, family: family, sequence: 1),
                       hex(header(68, flags: "0103") + "0801 0000" + "3000 0180" + webKey))
        XCTAssertEqual(IPVSWire.getService(web, family: family, sequence: 1),
                       hex(header(68) + "0401 0000" + "3000 0180" + webKey))
        XCTAssertEqual(IPVSWire.simple(.getInfo, family: family, flags: .acknowledge, sequence: 1), hex(header(20) + "0f01 0000"))
        XCTAssertEqual(IPVSWire.simple(.getConfig, family: family, flags: .acknowledge, sequence: 1), hex(header(20) + "0d01 0000"))
        XCTAssertEqual(IPVSWire.simple(.getDaemon, family: family, flags: .dump, sequence: 1), hex(header(20, flags: "0103") + "0b01 0000"))
    }

    func testSetTimeoutsSendsOnlyNonZeroValues() {
        XCTAssertEqual(IPVSWire.setTimeouts(Timeouts(tcp: 900, tcpFin: 0, udp: 300), family: family, sequence: 1),
                       hex(header(36) + "0c01 0000" + "0800 0400 8403 0000" + "0800 0600 2c01 0000"))
    }

    func testNetmaskConversions() {
        XCTAssertEqual(IPVSWire.netmask(prefixLength: 32, family: .inet), UInt32(0xFFFF_FFFF))
        XCTAssertEqual(IPVSWire.netmask(prefixLength: 0, family: .inet), 0)
        XCTAssertEqual(IPVSWire.prefixLength(netmask: IPVSWire.netmask(prefixLength: 17, family: .inet), family: .inet), 17)
        XCTAssertEqual(IPVSWire.prefixLength(netmask: 0xFFFF_FFFF, family: .inet), 32)
        XCTAssertEqual(IPVSWire.prefixLength(netmask: 64, family: .inet6), 64)
    }
}
