import Foundation
import XCTest

/// Running `ipvsctl` and the reference `ipvsadm` side by side on the same kernel state.
enum Golden {
    static let ipvsadm = "/usr/sbin/ipvsadm"
    static var ipvsctl: String { KernelTest.product("ipvsctl") }

    /// Runs `ipvsadm` with each line of `commands` (ipvsadm's own arguments), failing on errors.
    static func build(_ commands: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        for command in commands {
            try KernelTest.shell("\(ipvsadm) \(command)", file: file, line: line)
        }
    }

    /// `ipvsadm -Sn`: the state to compare, read until two reads agree. ipvsadm prints what one
    /// dump gives, and a dump of more than one datagram can be torn by another network namespace
    /// adding or deleting services meanwhile (the tests running beside this one; see
    /// `IPVSClient.wholeList`): a service listed twice or missing (seen in CI with the mixed state).
    static func savedState() throws -> String {
        var previous = try KernelTest.shell("\(ipvsadm) -Sn")
        for _ in 0..<5 {
            let next = try KernelTest.shell("\(ipvsadm) -Sn")
            if next == previous { return next }
            previous = next
        }
        return previous
    }

    /// Words of a command line (space-separated; no quoting needed in these tests).
    static func words(_ arguments: String) -> [String] {
        arguments.split(separator: " ").map(String.init)
    }

    /// Runs both tools with `arguments` and asserts identical standard output and exit status.
    ///
    /// Outputs that move with time (connection expiries, rates) are compared again, up to
    /// `attempts` times, until ipvsadm printed the same before and after ipvsctl (so both saw
    /// one state).
    /// With `followEstimator`, each attempt first waits for the kernel's rate estimator to tick
    /// (ipvsadm's output changes), so that the comparison runs early in the next 2 s period.
    static func assertSameOutput(_ arguments: String, attempts: Int = 1, followEstimator: Bool = false,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        var last: (KernelTest.CommandResult, KernelTest.CommandResult)?
        for _ in 0..<attempts {
            if followEstimator {
                let start = try KernelTest.run([ipvsadm] + words(arguments)).standardOutput
                let deadline = Date().addingTimeInterval(5)
                while Date() < deadline, try KernelTest.run([ipvsadm] + words(arguments)).standardOutput == start {}
            }
            let before = try KernelTest.run([ipvsadm] + words(arguments))
            let ours = try KernelTest.run([ipvsctl] + words(arguments))
            let after = attempts > 1 ? try KernelTest.run([ipvsadm] + words(arguments)) : before
            if before.standardOutput == ours.standardOutput, before.status == ours.status { return }
            last = (before, ours)
            if before.standardOutput != after.standardOutput { continue }
            break
        }
        guard let (reference, ours) = last else { return }
        XCTAssertEqual(ours.status, reference.status, "exit status of `\(arguments)`; ipvsctl said: \(ours.standardError)", file: file, line: line)
        XCTAssertEqual(ours.standardOutput, reference.standardOutput,
                       "`\(arguments)` differs:\n--- ipvsadm\n\(reference.standardOutput)--- ipvsctl\n\(ours.standardOutput)\(ours.standardError)"
                           + "\n--- first difference (the runner shows the end of a failure's output)\n"
                           + firstDifference(reference.standardOutput, ours.standardOutput),
                       file: file, line: line)
    }

    /// The first line where two outputs differ, with its number, for long listings.
    static func firstDifference(_ reference: String, _ ours: String) -> String {
        let left = reference.split(separator: "\n", omittingEmptySubsequences: false)
        let right = ours.split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? String(left[index]) : "(no line)"
            let b = index < right.count ? String(right[index]) : "(no line)"
            if a != b { return "line \(index + 1) of \(left.count) / \(right.count):\n  ipvsadm: \(a)\n  ipvsctl: \(b)" }
        }
        return "none in the text (the exit status or standard error differs)"
    }

    /// Like `assertSameOutput` for connection listings (`-c`), whose expiry column counts down
    /// while the tools run (a slow, loaded VM can take seconds per command): when no attempt saw
    /// one state, the listings must still be identical except for the expiries, and each of
    /// ipvsctl's expiries must lie between ipvsadm's readings before and after it.
    static func assertSameConnectionListing(_ arguments: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var before = try KernelTest.run([ipvsadm] + words(arguments))
        var ours = try KernelTest.run([ipvsctl] + words(arguments))
        var after = try KernelTest.run([ipvsadm] + words(arguments))
        for _ in 0..<3 where before.standardOutput != ours.standardOutput || ours.standardOutput != after.standardOutput {
            if before.standardOutput == ours.standardOutput || ours.standardOutput == after.standardOutput { return }
            before = try KernelTest.run([ipvsadm] + words(arguments))
            ours = try KernelTest.run([ipvsctl] + words(arguments))
            after = try KernelTest.run([ipvsadm] + words(arguments))
        }
        XCTAssertEqual(ours.status, before.status, "exit status of `\(arguments)`; ipvsctl said: \(ours.standardError)", file: file, line: line)
        if before.standardOutput == ours.standardOutput || ours.standardOutput == after.standardOutput { return }
        let expiry = #/(?<minutes>[0-9]{2}):(?<seconds>[0-9]{2})/#
        func masked(_ text: String) -> String { text.replacing(expiry) { _ in "MM:SS" } }
        func seconds(_ text: String) -> [Int] {
            text.matches(of: expiry).map { Int($0.output.minutes)! * 60 + Int($0.output.seconds)! }
        }
        XCTAssertEqual(masked(ours.standardOutput), masked(before.standardOutput),
                       "`\(arguments)` differs beyond the expiries:\n--- ipvsadm\n\(before.standardOutput)--- ipvsctl\n\(ours.standardOutput)",
                       file: file, line: line)
        let (early, mine, late) = (seconds(before.standardOutput), seconds(ours.standardOutput), seconds(after.standardOutput))
        XCTAssertEqual(mine.count, early.count, file: file, line: line)
        for (index, value) in mine.enumerated() where index < early.count && index < late.count {
            XCTAssertTrue((min(late[index], early[index])...max(late[index], early[index])).contains(value),
                          "`\(arguments)`: expiry \(value) s of row \(index + 1) is outside ipvsadm's \(late[index])...\(early[index]) s:\n--- ipvsadm\n\(before.standardOutput)--- ipvsctl\n\(ours.standardOutput)",
                          file: file, line: line)
        }
    }

    /// Runs `ipvsctl` with `arguments`, returning the result.
    @discardableResult
    static func ipvsctl(_ arguments: [String], input: String? = nil) throws -> KernelTest.CommandResult {
        try KernelTest.run([ipvsctl] + arguments, input: input)
    }

    /// A state with every kind of service and real server ipvsadm can list.
    static let mixedState: [String] = [
        // IPv4 TCP, default scheduler, direct routing (default), weight 0, local real server
        "-A -t 10.0.0.1:80",
        "-a -t 10.0.0.1:80 -r 127.0.0.1 -g -w 0",
        "-a -t 10.0.0.1:80 -r 10.9.9.9 -w 5",
        // port-0 persistent service
        "-A -t 10.0.0.1:0 -p",
        // NAT, tunnels of every type, thresholds, ipvsadm's wrapping sort (192.168/10/200 addresses)
        "-A -t 192.168.0.1:80 -s rr",
        "-a -t 192.168.0.1:80 -r 10.1.2.3:8080 -m -w 2 -x 1000 -y 500",
        "-a -t 192.168.0.1:80 -r 200.1.2.3:80 -m",
        "-a -t 192.168.0.1:80 -r 10.1.2.4 -i",
        "-a -t 192.168.0.1:80 -r 10.1.2.5 -i --tun-type gue --tun-port 6080 --tun-remcsum",
        "-a -t 192.168.0.1:80 -r 10.1.2.6 -i --tun-type gre --tun-csum",
        // UDP with one-packet scheduling
        "-A -u 10.0.0.2:53 -o -s lc",
        "-a -u 10.0.0.2:53 -r 10.1.1.1:5353 -m",
        "-a -u 10.0.0.2:53 -r 10.1.1.2 -i --tun-type gre --tun-nocsum",
        // SCTP, persistence with a netmask and the sip engine
        "-A --sctp-service 192.168.100.200:3868 -s wrr -p 30 -M 255.255.255.0 --pe sip",
        "-a --sctp-service 192.168.100.200:3868 -r 10.2.0.1:3868 -m -w 7",
        // IPv6 with scheduler flags, mixed-family tunnel server
        "-A -t [fd00::1]:443 -s mh -b mh-port,mh-fallback -p",
        "-a -t [fd00::1]:443 -r [::1]:8443 -m -w 3 -x 100 -y 50",
        "-a -t [fd00::1]:443 -r 192.168.1.9 -i --tun-type gue --tun-port 5555 --tun-csum",
        "-a -t [fd00::1]:443 -r fd00::20 -g",
        "-A -u [fd00::2]:53 -s sed -b flag-1,flag-3",
        // firewall marks: IPv4, IPv6 with sh flags, and one above 2^31 (printed negative)
        "-A -f 1 -s fo",
        "-a -f 1 -r 127.0.0.1:22 -m",
        "-A -f 7 -6 -s sh -b sh-port,sh-fallback -p 60 -M 64",
        "-a -f 7 -6 -r [fd00::30]:0 -g",
        "-A -f 3000000000 -s nq",
        "-A -t 10.0.0.3:8080 -s dh",
        "-A -t 10.0.0.4:22 -s lblcr -p 120 -M 255.255.0.0",
        "-A -t 10.0.0.5:25 -s lblc",
        "-A -t 10.0.0.6:443 -s ovf",
    ]

    /// Every listing mode of ipvsadm, for the golden comparisons.
    static let listingModes: [String] = [
        "", "-L", "-l", "-Ln", "-L -n", "--list --numeric", "-Ln --sort", "-Ln --nosort", "-L --nosort",
        "-Ln --stats", "-L --stats", "-Ln --rate", "-Ln --stats --exact", "-Ln -X --rate", "-Ln --exact",
        "-Ln --thresholds", "-L --thresholds", "-Ln --persistent-conn", "-Ln --tun-info", "-L --tun-info",
        "-Ln --stats --nosort", "-L --timeout", "-L --daemon", "-Ln -c", "-Lc", "-Lnc --persistent-conn",
        "-S", "-Sn", "--save", "-S -n",
    ]
}
