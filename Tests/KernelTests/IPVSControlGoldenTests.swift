import Foundation
import XCTest

/// `ipvsctl` lists byte for byte like `ipvsadm` 1.31 on the same kernel state.
final class IPVSControlGoldenTests: XCTestCase {
    func testEveryListingModeMatchesIpvsadmOnAnEmptyTable() throws {
        try KernelTest.requireKernel()
        for mode in Golden.listingModes {
            try Golden.assertSameOutput(mode)
        }
    }

    func testEveryListingModeMatchesIpvsadmOnAMixedTable() throws {
        try KernelTest.requireKernel()
        try Golden.build(Golden.mixedState)
        for mode in Golden.listingModes {
            try Golden.assertSameOutput(mode)
        }
    }

    /// More than 512 services: ipvsctl reads the real servers over several sockets at once and must
    /// still list every service with its own real servers, in the kernel's order.
    func testALargeTableReadOverSeveralSocketsMatchesIpvsadm() throws {
        try KernelTest.requireKernel()
        var rules = ""
        for index in 0..<1_500 {
            let vip = "10.97.\(index / 250).\(index % 250 + 1)"
            rules += "-A -t \(vip):80 -s rr\n"
            for server in 0..<(index % 4) {
                rules += "-a -t \(vip):80 -r 10.245.\(index / 250).\(index % 250 + 1):\(8080 + server) -m -w \(server + 1)\n"
            }
        }
        rules += "-A -u 10.97.9.9:53 -s wlc\n-a -u 10.97.9.9:53 -r 10.245.9.9:5353 -m -w 3\n"
        let restore = try Golden.ipvsctl(["-R"], input: rules)
        XCTAssertEqual(restore.status, 0, restore.standardError)
        // Tests in other namespaces change services while these lists are read; a list this long takes
        // several datagrams, and ipvsadm's dump can then repeat or miss a service (ipvsctl reads again until
        // two reads agree). An attempt whose two ipvsadm reads differ is tried again.
        for mode in ["-Ln", "-Sn", "-Ln --stats", "-L --nosort -n", "-Ln --thresholds"] {
            try Golden.assertSameOutput(mode, attempts: 3)
        }
        let json = try Golden.ipvsctl(["-Ln", "--output", "json"])
        XCTAssertEqual(json.status, 0, json.standardError)
        XCTAssertEqual(json.standardOutput.components(separatedBy: "8082").count - 1, 375, "the third server of every fourth service")
    }

    func testSingleServiceListingsMatchIpvsadm() throws {
        try KernelTest.requireKernel()
        try Golden.build(Golden.mixedState)
        let services = [
            "-t 10.0.0.1:80", "-t 10.0.0.1:http", "-t 192.168.0.1:80", "-u 10.0.0.2:53", "-u 10.0.0.2:domain",
            "--sctp-service 192.168.100.200:3868", "-t [fd00::1]:443", "-u [fd00::2]:53", "-f 1", "-f 7 -6",
            "-f 3000000000", "-t 10.0.0.1:0", "--tcp-service 10.0.0.4:22", "--fwmark-service 1",
        ]
        for service in services {
            for mode in ["-Ln", "-L", "-Ln --stats", "-Ln --rate --exact", "-Ln --thresholds", "-Ln --persistent-conn",
                         "-Ln --tun-info", "-L --nosort"] {
                try Golden.assertSameOutput("\(mode) \(service)")
            }
        }
        // A service that does not exist: same (empty) output and exit status 1.
        for missing in ["-Ln -t 10.0.0.9:80", "-Ln -f 7", "-Ln -f 99 -6", "-Ln -u 10.0.0.1:80"] {
            try Golden.assertSameOutput(missing)
        }
    }

    func testCombinedAndReorderedOptionsMatchIpvsadm() throws {
        try KernelTest.requireKernel()
        try Golden.build(Golden.mixedState)
        for mode in ["-Lnt 192.168.0.1:80", "-lnX --stats", "-Ln --persistent-conn --thresholds", "-Ln --rate --stats",
                     "-L -n --tun-info --thresholds", "-Sn", "-Snt", "-L -n -t10.0.0.1:80", "--list -n --tcp-service=10.0.0.1:80"] {
            try Golden.assertSameOutput(mode)
        }
    }

    func testServicesAndServersAtTheWidthLimitsMatchIpvsadm() throws {
        try KernelTest.requireKernel()
        try Golden.build([
            "-A -t 255.255.255.254:65535 -s rr",
            "-a -t 255.255.255.254:65535 -r 255.255.255.253:65535 -m -w 65535 -x 2147483647 -y 2147483647",
            "-A -t [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 -s wrr -p 2678400 -M 1",
            "-a -t [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 -r [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:65534 -m -w 65535",
            "-A -f 4294967295 -6 -s rr",
            "-A -f 2147483648 -s rr",
            "-A -f 2147483647 -s rr",
        ])
        for mode in ["-Ln", "-L", "-Ln --stats", "-Ln --thresholds", "-Ln --persistent-conn", "-Ln --tun-info", "-Sn", "-S"] {
            try Golden.assertSameOutput(mode)
        }
    }

    func testTimeoutsListingFollowsSet() throws {
        try KernelTest.requireKernel()
        XCTAssertEqual(try Golden.ipvsctl(["--set", "1000", "0", "30"]).status, 0)
        try Golden.assertSameOutput("-L --timeout")
        try Golden.assertSameOutput("--list --timeout")
        XCTAssertEqual(try KernelTest.shell("\(Golden.ipvsadm) -L --timeout"), "Timeout (tcp tcpfin udp): 1000 120 30\n")
    }

    func testSyncDaemonListingMatchesIpvsadm() throws {
        try KernelTest.requireKernel()
        // The sync daemons need a multicast-capable interface: one end of a veth pair.
        try KernelTest.shell("ip link add sync0 type veth peer name sync1 && ip link set sync0 up && ip link set sync1 up")
        try KernelTest.shell("\(Golden.ipvsadm) --start-daemon master --mcast-interface sync0 --syncid 5")
        try Golden.assertSameOutput("-L --daemon")
        try KernelTest.shell("\(Golden.ipvsadm) --start-daemon backup --mcast-interface sync1 --syncid 6 --mcast-group 239.1.1.1 --mcast-port 7777 --sync-maxlen 1000 --mcast-ttl 3")
        try Golden.assertSameOutput("-L --daemon")
        XCTAssertTrue(try Golden.ipvsctl(["-L", "--daemon"]).standardOutput.contains("backup sync daemon (mcast=sync1, syncid=6"))
        let json = try Golden.ipvsctl(["-L", "--daemon", "--output", "json"])
        XCTAssertTrue(json.standardOutput.contains("\"role\": \"backup\""), json.standardOutput)
    }
}
