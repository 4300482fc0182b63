import TestSupport
import XCTest
@testable import IPVS
@testable import Netlink

/// Decoding of kernel answers saved from Linux 6.1 (Debian's 6.1.0-56 in the test VM), after
/// this state was made with ipvsadm 1.31:
///
///     ipvsadm -A -t 10.96.0.1:80 -s sh -b sh-fallback,sh-port -p 600 -M 255.255.255.0
///     ipvsadm -a -t 10.96.0.1:80 -r 10.244.0.5:8080 -m -w 3 -x 100 -y 10
///     ipvsadm -A -u [fd00::1]:53 -s rr -o
///     ipvsadm -a -u [fd00::1]:53 -r [fd00::5]:53 -i --tun-type gue --tun-port 6080 --tun-nocsum -w 2
///     ipvsadm -A -f 7 -s wlc
///     ipvsadm --set 900 60 300
///     ipvsadm --start-daemon backup --mcast-interface lo --syncid 9
///
/// Each payload is a message body (generic netlink header and attributes) as the kernel sent it.
final class IPVSWireDecodingTests: XCTestCase {
    func message(_ payload: String) -> NetlinkMessage {
        NetlinkMessage(type: 32, flags: .multipart, sequence: 1, portID: 0, payload: hex(payload)[...])
    }

    static let services0 = """
        010100002c01010006000100020000000600020006000000140003000a600001
        000000000000000000000000060004000050000007000600736800000c000700
        1b000000ffffffff080008005802000008000900ffffff005c000a0008000100
        00000000080002000000000008000300000000000c0004000000000000000000
        0c00050000000000000000000800060000000000080007000000000008000800
        00000000080009000000000008000a00000000007c000c000c00010000000000
        000000000c00020000000000000000000c00030000000000000000000c000400
        00000000000000000c00050000000000000000000c0006000000000000000000
        0c00070000000000000000000c00080000000000000000000c00090000000000
        000000000c000a000000000000000000
        """

    static let services1 = """
        010100002c010100060001000a000000060002001100000014000300fd000000
        000000000000000000000001060004000035000007000600727200000c000700
        06000000ffffffff080008000000000008000900800000005c000a0008000100
        00000000080002000000000008000300000000000c0004000000000000000000
        0c00050000000000000000000800060000000000080007000000000008000800
        00000000080009000000000008000a00000000007c000c000c00010000000000
        000000000c00020000000000000000000c00030000000000000000000c000400
        00000000000000000c00050000000000000000000c0006000000000000000000
        0c00070000000000000000000c00080000000000000000000c00090000000000
        000000000c000a000000000000000000
        """

    static let services2 = """
        01010000100101000600010002000000080005000700000008000600776c6300
        0c00070002000000ffffffff080008000000000008000900ffffffff5c000a00
        0800010000000000080002000000000008000300000000000c00040000000000
        000000000c000500000000000000000008000600000000000800070000000000
        0800080000000000080009000000000008000a00000000007c000c000c000100
        00000000000000000c00020000000000000000000c0003000000000000000000
        0c00040000000000000000000c00050000000000000000000c00060000000000
        000000000c00070000000000000000000c00080000000000000000000c000900
        00000000000000000c000a000000000000000000
        """

    static let dests40 = """
        0501000050010200140001000af4000500000000000000000000000006000200
        1f9000000800030000000000080004000300000005000d000000000006000e00
        0000000006000f00000000000800050064000000080006000a00000008000700
        000000000800080000000000080009000000000006000b00020000005c000a00
        0800010000000000080002000000000008000300000000000c00040000000000
        000000000c000500000000000000000008000600000000000800070000000000
        0800080000000000080009000000000008000a00000000007c000c000c000100
        00000000000000000c00020000000000000000000c0003000000000000000000
        0c00040000000000000000000c00050000000000000000000c00060000000000
        000000000c00070000000000000000000c00080000000000000000000c000900
        00000000000000000c000a000000000000000000
        """

    static let dests60 = """
        050100005001020014000100fd00000000000000000000000000000506000200
        003500000800030002000000080004000200000005000d000100000006000e00
        17c0000006000f00000000000800050000000000080006000000000008000700
        000000000800080000000000080009000000000006000b000a0000005c000a00
        0800010000000000080002000000000008000300000000000c00040000000000
        000000000c000500000000000000000008000600000000000800070000000000
        0800080000000000080009000000000008000a00000000007c000c000c000100
        00000000000000000c00020000000000000000000c0003000000000000000000
        0c00040000000000000000000c00050000000000000000000c00060000000000
        000000000c00070000000000000000000c00080000000000000000000c000900
        00000000000000000c000a000000000000000000
        """

    static let info0 = """
        0e01000008000100010201000800020000100000
        """

    static let config0 = """
        0c0100000800040084030000080005003c000000080006002c010000
        """

    static let daemon0 = """
        090100003c0003000800010002000000070002006c6f00000800030009000000
        06000400e3ff00000600070090220000050008000100000008000500e0000051
        """

    func testServiceDumpDecodes() throws {
        let tcp = try IPVSWire.decodeService(message(Self.services0))
        XCTAssertEqual(tcp.configuration, VirtualService(
            key: .address(.tcp, IPAddress("10.96.0.1")!, port: 80), scheduler: .sourceHashing,
            flags: [.shFallback, .shPort], persistence: Persistence(timeout: 600, prefixLength: 24)))
        XCTAssertNotNil(tcp.statistics)

        let udp = try IPVSWire.decodeService(message(Self.services1))
        XCTAssertEqual(udp.configuration, VirtualService(
            key: .address(.udp, IPAddress("fd00::1")!, port: 53), scheduler: .roundRobin, flags: [.onePacket]))

        let mark = try IPVSWire.decodeService(message(Self.services2))
        XCTAssertEqual(mark.configuration, VirtualService(key: .firewallMark(7, family: .inet), scheduler: .weightedLeastConnection))
        XCTAssertEqual(mark.statistics, Statistics())
    }

    func testRealServerDumpDecodes() throws {
        let v4 = try IPVSWire.decodeRealServer(message(Self.dests40), serviceFamily: .inet)
        XCTAssertEqual(v4.configuration, RealServer(address: IPAddress("10.244.0.5")!, port: 8080, forwarding: .masquerade,
                                                    weight: 3, upperThreshold: 100, lowerThreshold: 10))
        XCTAssertEqual(v4.connections, ConnectionCounts())
        XCTAssertEqual(v4.statistics, Statistics())

        let v6 = try IPVSWire.decodeRealServer(message(Self.dests60), serviceFamily: .inet6)
        XCTAssertEqual(v6.configuration, RealServer(address: IPAddress("fd00::5")!, port: 53, forwarding: .tunnel, weight: 2,
                                                    tunnel: Tunnel(type: .gue, port: 6080, flags: [])))
    }

    func testInfoConfigAndDaemonDecode() throws {
        let info = try IPVSWire.decodeInfo(message(Self.info0))
        XCTAssertEqual(info.versionString, "1.2.1")
        XCTAssertEqual(info.connectionTableSize, 4096)
        XCTAssertEqual(try IPVSWire.decodeTimeouts(message(Self.config0)), Timeouts(tcp: 900, tcpFin: 60, udp: 300))
        let daemon = try XCTUnwrap(try IPVSWire.decodeDaemon(message(Self.daemon0)))
        XCTAssertEqual(daemon.role, .backup)
        XCTAssertEqual(daemon.interface, "lo")
        XCTAssertEqual(daemon.syncID, 9)
        XCTAssertEqual(daemon.multicastGroup, IPAddress("224.0.0.81"))
    }

    /// Every saved answer cut short at every length, and with single bytes flipped, decodes or
    /// throws NetlinkDecodingError; it never traps.
    func testTruncatedAndCorruptedAnswersNeverTrap() {
        let saved = [Self.services0, Self.services1, Self.services2, Self.dests40, Self.dests60, Self.info0, Self.config0, Self.daemon0]
        var generator = SplitMix64(seed: 7)
        var rejected = 0
        for payload in saved.map(hex) {
            var variants = (0..<payload.count).map { Array(payload.prefix($0)) }
            for _ in 0..<300 {
                var corrupt = payload
                corrupt[Int(generator.next() % UInt64(corrupt.count))] = UInt8(truncatingIfNeeded: generator.next())
                variants.append(corrupt)
            }
            for bytes in variants {
                let candidate = NetlinkMessage(type: 32, flags: .multipart, sequence: 1, portID: 0, payload: bytes[...])
                for decode in [
                    { _ = try IPVSWire.decodeService(candidate) },
                    { _ = try IPVSWire.decodeRealServer(candidate, serviceFamily: .inet) },
                    { _ = try IPVSWire.decodeInfo(candidate) },
                    { _ = try IPVSWire.decodeTimeouts(candidate) },
                    { _ = try IPVSWire.decodeDaemon(candidate) },
                ] as [() throws -> Void] {
                    do { try decode() } catch { XCTAssertTrue(error is NetlinkDecodingError, "\(error)"); rejected += 1 }
                }
            }
        }
        XCTAssertGreaterThan(rejected, 1000)
    }

    func testUnknownAttributesAreIgnored() throws {
        // The saved TCP service with an extra attribute of unknown type 99 appended to the nest.
        var bytes = hex(Self.services0)
        let nestLength = Int(bytes[4]) | Int(bytes[5]) << 8
        bytes.insert(contentsOf: hex("0800 6300 2a00 0000"), at: 4 + nestLength)
        let newLength = nestLength + 8
        bytes[4] = UInt8(newLength & 0xFF)
        bytes[5] = UInt8(newLength >> 8)
        let service = try IPVSWire.decodeService(message(bytes.map { String(format: "%02x", $0) }.joined()))
        XCTAssertEqual(service.scheduler, .sourceHashing)
    }
}
