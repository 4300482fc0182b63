import XCTest

@testable import IPVS

/// How `IPVSClient.wholeList` puts a list together from dumps that can repeat or miss entries; the kernel
/// tests `IPVSBatchKernelTests.test…IsWhole…` tear real dumps.
final class WholeListTests: XCTestCase {
    /// Hands out `reads` in turn, counting them; each entry is (key, value).
    final class Dumps {
        var reads: [([(String, Int)], datagrams: Int)]
        var count = 0
        init(_ reads: [([(String, Int)], datagrams: Int)]) { self.reads = reads }
        func next() throws -> ([(String, Int)], datagrams: Int) {
            defer { count += 1 }
            return reads[min(count, reads.count - 1)]
        }
    }

    func whole(_ dumps: Dumps) throws -> [(String, Int)] {
        try IPVSClient.wholeList(dumps.next, key: \.0)
    }

    func testOneDatagramIsOneSnapshotReadOnce() throws {
        let dumps = Dumps([([("a", 1), ("b", 1)], datagrams: 1)])
        XCTAssertEqual(try whole(dumps).map(\.0), ["a", "b"])
        XCTAssertEqual(dumps.count, 1)
    }

    func testTwoWholeReadsThatAgreeEndIt() throws {
        let dumps = Dumps([([("a", 1), ("b", 1)], datagrams: 2), ([("a", 2), ("b", 2)], datagrams: 2)])
        let list = try whole(dumps)
        XCTAssertEqual(list.map(\.0), ["a", "b"])
        XCTAssertEqual(list.map(\.1), [2, 2], "the later read's values")
        XCTAssertEqual(dumps.count, 2)
    }

    func testARepeatOrAMissIsReadAgain() throws {
        let dumps = Dumps([
            ([("a", 1), ("b", 1), ("b", 1)], datagrams: 2), // b twice, c missed
            ([("a", 2), ("c", 2)], datagrams: 2),           // b missed
            ([("a", 3), ("b", 3), ("c", 3)], datagrams: 2), // whole
        ])
        let list = try whole(dumps)
        XCTAssertEqual(list.map(\.0), ["a", "b", "c"])
        XCTAssertEqual(list.map(\.1), [3, 3, 3])
        XCTAssertEqual(dumps.count, 3)
    }

    func testWithoutAWholeReadTheAnswerIsEveryEntrySeenOnce() throws {
        let dumps = Dumps([
            ([("a", 1), ("a", 1)], datagrams: 3),
            ([("b", 1), ("b", 1)], datagrams: 3),
        ])
        let list = try whole(dumps)
        XCTAssertEqual(list.map(\.0), ["a", "b"])
        XCTAssertEqual(dumps.count, IPVSClient.wholeListReads)
    }

    func testAnErrorOfAnyReadIsThrown() {
        struct Failed: Error {}
        var calls = 0
        XCTAssertThrowsError(try IPVSClient.wholeList({ () throws -> ([(String, Int)], datagrams: Int) in
            calls += 1
            if calls == 2 { throw Failed() }
            return ([("a", 1)], datagrams: 2)
        }, key: \.0)) { XCTAssertTrue($0 is Failed) }
    }
}
