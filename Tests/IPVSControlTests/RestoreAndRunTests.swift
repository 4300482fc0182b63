import IPVS
import XCTest
@testable import IPVSControl

/// Whole command lines against an in-memory table: which operations are sent, what is printed.
final class RestoreAndRunTests: XCTestCase {
    /// `ipvsctl --version` (and `-v`) prints ipvsadm's line in its shape, then ipvsctl's own version,
    /// without opening the kernel: it works where IPVS is missing.
    func testVersionPrintsIpvsadmsShapeThenOurs() {
        for flag in ["--version", "-v"] {
            let harness = Harness()
            XCTAssertEqual(harness.run([flag]), 0, harness.error)
            XCTAssertEqual(harness.text, """
                ipvsadm v1.31 2019/12/24 (compiled with ipvsctl and IPVS v1.2.1)
                ipvsctl \(ProjectVersion.current) (swift-ipvs)

                """)
            XCTAssertFalse(harness.backendOpened)
        }
    }

    func testRestoreValidatesEveryLineAndAppliesNothingWhenOneIsBad() {
        let harness = Harness()
        let status = harness.run("-R", input: """
        -A -t 10.0.0.1:80 -s rr
        -a -t 10.0.0.1:80 -r 10.1.0.5 -m -w x

        # a comment line
        -a -t 10.0.0.1:80 -r 10.1.0.6 -m   # a trailing comment
        -L
        -A -t 300.0.0.1:80
        -a -t 10.0.0.1:80 -r 10.1.0.7 -i --tun-type gue

        """)
        XCTAssertEqual(status, ExitStatus.usage)
        XCTAssertTrue(harness.backend.batches.isEmpty, "nothing may be applied")
        XCTAssertFalse(harness.backendOpened)
        let lines = harness.error.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5, harness.error)
        guard lines.count == 5 else { return }
        XCTAssertEqual(lines[0], "ipvsctl: line 2 (-a -t 10.0.0.1:80 -r 10.1.0.5 -m -w x): -w: weight must be an integer 0..65535, got \"x\"")
        XCTAssertTrue(lines[1].hasPrefix("ipvsctl: line 6 (-L): only -A -E -D -a -e -d -C -Z and --set"))
        XCTAssertTrue(lines[2].hasPrefix("ipvsctl: line 7 (-A -t 300.0.0.1:80): -t: \"300.0.0.1\""))
        XCTAssertEqual(lines[3], "ipvsctl: line 8 (-a -t 10.0.0.1:80 -r 10.1.0.7 -i --tun-type gue): --tun-type gue needs --tun-port PORT")
        XCTAssertEqual(lines[4], "ipvsctl: nothing was applied (4 bad lines)")
    }

    func testRestoreAppliesEverythingInOneBatchUntilASetOfTimeouts() {
        let harness = Harness()
        let status = harness.run("-R", input: """
        ipvsadm -A -t 10.0.0.1:80 -s rr
        -a -t 10.0.0.1:80 -r 10.1.0.5:81 -m
        -a -t 10.0.0.1:80 -r 10.1.0.6:82 -m
        --set 10 0 0
        -Z
        """)
        XCTAssertEqual(status, 0, harness.error)
        XCTAssertEqual(harness.backend.batches.count, 2, "one batch before --set, one after")
        XCTAssertEqual(harness.backend.batches[0].count, 3)
        XCTAssertEqual(harness.backend.batches[1], [.zero(nil)])
        XCTAssertEqual(harness.backend.timeoutsValue, Timeouts(tcp: 10, tcpFin: 120, udp: 300))
        XCTAssertEqual(harness.backend.entries.map(\.realServers.count), [2])
    }

    // MARK: - All or nothing against the kernel's table

    /// A table with one foreign service of every setting `-R` must put back.
    private func foreignTable() -> [ServiceTableEntry] {
        let key = ServiceKey.address(.tcp, IPAddress("10.9.0.1")!, port: 443)
        return [
            ServiceTableEntry(
                service: VirtualService(key: key, scheduler: "sh", flags: [.shFallback], persistence: Persistence(timeout: 60, prefixLength: 24)),
                realServers: [
                    RealServer(address: IPAddress("10.9.1.1")!, port: 8443, forwarding: .masquerade, weight: 3, upperThreshold: 100, lowerThreshold: 50),
                    RealServer(address: IPAddress("10.9.1.2")!, port: 443, forwarding: .tunnel, weight: 0,
                               tunnel: Tunnel(type: .gue, port: 6080, flags: [.checksum])),
                ]),
            ServiceTableEntry(service: VirtualService(key: .firewallMark(7, family: .inet6), scheduler: "rr"), realServers: []),
        ]
    }

    func testRestoreChecksTheScriptAgainstTheTableFirstAndAppliesNothingTheKernelWouldRefuse() {
        for clearFirst in [false, true] {
            let harness = Harness()
            harness.backend.entries = foreignTable()
            let status = harness.run("-R", input: (clearFirst ? "-C\n" : "") + """
            -A -t 10.0.0.1:80 -s rr
            -A -t 10.0.0.1:80 -s wlc
            -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m
            -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 2
            -e -t 10.0.0.1:80 -r 10.1.0.2:8080 -m
            -d -t 10.0.0.1:80 -r 10.1.0.2:8080
            -E -t 10.0.0.2:80 -s rr
            -D -t 10.0.0.2:80
            -a -t 10.0.0.2:80 -r 10.1.0.1:8080 -m
            -Z -t 10.0.0.2:80
            -D -t 10.0.0.1:80
            -A -t 10.0.0.1:80 -s wlc
            -e -t 10.9.0.1:443 -r 10.9.1.1:8443 -m -w 5
            -A -t 10.9.0.1:443
            """)
            XCTAssertEqual(status, ExitStatus.changeFailed, harness.error)
            XCTAssertTrue(harness.backend.batches.isEmpty, "nothing may be applied: \(harness.backend.batches)")
            XCTAssertEqual(harness.backend.entries, foreignTable())
            let offset = clearFirst ? 1 : 0
            var expected = [
                "line \(2 + offset) (-A -t 10.0.0.1:80 -s wlc): cannot add service TCP 10.0.0.1:80: the service already exists",
                "line \(4 + offset) (-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 2): cannot add real server 10.1.0.1:8080 to TCP 10.0.0.1:80: the real server already exists in this service",
                "line \(5 + offset) (-e -t 10.0.0.1:80 -r 10.1.0.2:8080 -m): cannot edit real server 10.1.0.2:8080 of TCP 10.0.0.1:80: no such real server in this service",
                "line \(6 + offset) (-d -t 10.0.0.1:80 -r 10.1.0.2:8080): cannot delete real server 10.1.0.2:8080 from TCP 10.0.0.1:80: no such real server in this service",
                "line \(7 + offset) (-E -t 10.0.0.2:80 -s rr): cannot edit service TCP 10.0.0.2:80: no such service",
                "line \(8 + offset) (-D -t 10.0.0.2:80): cannot delete service TCP 10.0.0.2:80: no such service",
                "line \(9 + offset) (-a -t 10.0.0.2:80 -r 10.1.0.1:8080 -m): cannot add real server 10.1.0.1:8080 to TCP 10.0.0.2:80: no such service",
                "line \(10 + offset) (-Z -t 10.0.0.2:80): cannot zero counters of TCP 10.0.0.2:80: no such service",
            ]
            // The foreign service is there unless the script cleared the table first.
            if clearFirst {
                expected.append("line 14 (-e -t 10.9.0.1:443 -r 10.9.1.1:8443 -m -w 5): cannot edit real server 10.9.1.1:8443 of TCP 10.9.0.1:443: no such service")
            } else {
                expected.append("line 14 (-A -t 10.9.0.1:443): cannot add service TCP 10.9.0.1:443: the service already exists")
            }
            expected.append("nothing was applied: \(expected.count) lines would be refused by the IPVS table as it is now")
            XCTAssertEqual(harness.error, expected.map { "ipvsctl: \($0)\n" }.joined())
        }
    }

    func testRestoreUndoesEveryChangeWhenTheKernelRefusesALineTheCheckCannotForesee() {
        for clearFirst in [false, true] {
            let harness = Harness()
            harness.backend.entries = foreignTable()
            // The kernel's refusal of a scheduler it cannot load, with a catalog that cannot tell.
            harness.backend.failing = { operation in
                if case .addService(let service) = operation, service.scheduler.rawValue == "twos" {
                    return IPVSError(kind: .schedulerUnavailable, operation: operation.description, errno: 2)
                }
                return nil
            }
            // With -C first, the foreign service is added again, differently.
            let changes = clearFirst ? """
            -C
            -A -t 10.0.0.1:80 -s rr
            -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m
            -A -t 10.9.0.1:443 -s rr
            -a -t 10.9.0.1:443 -r 10.9.1.1:8443 -m -w 9
            --set 10 20 30
            """ : """
            -A -t 10.0.0.1:80 -s rr
            -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m
            -E -t 10.9.0.1:443 -s rr
            -e -t 10.9.0.1:443 -r 10.9.1.1:8443 -m -w 9
            -d -t 10.9.0.1:443 -r 10.9.1.2:443
            -D -f 7 -6
            --set 10 20 30
            """
            let status = harness.run("-R", input: changes + """

            -A -t 10.0.0.2:80 -s twos
            -a -t 10.0.0.2:80 -r 10.1.0.2:8080 -m
            -A -t 10.0.0.3:80 -s rr
            """)
            XCTAssertEqual(status, ExitStatus.changeFailed, harness.error)
            XCTAssertEqual(harness.backend.batches.count, 3, "the script in two batches, then the undo: \(harness.backend.batches)")
            XCTAssertEqual(Set(harness.backend.entries.map(\.service)), Set(foreignTable().map(\.service)))
            XCTAssertEqual(harness.backend.entries.sorted { $0.service.key < $1.service.key }.map { Set($0.realServers) },
                           foreignTable().sorted { $0.service.key < $1.service.key }.map { Set($0.realServers) })
            XCTAssertEqual(harness.backend.timeoutsValue, Timeouts(tcp: 900, tcpFin: 120, udp: 300))
            let first = clearFirst ? 7 : 8
            let lines = harness.error.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.count, 3, harness.error)
            guard lines.count == 3 else { continue }
            XCTAssertTrue(lines[0].hasPrefix("ipvsctl: line \(first) (-A -t 10.0.0.2:80 -s twos): cannot add service TCP 10.0.0.2:80: the kernel has no \"twos\" scheduler"), harness.error)
            XCTAssertEqual(lines[1], "ipvsctl: line \(first + 1) (-a -t 10.0.0.2:80 -r 10.1.0.2:8080 -m): cannot add real server 10.1.0.2:8080 to TCP 10.0.0.2:80: no such service")
            XCTAssertEqual(lines[2], "ipvsctl: the kernel refused 2 lines of \(first + 2); every change of this -R was undone: "
                + "the IPVS table is as it was before, except for counters: those of what -C, -D and -d deleted start again from zero")
        }
    }

    func testRestoreSaysWhatItCouldNotUndo() {
        let harness = Harness()
        harness.backend.entries = foreignTable()
        harness.backend.failing = { operation in
            if case .addService(let service) = operation, service.key == .firewallMark(7, family: .inet6) {
                return IPVSError(kind: .other, operation: operation.description, errno: 12)
            }
            return nil
        }
        XCTAssertEqual(harness.run("-R", input: "-C\n-Z\n-A -f 7 -6 -s rr\n"), ExitStatus.changeFailed)
        XCTAssertEqual(harness.backend.entries.map(\.service.key), [foreignTable()[0].service.key])
        let lines = harness.error.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, harness.error)
        guard lines.count == 4 else { return }
        XCTAssertTrue(lines[0].hasPrefix("ipvsctl: line 3 (-A -f 7 -6 -s rr): cannot add service FWM 7 IPv6: "), harness.error)
        XCTAssertEqual(lines[1], "ipvsctl: the kernel refused 1 line of 3; undoing the lines applied failed, so the IPVS table is not as it was before -R (list it with -Sn):")
        XCTAssertTrue(lines[2].hasPrefix("ipvsctl: cannot add service FWM 7 IPv6: "), harness.error)
        XCTAssertEqual(lines[3], "ipvsctl: 1 change still needed to restore the table, the first: add service FWM 7 IPv6")
    }

    func testRestoreRefusesSchedulersTheKernelLacks() {
        let harness = Harness()
        harness.catalog = SchedulerCatalog(available: ["rr", "wlc"], isComplete: true, kernelRelease: "6.1.0-test")
        XCTAssertEqual(harness.run("-R", input: "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 -s twos\n"), ExitStatus.usage)
        XCTAssertTrue(harness.backend.batches.isEmpty)
        XCTAssertTrue(harness.error.contains("line 2 (-A -t 10.0.0.2:80 -s twos): the kernel has no \"twos\" scheduler: module ip_vs_twos"), harness.error)
        XCTAssertTrue(harness.error.contains("Schedulers this kernel has: rr, wlc"), harness.error)
    }

    func testKernelRefusalOfASchedulerListsTheAvailableOnes() {
        let harness = Harness()
        harness.backend.failing = { operation in IPVSError(kind: .schedulerUnavailable, operation: operation.description, errno: 2) }
        XCTAssertEqual(harness.run("-A -t 10.0.0.1:80 -s twos"), ExitStatus.changeFailed)
        XCTAssertTrue(harness.error.contains("cannot add service TCP 10.0.0.1:80: the kernel has no \"twos\" scheduler"), harness.error)
        XCTAssertTrue(harness.error.contains("Schedulers loaded now: rr, wlc"), harness.error)
        XCTAssertTrue(harness.error.contains("Known IPVS schedulers: rr, wrr"), harness.error)
    }

    func testListingsOfAnInMemoryTable() {
        let harness = Harness()
        let key = ServiceKey.address(.udp, IPAddress("10.0.0.2")!, port: 53)
        harness.backend.entries = [ServiceTableEntry(
            service: VirtualService(key: key, scheduler: "lc", flags: [.onePacket]),
            realServers: [RealServer(address: IPAddress("10.1.1.1")!, port: 5353, forwarding: .masquerade)])]
        XCTAssertEqual(harness.run("-Ln"), 0)
        XCTAssertEqual(harness.text, """
        IP Virtual Server version 1.2.1 (size=4096)
        Prot LocalAddress:Port Scheduler Flags
          -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
        UDP  10.0.0.2:53 lc ops
          -> 10.1.1.1:5353                Masq    1      0          0         \n
        """)
        XCTAssertEqual(harness.run("-Sn"), 0)
        XCTAssertEqual(harness.text, "-A -u 10.0.0.2:53 -s lc -o\n-a -u 10.0.0.2:53 -r 10.1.1.1:5353 -m -w 1\n")
        XCTAssertEqual(harness.run("-L --timeout"), 0)
        XCTAssertEqual(harness.text, "Timeout (tcp tcpfin udp): 900 120 300\n")
        XCTAssertEqual(harness.run("-Ln -t 10.0.0.9:80"), ExitStatus.listingFailed)
        XCTAssertTrue(harness.error.contains("no such service"), harness.error)
    }

    func testJSONListing() {
        let harness = Harness()
        harness.backend.entries = [ServiceTableEntry(
            service: VirtualService(key: .firewallMark(7, family: .inet6), scheduler: "sh", flags: [.shPort],
                                    persistence: Persistence(timeout: 60, prefixLength: 64),
                                    statistics: Statistics(incomingBytes: UInt64.max)),
            realServers: [RealServer(address: IPAddress("fd00::5")!, port: 80, forwarding: .tunnel,
                                     tunnel: Tunnel(type: .gue, port: 6080, flags: [.checksum]))])]
        XCTAssertEqual(harness.run("-L --output json"), 0)
        let text = harness.text
        for fragment in ["\"version\": \"1.2.1\"", "\"fwmark\": 7", "\"family\": \"ipv6\"", "\"protocol\": null",
                         "\"scheduler_flags\": [\"sh-port\"]", "\"prefix_length\": 64", "\"in_bytes\": 18446744073709551615",
                         "\"forwarding\": \"tunnel\"", "\"type\": \"gue\"", "\"checksum\": \"on\""] {
            XCTAssertTrue(text.contains(fragment), "missing \(fragment) in\n\(text)")
        }
        XCTAssertEqual(harness.run("-L --timeout --output json"), 0)
        XCTAssertEqual(harness.text, "{\n  \"tcp\": 900,\n  \"tcp_fin\": 120,\n  \"udp\": 300\n}\n")
    }

    func testConnectionListingParsesTheKernelFile() {
        let harness = Harness()
        harness.files[ConnectionTable.path] = """
        Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
        TCP 0A0A0001 D431 0A0A0001 1F90 7F000001 1F90 ESTABLISHED     899
        UDP FD00:0000:0000:0000:0000:0000:0000:0001 0035 FD00:0000:0000:0000:0000:0000:0000:0002 0035 FD00:0000:0000:0000:0000:0000:0000:0003 0035 UDP               5

        """
        XCTAssertEqual(harness.run("-Lnc"), 0)
        XCTAssertEqual(harness.text, """
        IPVS connection entries
        pro expire state       source             virtual            destination
        TCP 14:59  ESTABLISHED 10.10.0.1:54321    10.10.0.1:8080     127.0.0.1:8080
        UDP 00:05  UDP         [fd00::1]:53       [fd00::2]:53       [fd00::3]:53

        """)
        XCTAssertEqual(harness.run("-Lc --output json"), 0)
        XCTAssertTrue(harness.text.contains("\"client_port\": 54321"), harness.text)
        XCTAssertFalse(harness.backendOpened, "-c reads the file only")
    }

    func testHelpVersionAndCompletionScripts() {
        let harness = Harness()
        XCTAssertEqual(harness.run("-h"), 0)
        XCTAssertTrue(harness.text.contains("Usage:"))
        XCTAssertFalse(harness.text.contains("Examples:"))
        XCTAssertEqual(harness.run("--help"), 0)
        XCTAssertTrue(harness.text.contains("Examples:"))
        XCTAssertTrue(harness.text.contains("JSON output"))
        XCTAssertEqual(harness.run("-v"), 0)
        XCTAssertTrue(harness.text.hasPrefix("ipvsadm v1.31 2019/12/24 (compiled with ipvsctl"))
        for shell in ["bash", "zsh", "fish"] {
            XCTAssertEqual(harness.run(["--generate-completion-script", shell]), 0, harness.error)
            for spec in OptionSpec.all {
                XCTAssertTrue(harness.text.contains(spec.long), "\(shell) completion lacks --\(spec.long)")
            }
            for word in ["status", "agent-address"] {
                XCTAssertTrue(harness.text.contains(word), "\(shell) completion lacks \(word)")
            }
        }
        XCTAssertFalse(harness.backendOpened)
    }

    func testUsageErrorsExitTwoWithoutTouchingTheKernel() {
        let harness = Harness()
        XCTAssertEqual(harness.run("--bogus"), 255, "unknown options exit 255 as in ipvsadm")
        XCTAssertEqual(harness.run("-L -t"), 255, "a missing value exits 255 as in ipvsadm")
        for line in ["-A -t 10.0.0.1", "-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1", "-L -c --rate", "-C extra"] {
            XCTAssertEqual(harness.run(line), ExitStatus.usage, line)
            XCTAssertTrue(harness.error.hasPrefix("ipvsctl: "), line)
        }
        XCTAssertFalse(harness.backendOpened)
    }
}
