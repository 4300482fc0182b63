import Foundation
import IPVS
import XCTest

/// A backend that flaps faster than rise/fall allow must not flap its kernel weight: every
/// weight change needs `rise` or `fall` consecutive check results first, all within one phase of
/// the flapping server; with phases shorter than that many checks take, the weight never changes.
final class AgentHealthFlapTests: XCTestCase {
    func testFlappingBackendChangesWeightNoFasterThanRiseAndFallAllow() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        // Pod 2's server is replaced by one that listens for 0.75 s, then refuses connections for 0.75 s.
        pods[1].server?.terminate()
        pods[1].server?.waitUntilExit()
        let toggles = cluster.folder.appendingPathComponent("toggles.log")
        func flips() -> Int { ((try? String(contentsOf: toggles, encoding: .utf8)) ?? "").split(separator: "\n").count }
        /// When each toggle happened (seconds since 1970, the flapper's clock: the same as ours).
        func toggleTimes() -> [Double] {
            ((try? String(contentsOf: toggles, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                $0.split(separator: " ").last.flatMap { Double($0) }
            }
        }
        try Self.flapperScript.write(to: cluster.folder.appendingPathComponent("flap.py"), atomically: true, encoding: .utf8)
        let flapper = Process()
        flapper.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        flapper.arguments = ["ip", "netns", "exec", pods[1].namespace, "python3", cluster.folder.appendingPathComponent("flap.py").path,
                             "0.75", "0.75", toggles.path]
        flapper.standardOutput = FileHandle.nullDevice
        try flapper.run()
        defer { flapper.terminate() }
        // python starts slowly on an emulated CPU: wait for its first full cycle.
        try waitUntil("the flapping server toggles", timeout: 180) { flips() >= 2 }

        let interval = 0.5, jitter = 0.1, rise = 6, fall = 6
        try cluster.writeManifest("web.yaml", AgentHealthQuorumTests.manifest(pods, annotations: [
            "health-rise": "\(rise)", "health-fall": "\(fall)", "health-jitter": "\(jitter)"]))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10254"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let web = ServiceKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)
        let flapping = RealServerID(address: IPAddress(pods[1].address)!, port: 8080)
        let ipvs = try IPVSClient()
        func weight() -> Int32? { (try? ipvs.realServers(of: web))?.first { $0.id == flapping }?.weight }
        try waitUntil("the agent programs web", timeout: 60) { weight() != nil }

        // Poll the kernel's weight over netlink (every 20 ms) for 40 s.
        let window = 40.0
        let flipsBefore = flips()
        let start = Date()
        var weights: [Int32] = []
        var polls = 0
        while Date().timeIntervalSince(start) < window {
            if let weight = weight(), weight != weights.last { weights.append(weight) }
            polls += 1
            Thread.sleep(forTimeInterval: 0.02)
        }
        let end = Date()
        let elapsed = end.timeIntervalSince(start)
        let changes = max(0, weights.count - 1)
        let serverFlips = flips() - flipsBefore
        // A weight change needs min(rise, fall) = 6 results in a row of one kind, so 6 checks within
        // one phase of the server (listening, or refusing). A TCP check starts at least
        // interval x (1 - jitter/2) = 475 ms after the previous one started (it is rescheduled from
        // its own start), so 6 of them span at least 5 x 475 ms = 2.375 s: more than one 0.75 s
        // phase. The bound is the number of phases, as the flapper logged them, long enough for
        // that (0.2 s less, for the time between a toggle and its log line), from 2.375 s before
        // the window (a change may be applied just after it began) to its end. It is 0 unless the
        // emulated VM stalled the flapper for seconds.
        let span = Double(min(rise, fall) - 1) * interval * (1 - jitter / 2)
        let toggleTimes = toggleTimes() + [end.timeIntervalSince1970]
        let phases = zip(toggleTimes, toggleTimes.dropFirst()).map { (start: $0, length: $1 - $0) }
        let bound = phases.filter { $0.start + $0.length > start.timeIntervalSince1970 - span && $0.length >= span - 0.2 }.count
        let longest = phases.filter { $0.start + $0.length > start.timeIntervalSince1970 }.map(\.length).max() ?? 0
        print("flapping backend: \(serverFlips) server toggles (longest phase \(String(format: "%.2f", longest)) s), \(polls) polls, "
              + "\(changes) kernel weight changes \(weights); bound \(bound) in \(String(format: "%.1f", elapsed)) s")
        XCTAssertGreaterThan(serverFlips, 2 * Int(elapsed / (interval * (1 + jitter / 2)) / Double(min(rise, fall))),
                             "the server must toggle well over the changes rise/fall would allow a steady flapper, for the test to mean anything")
        XCTAssertLessThanOrEqual(changes, bound, "the weight flapped faster than rise \(rise) / fall \(fall) allow: \(weights)")
        // Its neighbour is not disturbed.
        XCTAssertEqual((try? ipvs.realServers(of: web))?.first { $0.id.address == IPAddress(pods[0].address)! }?.weight, 1)
    }

    /// Listens on TCP 8080 for `up` seconds, then closes the socket (connections are refused) for
    /// `down` seconds, forever; appends a line to `log` at each toggle (`up 1764800000.123456`).
    static let flapperScript = """
        import socket, sys, time
        up, down, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 8080)); s.listen(64); s.settimeout(0.05)
            open(log, "a").write("up %f\\n" % time.time())
            end = time.time() + up
            while time.time() < end:
                try:
                    c, _ = s.accept()
                    c.close()
                except OSError:
                    pass
            s.close()
            open(log, "a").write("down %f\\n" % time.time())
            time.sleep(down)
        """
}
