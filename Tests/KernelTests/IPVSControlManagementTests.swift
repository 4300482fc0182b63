import Foundation
import XCTest

/// Changes made with `ipvsctl` give the same kernel state as with `ipvsadm`; save/restore round
/// trips between the two; bad input changes nothing.
final class IPVSControlManagementTests: XCTestCase {
    func testEveryManagementCommandGivesTheStateIpvsadmGives() throws {
        try KernelTest.requireKernel()
        let commands = Golden.mixedState + [
            "-E -t 10.0.0.1:80 -s rr -p 100",
            "-E -t 192.168.0.1:80 -s sh -b sh-fallback",
            "-e -t 192.168.0.1:80 -r 10.1.2.3:8080 -m -w 9 -x 10 -y 2",
            "-e -t 192.168.0.1:80 -r 10.1.2.5 -i --tun-type gre --tun-nocsum",
            "-d -t 192.168.0.1:80 -r 200.1.2.3:80",
            "-d -f 1 -r 127.0.0.1:22",
            "-D -t 10.0.0.5:25",
            "-D -f 3000000000",
            "-Z -t 10.0.0.1:80",
            "-Z",
        ]
        try Golden.build(commands)
        let reference = try Golden.savedState()
        XCTAssertEqual(try Golden.ipvsctl(["-C"]).status, 0)
        XCTAssertEqual(try Golden.savedState(), "")
        for command in commands {
            let result = try Golden.ipvsctl(Golden.words(command))
            XCTAssertEqual(result.status, 0, "ipvsctl \(command): \(result.standardError)")
        }
        XCTAssertEqual(try Golden.savedState(), reference)
    }

    func testSaveAndRestoreRoundTripBetweenBothTools() throws {
        try KernelTest.requireKernel()
        // ipvsadm 1.31 saves marks above 2^31 as negative numbers that its own -R rejects, so
        // the round trip through ipvsadm -R uses the mixed state without that service.
        let state = Golden.mixedState.filter { !$0.contains("3000000000") }
        try Golden.build(state)
        let reference = try Golden.savedState()
        for save in ["-S", "-Sn"] {
            // ipvsctl -S | ipvsadm -R
            let saved = try Golden.ipvsctl(Golden.words(save)).standardOutput
            try KernelTest.shell("\(Golden.ipvsadm) -C")
            let restored = try KernelTest.run([Golden.ipvsadm, "-R"], input: saved)
            XCTAssertEqual(restored.status, 0, "ipvsadm -R of ipvsctl \(save): \(restored.standardError)")
            XCTAssertEqual(try Golden.savedState(), reference, "ipvsctl \(save) | ipvsadm -R")

            // ipvsadm -S | ipvsctl -R
            try KernelTest.shell("\(Golden.ipvsadm) -C")
            try Golden.build(state)
            let theirs = try KernelTest.shell("\(Golden.ipvsadm) \(save)")
            try KernelTest.shell("\(Golden.ipvsadm) -C")
            let ours = try Golden.ipvsctl(["-R"], input: theirs)
            XCTAssertEqual(ours.status, 0, "ipvsctl -R of ipvsadm \(save): \(ours.standardError)")
            XCTAssertEqual(try Golden.savedState(), reference, "ipvsadm \(save) | ipvsctl -R")
        }

        // ipvsctl -R reads back ipvsadm's negative marks.
        try KernelTest.shell("\(Golden.ipvsadm) -C")
        try Golden.build(Golden.mixedState)
        let full = try Golden.savedState()
        XCTAssertTrue(full.contains("-A -f -1294967296 -s nq"), full)
        try KernelTest.shell("\(Golden.ipvsadm) -C")
        let restored = try Golden.ipvsctl(["-R"], input: full)
        XCTAssertEqual(restored.status, 0, restored.standardError)
        XCTAssertEqual(try Golden.savedState(), full)
    }

    func testRestoreReportsEveryRefusalByLineAndAppliesNothing() throws {
        try KernelTest.requireKernel()
        try Golden.build(["-A -t 10.0.0.1:80 -s rr"])
        let result = try Golden.ipvsctl(["-R"], input: """
        -A -t 10.0.0.1:80 -s rr
        -A -t 10.0.0.2:80 -s rr
        -a -t 10.0.0.9:80 -r 10.1.0.1 -m
        -a -t 10.0.0.2:80 -r 10.1.0.1 -m
        """)
        XCTAssertEqual(result.status, 255)
        XCTAssertEqual(result.standardError, """
        ipvsctl: line 1 (-A -t 10.0.0.1:80 -s rr): cannot add service TCP 10.0.0.1:80: the service already exists
        ipvsctl: line 3 (-a -t 10.0.0.9:80 -r 10.1.0.1 -m): cannot add real server 10.1.0.1:80 to TCP 10.0.0.9:80: no such service
        ipvsctl: nothing was applied: 2 lines would be refused by the IPVS table as it is now

        """)
        XCTAssertEqual(try Golden.savedState(), "-A -t 10.0.0.1:80 -s rr\n")
    }

    func testBadCommandLinesFailClearlyAndChangeNothing() throws {
        try KernelTest.requireKernel()
        try Golden.build(["-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.1.0.1 -m", "-A -f 7 -s wlc"])
        let before = try Golden.savedState()
        let bad = [
            "-A -t 10.0.0.300:80", "-A -t 10.0.0.2", "-A -t 10.0.0.2:65536", "-A -t 10.0.0.2:nosuchport", "-A -t [fd00::1]80",
            "-A -t [10.0.0.2]:80", "-A -t fd00::1:80", "-A -u 10.0.0.2:53 -s", "-A -t 10.0.0.2:80 -o", "-A -t 10.0.0.2:80 -p 0",
            "-A -t 10.0.0.2:80 -p 60 -M 255.0.255.0", "-A -t 10.0.0.2:80 -b sh-port", "-A -t 10.0.0.2:80 -s sh -b nope",
            "-A -t 10.0.0.2:80 -r 10.1.0.1", "-A -f 0", "-A -f -x", "-A -t 10.0.0.2:80 -6", "-A -t 10.0.0.1:80",
            "-E -t 10.0.0.9:80 -s rr", "-D -t 10.0.0.9:80", "-D -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 10.1.0.2 -w x", "-a -t 10.0.0.1:80 -r 10.1.0.2 -w 65536", "-a -t 10.0.0.1:80 -r 10.1.0.2 -x -1",
            "-a -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 10.1.0.1 -m", "-a -t 10.0.0.9:80 -r 10.1.0.2 -m",
            "-a -t 10.0.0.1:80 -r [fd00::2] -m", "-a -t 10.0.0.1:80 -r 10.1.0.2 --tun-type gre",
            "-a -t 10.0.0.1:80 -r 10.1.0.2 -i --tun-type gue", "-a -t 10.0.0.1:80 -r 10.1.0.2 -i --tun-type gre --tun-remcsum",
            "-a -t 10.0.0.1:80 -r 10.1.0.2 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum",
            "-a -t 10.0.0.1:80 -r 10.1.0.2 -m -g", "-a -t 10.0.0.1:80 -r 0.0.0.0 -m", "-e -t 10.0.0.1:80 -r 10.1.0.9 -m",
            "-d -t 10.0.0.1:80 -r 10.1.0.9", "-d -t 10.0.0.1:80 -r 10.1.0.1 -w 1", "-Z -t 10.0.0.9:80",
            "--set 1 2", "--set 1 2 x", "--set 1 2 2678401", "-L -c --stats", "-L -t 10.0.0.1:80 -f 7", "-Lp", "--bogus", "-C -t 10.0.0.1:80",
            "-A -t 10.0.0.2:80 -s foo", "-A -t 10.0.0.2:80 -s twos", "-A -t 10.0.0.2:80 --pe nosuchpe -p",
        ]
        for line in bad {
            let result = try Golden.ipvsctl(Golden.words(line))
            XCTAssertNotEqual(result.status, 0, "ipvsctl \(line) succeeded")
            XCTAssertTrue(result.standardError.hasPrefix("ipvsctl: "), "ipvsctl \(line): \(result.standardError)")
            XCTAssertGreaterThan(result.standardError.count, 20, "ipvsctl \(line): \(result.standardError)")
            XCTAssertEqual(try Golden.savedState(), before, "ipvsctl \(line) changed the table")
        }
    }

    func testBadRestoreInputChangesNothing() throws {
        try KernelTest.requireKernel()
        try Golden.build(["-A -t 10.0.0.1:80 -s rr"])
        let before = try Golden.savedState()
        let inputs: [(String, String)] = [
            ("-A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r 10.1.0.5 -w x\n", "line 2 (-a -t 10.0.0.2:80 -r 10.1.0.5 -w x): -w: weight must be an integer 0..65535, got \"x\""),
            ("-A -t 10.0.0.2:80\n\n-A -t 10.0.0.3:80 -p 0\n", "line 3 (-A -t 10.0.0.3:80 -p 0): -p"),
            ("-C\n-A -t 10.0.0.2:80\n-L -n\n", "line 3 (-L -n): only -A -E -D -a -e -d -C -Z and --set"),
            ("-A -t 10.0.0.2:80\n-a -t 10.0.0.2:80 -r nosuch.invalid -m\n", "line 2 (-a -t 10.0.0.2:80 -r nosuch.invalid -m): -r (--real-server)"),
            ("-A -t 10.0.0.2:80 --bogus\n", "line 1 (-A -t 10.0.0.2:80 --bogus): unknown option --bogus"),
        ]
        for (input, expected) in inputs {
            let result = try Golden.ipvsctl(["-R"], input: input)
            XCTAssertEqual(result.status, 2, input)
            XCTAssertTrue(result.standardError.contains(expected), "expected \(expected) in \(result.standardError)")
            XCTAssertTrue(result.standardError.contains("nothing was applied"), result.standardError)
            XCTAssertEqual(try Golden.savedState(), before, "restore of \(input) changed the table")
        }
    }

    func testUnavailableSchedulerIsRefusedWithTheValidNames() throws {
        try KernelTest.requireKernel()
        // Linux 6.1 has no ip_vs_twos.
        for name in ["twos", "nosuchsched"] {
            let result = try Golden.ipvsctl(["-A", "-t", "10.0.0.1:80", "-s", name])
            XCTAssertNotEqual(result.status, 0)
            XCTAssertTrue(result.standardError.contains("the kernel has no \"\(name)\" scheduler"), result.standardError)
            XCTAssertTrue(result.standardError.contains("module ip_vs_\(name)"), result.standardError)
            XCTAssertTrue(result.standardError.contains("rr, wrr"), result.standardError)
            XCTAssertEqual(try Golden.savedState(), "")
        }
        // Every scheduler this kernel has is accepted.
        for (index, name) in ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"].enumerated() {
            let result = try Golden.ipvsctl(["-A", "-t", "10.0.1.\(index + 1):80", "-s", name])
            XCTAssertEqual(result.status, 0, "\(name): \(result.standardError)")
        }
        try Golden.assertSameOutput("-Ln")
    }
}
