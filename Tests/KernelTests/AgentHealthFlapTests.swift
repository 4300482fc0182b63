import Foundation
import IPVS
import XCTest

/// A backend that flaps faster than rise/fall allow must not flap its kernel weight: every
/// weight change needs `rise` or `fall` consecutive check results first, so the number of changes
/// is bounded by the number of checks the interval allows, divided by min(rise, fall).
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
        let elapsed = Date().timeIntervalSince(start)
        let changes = max(0, weights.count - 1)
        let serverFlips = flips() - flipsBefore
        // Checks start at least interval x (1 - jitter/2) apart; a transition needs min(rise, fall)
        // consecutive results after the previous one (+1: one may have been under way at the start).
        let checks = Int(elapsed / (interval * (1 - jitter / 2))) + 1
        let bound = checks / min(rise, fall) + 1
        print("flapping backend: \(serverFlips) server toggles, \(polls) polls, \(changes) kernel weight changes \(weights); "
              + "bound \(bound) for at most \(checks) checks in \(String(format: "%.1f", elapsed)) s")
        XCTAssertGreaterThan(serverFlips, bound,
                             "the server must toggle more often than the bound for the test to tell flapping weights apart")
        XCTAssertLessThanOrEqual(changes, bound, "the weight flapped faster than rise \(rise) / fall \(fall) allow: \(weights)")
        // Its neighbour is not disturbed.
        XCTAssertEqual((try? ipvs.realServers(of: web))?.first { $0.id.address == IPAddress(pods[0].address)! }?.weight, 1)
    }

    /// Listens on TCP 8080 for `up` seconds, then closes the socket (connections are refused) for
    /// `down` seconds, forever; appends a line to `log` at each toggle.
    static let flapperScript = """
        import socket, sys, time
        up, down, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 8080)); s.listen(64); s.settimeout(0.05)
            open(log, "a").write("up\\n")
            end = time.time() + up
            while time.time() < end:
                try:
                    c, _ = s.accept()
                    c.close()
                except OSError:
                    pass
            s.close()
            open(log, "a").write("down\\n")
            time.sleep(down)
        """
}
