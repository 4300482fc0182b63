import Foundation
import IPVS
import NodeNetwork
import XCTest

/// Kernel parameters under /proc/sys on a real kernel with ip_vs loaded, each test in a fresh
/// network namespace (so the `net.*` values written here vanish with it).
final class NodeNetworkSysctlTests: XCTestCase {
    func testReadWriteAndEnsureAnIPVSParameter() throws {
        try KernelTest.requireKernel()
        let name = "net.ipv4.vs.expire_nodest_conn"
        XCTAssertEqual(try Sysctl.read(name), "0", "a fresh network namespace starts at the kernel default")
        XCTAssertEqual(try Sysctl.ensure(name, "1"), "0", "ensure returns the value it replaced")
        XCTAssertEqual(try Sysctl.read(name), "1")
        XCTAssertEqual(try KernelTest.shell("cat /proc/sys/net/ipv4/vs/expire_nodest_conn"), "1\n")
        XCTAssertNil(try Sysctl.ensure(name, "1"), "nothing to change")
        XCTAssertNil(try Sysctl.ensure(name, " 1\n"), "white space around a value does not count")

        try Sysctl.write("net/ipv4/vs/expire_nodest_conn", "0")
        XCTAssertEqual(try Sysctl.read("net/ipv4/vs/expire_nodest_conn"), "0", "slash form")
    }

    func testMultiWordValuesCompareByWords() throws {
        try KernelTest.requireKernel()
        let name = "net.ipv4.ip_local_port_range"
        let current = try Sysctl.read(name)
        XCTAssertTrue(current.contains("\t"), "the kernel separates the two ports with a tab: \(current.debugDescription)")
        let words = current.split(separator: "\t").joined(separator: " ")
        XCTAssertNil(try Sysctl.ensure(name, words))
        XCTAssertEqual(try Sysctl.ensure(name, "20000 40000"), current)
        XCTAssertEqual(try Sysctl.read(name), "20000\t40000")
    }

    func testMissingParametersSayWhy() throws {
        try KernelTest.requireKernel()
        XCTAssertThrowsError(try Sysctl.read("net.ipv4.vs.no_such_parameter")) { error in
            let error = error as? NodeNetworkError
            XCTAssertEqual(error?.kind, .notFound)
            let text = error?.description ?? ""
            XCTAssertTrue(text.contains("sysctl net.ipv4.vs.no_such_parameter") && text.contains("modprobe ip_vs"), text)
        }
        XCTAssertThrowsError(try Sysctl.ensure("net.ipv4.no_such_parameter", "1")) { error in
            let error = error as? NodeNetworkError
            XCTAssertEqual(error?.kind, .notFound)
            XCTAssertTrue(error?.description.contains("no such parameter") == true, "\(String(describing: error))")
        }
        // A per-interface parameter of an interface that does not exist; '/' stands for the dot.
        XCTAssertThrowsError(try Sysctl.read("net.ipv4.conf.eth0/100.rp_filter")) { error in
            XCTAssertTrue((error as? NodeNetworkError)?.description.contains("net.ipv4.conf.eth0/100.rp_filter") == true,
                          "\(error)")
        }
    }

    func testBadNamesAndValuesAreRefusedBeforeTheKernel() throws {
        try KernelTest.requireKernel()
        for name in ["", "net..ipv4", "../../etc/passwd", "net/ipv4/../../../etc/passwd", "net.ipv4.vs.conn track", "net.ipv4."] {
            XCTAssertThrowsError(try Sysctl.read(name), name.debugDescription) { error in
                XCTAssertEqual((error as? NodeNetworkError)?.kind, .invalidArgument, "\(name.debugDescription): \(error)")
            }
        }
        for value in ["", "  ", "1\n0"] {
            XCTAssertThrowsError(try Sysctl.write("net.ipv4.vs.conntrack", value), value.debugDescription) { error in
                XCTAssertEqual((error as? NodeNetworkError)?.kind, .invalidArgument)
            }
        }
        XCTAssertEqual(try Sysctl.read("net.ipv4.vs.conntrack"), "0", "refused values are not written")
        // A value the kernel itself rejects.
        XCTAssertThrowsError(try Sysctl.write("net.ipv4.vs.conntrack", "yes")) { error in
            let error = error as? NodeNetworkError
            XCTAssertEqual(error?.kind, .invalidArgument)
            XCTAssertEqual(error?.errno, EINVAL)
            XCTAssertTrue(error?.description.contains("rejected \"yes\"") == true, "\(String(describing: error))")
        }
    }

    func testRequiredIPVSSettingsApplyOnThisKernel() throws {
        try KernelTest.requireKernel()
        let settings = IPVSSysctls.required(strictARP: true)
        XCTAssertEqual(Set(settings.map(\.name)), [
            "net.ipv4.vs.conntrack", "net.ipv4.vs.expire_nodest_conn", "net.ipv4.vs.expire_quiescent_template",
            "net.ipv4.ip_forward", "net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
        ], "kernel \(Sysctl.kernelRelease) is 5.9 or later: conn_reuse_mode stays as it is")
        var changed: [String] = []
        for setting in settings {
            XCTAssertFalse(setting.reason.isEmpty)
            if try Sysctl.ensure(setting.name, setting.value) != nil { changed.append(setting.name) }
            XCTAssertEqual(try Sysctl.read(setting.name), setting.value, setting.description)
        }
        // IPVS parameters start at 0 in every new namespace; the others are copied from the host's.
        XCTAssertEqual(changed.filter { $0.hasPrefix("net.ipv4.vs.") }.count, 3, "\(changed)")
        XCTAssertTrue(try settings.allSatisfy { try Sysctl.ensure($0.name, $0.value) == nil }, "second pass changes nothing")
    }

    func testRequiredIPVSSettingsFollowKernelVersionAndStrictARP() throws {
        try KernelTest.requireKernel()
        func names(_ strictARP: Bool, _ release: String) -> [String] {
            IPVSSysctls.required(strictARP: strictARP, kernelRelease: release).map(\.name)
        }
        XCTAssertTrue(names(false, "5.4.0-150-generic").contains("net.ipv4.vs.conn_reuse_mode"))
        XCTAssertEqual(IPVSSysctls.required(strictARP: false, kernelRelease: "4.19.0")
            .first { $0.name == "net.ipv4.vs.conn_reuse_mode" }?.value, "0")
        for release in ["5.9.0", "6.1.0-56-amd64", "5.10", "4.0.9", "3.10.0-1160.el7.x86_64", "", "unknown"] {
            XCTAssertFalse(names(false, release).contains("net.ipv4.vs.conn_reuse_mode"), release)
        }
        XCTAssertEqual(names(false, "6.1.0"), [
            "net.ipv4.vs.conntrack", "net.ipv4.vs.expire_nodest_conn", "net.ipv4.vs.expire_quiescent_template",
            "net.ipv4.ip_forward",
        ])
        XCTAssertEqual(Array(names(true, "6.1.0").suffix(2)), ["net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce"])
        XCTAssertEqual(IPVSSysctls.required(strictARP: true, kernelRelease: "6.1.0").last?.description,
                       "net.ipv4.conf.all.arp_announce=2")
    }
}
