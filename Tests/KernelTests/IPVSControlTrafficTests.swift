import Foundation
import XCTest

/// Listings of live connections and of counters moved by real traffic, against ipvsadm.
///
/// A Python helper in the test's namespace listens on 0.0.0.0:8080 and opens connections to the
/// virtual service 10.10.0.1:8080 (an address of lo), which IPVS schedules to the local real
/// server; it keeps them open until its standard input closes.
final class IPVSControlTrafficTests: XCTestCase {
    private static let helper = #"""
    import socket, sys
    server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 8080)); server.listen(16)
    kept = []
    for index in range(3):
        client = socket.create_connection(("10.10.0.1", 8080)); accepted, _ = server.accept()
        kept += [client, accepted]
    payload = int(sys.argv[1])
    if payload:
        chunk = b"x" * 65536
        client = kept[0]; receiver = kept[1]; sent = 0
        receiver.setblocking(False)
        while sent < payload:
            sent += client.send(chunk)
            try:
                while receiver.recv(1 << 20): pass
            except BlockingIOError:
                pass
        receiver.setblocking(True)
        while True:
            receiver.settimeout(1)
            try:
                if not receiver.recv(1 << 20): break
            except socket.timeout:
                break
    print("ready", flush=True)
    sys.stdin.read()
    """#

    private func startTraffic(bytes: Int) throws -> Process {
        try KernelTest.shell("ip addr add 10.10.0.1/32 dev lo")
        try KernelTest.shell("\(Golden.ipvsadm) -A -t 10.10.0.1:8080 -s rr")
        try KernelTest.shell("\(Golden.ipvsadm) -a -t 10.10.0.1:8080 -r 127.0.0.1:8080 -m")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.helper, String(bytes)]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        try process.run()
        let line = String(decoding: output.fileHandleForReading.availableDataUntilNewline(), as: UTF8.self)
        XCTAssertEqual(line, "ready\n", "the traffic helper did not start")
        return process
    }

    private func stop(_ process: Process) throws {
        try (process.standardInput as? Pipe)?.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    func testConnectionListingsMatchIpvsadm() throws {
        try KernelTest.requireKernel()
        let traffic = try startTraffic(bytes: 0)
        defer { try? stop(traffic) }
        let listing = try Golden.ipvsctl(["-Lnc"]).standardOutput
        XCTAssertGreaterThanOrEqual(listing.components(separatedBy: "ESTABLISHED").count - 1, 3, listing)
        for mode in ["-Lnc", "-Lc", "-L -n -c --persistent-conn"] {
            try Golden.assertSameConnectionListing(mode)
        }
        for mode in ["-Ln", "-Ln --persistent-conn", "-Ln --thresholds"] {
            try Golden.assertSameOutput(mode, attempts: 5)
        }
        let json = try Golden.ipvsctl(["-Lc", "--output", "json"]).standardOutput
        XCTAssertTrue(json.contains("\"virtual_port\": 8080"), json)
        XCTAssertTrue(json.contains("\"state\": \"ESTABLISHED\""), json)
    }

    func testCountersOfRealTrafficMatchIpvsadm() throws {
        try KernelTest.requireKernel()
        // 110 MB in: enough for ipvsadm's "K" abbreviation of bytes.
        let traffic = try startTraffic(bytes: 110_000_000)
        defer { try? stop(traffic) }
        Thread.sleep(forTimeInterval: 2.5)  // the estimator refreshes rates every 2 s
        for mode in ["-Ln --stats", "-Ln --stats --exact", "-L --stats", "-Ln --stats -t 10.10.0.1:8080", "-Ln"] {
            try Golden.assertSameOutput(mode, attempts: 5)
        }
        // Rates decay at every estimator tick once the traffic stopped.
        for mode in ["-Ln --rate", "-Ln --rate --exact"] {
            try Golden.assertSameOutput(mode, attempts: 8, followEstimator: true)
        }
        let stats = try Golden.ipvsctl(["-Ln", "--stats"]).standardOutput
        XCTAssertTrue(stats.contains("K "), "expected a K-abbreviated byte counter:\n\(stats)")
        let json = try Golden.ipvsctl(["-L", "--output", "json"]).standardOutput
        XCTAssertTrue(json.range(of: #""in_bytes": 1[0-9]{8}"#, options: .regularExpression) != nil, json)
    }
}

private extension FileHandle {
    /// Reads until a newline (or the end), for a helper's "ready" line.
    func availableDataUntilNewline() -> Data {
        var data = Data()
        while true {
            let byte = readData(ofLength: 1)
            if byte.isEmpty { return data }
            data.append(byte)
            if byte.first == 0x0A { return data }
        }
    }
}
