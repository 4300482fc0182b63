#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import XCTest
@testable import IPVSAgent

final class OpenFileLimitTests: XCTestCase {
    /// After raising, the soft limit is the hard limit, and a second call has nothing left to raise.
    func testTheSoftLimitIsRaisedToTheHardLimit() throws {
        OpenFileLimit.raiseToHardLimit()
        var limit = rlimit()
        XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit), 0)
        XCTAssertEqual(OpenFileLimit.current, UInt64(limit.rlim_max))
        XCTAssertNil(OpenFileLimit.raiseToHardLimit(), "already at the hard limit")
    }

    /// From a lowered soft limit it says what it raised, from and to.
    func testItSaysWhatItRaised() throws {
        var limit = rlimit()
        XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit), 0)
        let hard = UInt64(limit.rlim_max)
        try XCTSkipIf(hard <= 512, "the hard limit leaves no room to lower the soft one")
        var lowered = limit
        lowered.rlim_cur = 256
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lowered), 0)
        let raised = try XCTUnwrap(OpenFileLimit.raiseToHardLimit())
        XCTAssertEqual(raised.from, 256)
        XCTAssertEqual(raised.to, hard)
        XCTAssertEqual(OpenFileLimit.current, hard)
    }
}
