import XCTest
@testable import IPVS

/// Statistics are kept out of line (`StatisticsBox`): the values stay values (equal by content,
/// a copy changed alone), and a real server or virtual service without statistics is small.
final class StatisticsBoxTests: XCTestCase {
    func testStatisticsCompareAndCopyAsValues() {
        let counted = Statistics(connections: 3, incomingPackets: 10)
        let a = RealServer(address: IPAddress("10.0.0.1")!, port: 80, statistics: counted)
        var b = RealServer(address: IPAddress("10.0.0.1")!, port: 80, statistics: Statistics(connections: 3, incomingPackets: 10))
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.hashValue, b.hashValue)
        b.statistics?.connections = 4
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(a.statistics?.connections, 3, "the copy changed alone")
        XCTAssertEqual(b.configuration, a.configuration, "the configuration leaves the counters out")
        XCTAssertNil(b.configuration.statistics)

        var service = VirtualService(key: .address(.tcp, IPAddress("10.96.0.1")!, port: 80), statistics: counted)
        XCTAssertEqual(service.statistics, counted)
        service.statistics = nil
        XCTAssertEqual(service, VirtualService(key: .address(.tcp, IPAddress("10.96.0.1")!, port: 80)))
    }

    /// The agent's desired state holds a real server per endpoint (a hundred thousand at 10,000 x
    /// 10): inline, the statistics doubled each one's size.
    func testAValueWithoutStatisticsIsSmall() {
        XCTAssertLessThanOrEqual(MemoryLayout<RealServer>.stride, 72)
        XCTAssertLessThanOrEqual(MemoryLayout<VirtualService>.stride, 104)
    }
}
