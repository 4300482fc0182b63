import Foundation
import IPVS
import XCTest

/// On a kernel without IPVS (this project's build machines: CONFIG_IP_VS is not set and modules
/// cannot be loaded) opening a client must fail with `.ipvsUnavailable` and say what to do.
final class IPVSClientUnavailableTests: XCTestCase {
    func testKernelWithoutIPVSIsReportedAsUnavailable() throws {
        guard !FileManager.default.fileExists(atPath: "/proc/net/ip_vs") else {
            throw XCTSkip("this kernel has IPVS; the unavailable case is tested on kernels without it")
        }
        guard FileManager.default.fileExists(atPath: "/proc/net/netlink") else {
            throw XCTSkip("no netlink here")
        }
        XCTAssertThrowsError(try IPVSClient()) { error in
            guard let error = error as? IPVSError else { return XCTFail("\(error)") }
            if error.kind == .ipvsUnavailable {
                XCTAssertTrue(error.description.contains("load the ip_vs module"), error.description)
            } else {
                // A kernel with modules may load ip_vs on demand; then the client would not throw.
                XCTFail("expected .ipvsUnavailable, got \(error)")
            }
        }
    }
}
