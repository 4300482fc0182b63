import IPVS
import XCTest
@testable import IPVSControl

/// Formatting of in-memory tables against text written from ipvsadm 1.31's printf formats (the
/// kernel golden tests compare against the real ipvsadm).
final class ListingFormatterTests: XCTestCase {
    private let web = ServiceKey.address(.tcp, IPAddress("10.0.0.1")!, port: 80)

    private func render(_ format: ListingFormat, _ entries: [ServiceTableEntry]) -> String {
        var out = TextBuffer()
        let formatter = ListingFormatter(format: format)
        formatter.title(into: &out)
        formatter.table(entries, into: &out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    private var sample: [ServiceTableEntry] {
        [ServiceTableEntry(
            service: VirtualService(key: web, scheduler: "rr", persistence: Persistence(timeout: 60, prefixLength: 24),
                                    statistics: Statistics(connections: 123_456_789, incomingPackets: 99_999_999, outgoingPackets: 100_000_000,
                                                           incomingBytes: 12_345_678_901, outgoingBytes: 123_456_789_012_345_678,
                                                           connectionRate: 5, incomingByteRate: 1_000_000_000)),
            realServers: [
                RealServer(address: IPAddress("10.1.0.6")!, port: 8080, forwarding: .masquerade, weight: 3, upperThreshold: 100,
                           lowerThreshold: 50, connections: ConnectionCounts(active: 7, inactive: 8, persistent: 9),
                           statistics: Statistics(connections: 1, incomingByteRate: 123_456_789_012)),
                RealServer(address: IPAddress("10.1.0.5")!, port: 80, forwarding: .tunnel,
                           tunnel: Tunnel(type: .gue, port: 6080, flags: [.remoteChecksum])),
            ])]
    }

    func testDefaultListing() {
        XCTAssertEqual(render([.numeric], sample), """
        Prot LocalAddress:Port Scheduler Flags
          -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
        TCP  10.0.0.1:80 rr persistent 60 mask 255.255.255.0
          -> 10.1.0.5:80                  Tunnel  1      0          0         \n\
          -> 10.1.0.6:8080                Masq    3      7          8         \n
        """)
    }

    func testStatsRateAndExactNumbers() {
        XCTAssertEqual(render([.numeric, .stats], sample), """
        Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
          -> RemoteAddress:Port
        TCP  10.0.0.1:80                   123456K 99999999  100000K   12345M  123456T
          -> 10.1.0.5:80                         0        0        0        0        0
          -> 10.1.0.6:8080                       1        0        0        0        0

        """)
        XCTAssertEqual(render([.numeric, .stats, .exact], sample), """
        Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
          -> RemoteAddress:Port
        TCP  10.0.0.1:80                  123456789 99999999 100000000 12345678901 123456789012345678
          -> 10.1.0.5:80                         0        0        0        0        0
          -> 10.1.0.6:8080                       1        0        0        0        0

        """)
        XCTAssertEqual(render([.numeric, .rate], sample), """
        Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
          -> RemoteAddress:Port
        TCP  10.0.0.1:80                         5        0        0    1000M        0
          -> 10.1.0.5:80                         0        0        0        0        0
          -> 10.1.0.6:8080                       0        0        0     123G        0

        """)
    }

    func testThresholdsPersistentConnectionsAndTunnelInfo() {
        XCTAssertEqual(render([.numeric, .thresholds], sample), """
        Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n\
          -> RemoteAddress:Port
        TCP  10.0.0.1:80 rr persistent 60 mask 255.255.255.0
          -> 10.1.0.5:80                  0          0          0          0         \n\
          -> 10.1.0.6:8080                100        50         7          8         \n
        """)
        XCTAssertEqual(render([.numeric, .persistentConnections], sample), """
        Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n\
          -> RemoteAddress:Port
        TCP  10.0.0.1:80 rr persistent 60 mask 255.255.255.0
          -> 10.1.0.5:80                  1         0           0          0         \n\
          -> 10.1.0.6:8080                3         9           7          8         \n
        """)
        XCTAssertEqual(render([.numeric, .tunnelInfo], sample), """
        Prot LocalAddress:Port Scheduler Flags
          -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
        TCP  10.0.0.1:80 rr persistent 60 mask 255.255.255.0
          -> 10.1.0.5:80                  Tunnel  gue:6080:r+c  1      0          0         \n\
          -> 10.1.0.6:8080                Masq    n/a           3      7          8         \n
        """)
    }

    func testSaveRules() {
        var entries = sample
        entries.append(ServiceTableEntry(
            service: VirtualService(key: .firewallMark(3_000_000_000, family: .inet6), scheduler: "sh", flags: [.shPort, .scheduler3]),
            realServers: [RealServer(address: IPAddress("fd00::5")!, port: 0, forwarding: .tunnel, tunnel: Tunnel(type: .gre, flags: [.checksum]))]))
        // The mark above 2^31 sorts first: ipvsadm's comparison wraps.
        XCTAssertEqual(render([.numeric, .rule], entries), """
        -A -f -1294967296 -6 -s sh -b sh-port
        -a -f -1294967296 -6 -r [fd00::5]:0 -i -w 1 --tun-type gre --tun-csum
        -A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.255.0
        -a -t 10.0.0.1:80 -r 10.1.0.5:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum
        -a -t 10.0.0.1:80 -r 10.1.0.6:8080 -m -w 3

        """)
    }

    func testIPv4NamesAreCutAtIpvsadmsBufferSizes() {
        let formatter = ListingFormatter(format: [.numeric])
        XCTAssertEqual(formatter.serviceName(.address(.sctp, IPAddress("255.255.255.255")!, port: 65535)), "SCTP 255.255.255.255:65535")
        XCTAssertEqual(formatter.serviceName(.firewallMark(7, family: .inet6)), "FWM  7 IPv6")
        XCTAssertEqual(TextBuffer.truncated("abcdef", to: 3), "abc")
    }

    func testSortingFollowsIpvsadmsWrappingComparison() {
        let services = ["10.0.0.1", "192.168.0.1", "200.0.0.1", "10.0.0.2"].map {
            VirtualService(key: .address(.tcp, IPAddress($0)!, port: 80))
        } + [VirtualService(key: .firewallMark(3_000_000_000, family: .inet)), VirtualService(key: .firewallMark(1, family: .inet)),
             VirtualService(key: .address(.udp, IPAddress("1.1.1.1")!, port: 53)), VirtualService(key: .address(.tcp, IPAddress("fd00::1")!, port: 1))]
        let order = ListingOrder.services(services).map(\.key.description)
        // A mark above 2^31 sorts first (0 - 3e9 wraps positive); IPv4 before IPv6; TCP before UDP.
        XCTAssertEqual(order.first, "FWM 3000000000")
        XCTAssertEqual(order.last, "FWM 1")
        XCTAssertLessThan(order.firstIndex(of: "TCP 10.0.0.1:80")!, order.firstIndex(of: "TCP 10.0.0.2:80")!)
        XCTAssertLessThan(order.firstIndex(of: "TCP 10.0.0.2:80")!, order.firstIndex(of: "UDP 1.1.1.1:53")!)
        XCTAssertLessThan(order.firstIndex(of: "UDP 1.1.1.1:53")!, order.firstIndex(of: "TCP [fd00::1]:1")!)
    }
}
