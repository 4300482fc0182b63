import XCTest

/// `ipvsctl -R` applies all or nothing on the kernel: a script that conflicts with the table is
/// refused before anything is sent, and one the kernel still refuses is undone, a leading `-C`
/// included. After each failed `-R`, `ipvsadm -Sn` and the timeouts equal what they were before.
final class IPVSControlRestoreTests: XCTestCase {
    /// Rules of another owner, with every setting `-R` must put back.
    private let foreign = [
        "-A -t 10.9.0.1:443 -s sh -b sh-fallback -p 60 -M 255.255.255.0",
        "-a -t 10.9.0.1:443 -r 10.9.1.1:8443 -m -w 3 -x 100 -y 50",
        "-a -t 10.9.0.1:443 -r 10.9.1.2 -i --tun-type gue --tun-port 6080 --tun-csum -w 0",
        "-A -u 10.9.0.2:53 -o -s lc",
        "-a -u 10.9.0.2:53 -r 10.9.1.3:5353 -m -w 2",
        "-A -u 10.9.0.3:5060 -s rr -p 120 --pe sip",
        "-a -u 10.9.0.3:5060 -r 10.9.1.4:5060 -m",
        "-A -f 7 -6 -s rr -p 30",
        "-a -f 7 -6 -r [fd00::30]:0 -g",
        "--set 100 20 30",
    ]

    /// Lines of a script that change the table (services of their own, the foreign ones) before
    /// the line that fails; with `clear`, after a `-C`.
    private func script(clear: Bool, then failing: String) -> (text: String, failingLine: Int) {
        var lines = clear ? ["-C"] : ["-E -t 10.9.0.1:443 -s rr", "-e -t 10.9.0.1:443 -r 10.9.1.1:8443 -m -w 9",
                                      "-d -u 10.9.0.2:53 -r 10.9.1.3:5353", "-E -u 10.9.0.3:5060 -s wrr", "-D -f 7 -6"]
        for service in 1...40 {
            lines.append("-A -t 10.0.1.\(service):80 -s rr")
            lines.append("-a -t 10.0.1.\(service):80 -r 10.1.1.\(service):8080 -m")
            lines.append("-a -t 10.0.1.\(service):80 -r 10.1.2.\(service):8080 -m -w 2")
        }
        lines.append("--set 10 11 12")
        lines.append("-A -t 10.0.0.1:80 -s wrr")
        lines.append("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m")
        lines.append(failing)
        let failingLine = lines.count
        lines.append("-A -t 10.0.0.5:80 -s rr")
        return (lines.joined(separator: "\n") + "\n", failingLine)
    }

    /// Runs `-R` of `failing` after changes, with and without `-C` first, and checks that the
    /// table and timeouts are as before and that the error names the line and its text.
    private func assertRestoreChangesNothing(failing: String, expected: String, undone: Bool?,
                                             file: StaticString = #filePath, line: UInt = #line) throws {
        try KernelTest.requireKernel()
        try Golden.build(["-C"] + foreign, file: file, line: line)
        let before = try Golden.savedState()
        let timeouts = try KernelTest.shell("\(Golden.ipvsadm) -L --timeout")
        XCTAssertTrue(before.contains("-A -f 7 -6 -s rr -p 30") && before.contains("--pe sip"), before, file: file, line: line)
        for clear in [false, true] {
            let (input, failingLine) = script(clear: clear, then: failing)
            let result = try Golden.ipvsctl(["-R"], input: input)
            let context = "-R with\(clear ? "" : "out") -C, failing at line \(failingLine) (\(failing)): \(result.standardError)"
            XCTAssertNotEqual(result.status, 0, context, file: file, line: line)
            if undone == nil {
                XCTAssertTrue(result.standardError.contains("ipvsctl: line \(failingLine) (\(failing)): "), context, file: file, line: line)
                XCTAssertTrue(result.standardError.contains(expected), context, file: file, line: line)
            } else {
                XCTAssertTrue(result.standardError.contains("ipvsctl: line \(failingLine) (\(failing)): \(expected)"), context, file: file, line: line)
            }
            switch undone {
            case true?:
                XCTAssertTrue(result.standardError.contains("every change of this -R was undone: the IPVS table is as it was before"),
                              context, file: file, line: line)
            case false?:
                XCTAssertTrue(result.standardError.contains("nothing was applied"), context, file: file, line: line)
            case nil:
                XCTAssertTrue(result.standardError.contains("nothing was applied")
                              || result.standardError.contains("every change of this -R was undone"), context, file: file, line: line)
            }
            XCTAssertEqual(try Golden.savedState(), before, context, file: file, line: line)
            XCTAssertEqual(try KernelTest.shell("\(Golden.ipvsadm) -L --timeout"), timeouts, context, file: file, line: line)
        }
    }

    // MARK: - Refusals the table foresees: nothing is sent

    func testServiceThatExistsChangesNothing() throws {
        try assertRestoreChangesNothing(failing: "-A -t 10.0.1.7:80 -s wlc",
                                        expected: "cannot add service TCP 10.0.1.7:80: the service already exists", undone: false)
    }

    func testEditOfAMissingServiceChangesNothing() throws {
        try assertRestoreChangesNothing(failing: "-E -t 10.0.0.2:80 -s rr",
                                        expected: "cannot edit service TCP 10.0.0.2:80: no such service", undone: false)
    }

    func testDeleteOfAMissingServiceChangesNothing() throws {
        try assertRestoreChangesNothing(failing: "-D -t 10.0.0.2:80",
                                        expected: "cannot delete service TCP 10.0.0.2:80: no such service", undone: false)
    }

    func testRealServerThatExistsChangesNothing() throws {
        try assertRestoreChangesNothing(failing: "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 4",
                                        expected: "cannot add real server 10.1.0.1:8080 to TCP 10.0.0.1:80: the real server already exists in this service",
                                        undone: false)
    }

    func testMissingRealServerChangesNothing() throws {
        try assertRestoreChangesNothing(failing: "-e -t 10.0.0.1:80 -r 10.1.0.9:8080 -m -w 4",
                                        expected: "cannot edit real server 10.1.0.9:8080 of TCP 10.0.0.1:80: no such real server in this service",
                                        undone: false)
        try assertRestoreChangesNothing(failing: "-d -t 10.0.0.1:80 -r 10.1.0.9:8080",
                                        expected: "cannot delete real server 10.1.0.9:8080 from TCP 10.0.0.1:80: no such real server in this service",
                                        undone: false)
    }

    func testForeignServiceThatExistsChangesNothing() throws {
        try KernelTest.requireKernel()
        try Golden.build(foreign)
        let before = try Golden.savedState()
        let result = try Golden.ipvsctl(["-R"], input: "-A -t 10.0.0.1:80 -s rr\n-A -t 10.9.0.1:443 -s rr\n")
        XCTAssertEqual(result.status, 255, result.standardError)
        XCTAssertEqual(result.standardError, """
        ipvsctl: line 2 (-A -t 10.9.0.1:443 -s rr): cannot add service TCP 10.9.0.1:443: the service already exists
        ipvsctl: nothing was applied: 1 line would be refused by the IPVS table as it is now

        """)
        XCTAssertEqual(try Golden.savedState(), before)
    }

    // MARK: - Refusals only the kernel knows: what was applied is undone

    /// Linux 6.1 has no `twos` scheduler. Where the module tree is readable ipvsctl refuses it
    /// while reading the script; where it is not (the test VM), the kernel does, and `-R` undoes.
    func testUnknownSchedulerChangesNothing() throws {
        try assertRestoreChangesNothing(failing: "-A -t 10.0.0.3:80 -s twos", expected: "the kernel has no \"twos\" scheduler", undone: nil)
        try assertRestoreChangesNothing(failing: "-E -t 10.0.0.1:80 -s twos", expected: "the kernel has no \"twos\" scheduler", undone: nil)
    }

    /// The kernel refuses a real server whose address its routing calls multicast (EINVAL), which
    /// no check of the script or the table foresees.
    func testRealServerAddressTheKernelRejectsIsUndone() throws {
        try assertRestoreChangesNothing(failing: "-a -t 10.0.0.1:80 -r 224.0.0.1:8080 -m",
                                        expected: "cannot add real server 224.0.0.1:8080 to TCP 10.0.0.1:80: the kernel rejected an argument",
                                        undone: true)
    }
}
