import Foundation
import IPVS
import XCTest

/// Pods that become unreachable again and again, the way pods of a failed node or link do (issue 23, item 1):
/// their link goes down, so SYNs are dropped and, once ARP gives up, connects fail with `EHOSTUNREACH`. Several
/// pods in a row and killed servers in between: the agent's TCP checks quiesce every one, none gets its weight
/// back while it is unreachable, and each gets it back once it answers again. Before the fix, the first
/// `EHOSTUNREACH` left a socket that later checks took as connected, and unreachable pods were put back to
/// weight 1.
final class AgentHealthOutageTests: XCTestCase {
    /// Checks every 300 ms with a 300 ms timeout, rise 2 and fall 2.
    static let annotations = ["health-check": "tcp", "health-interval": "300ms", "health-timeout": "300ms",
                              "health-rise": "2", "health-fall": "2"]
    /// How long a fault may take to be seen in the kernel, and a recovered pod to get its weight back: two checks
    /// take under a second; the rest is the emulated VM's slowness (see `AgentHealthTests.bound(checks:)`).
    static let bound = 10.0
    /// How long a fault is held once it was seen: the checks keep failing (ARP gives up within about 0.6 s).
    static let hold = 2.0

    enum Fault: CustomStringConvertible {
        case linkDown([Int])
        case killed(Int)

        var pods: [Int] {
            switch self {
            case .linkDown(let pods): pods
            case .killed(let pod): [pod]
            }
        }

        var description: String {
            switch self {
            case .linkDown(let pods): "link down of pod\(pods.map(String.init).joined(separator: " and pod"))"
            case .killed(let pod): "pod\(pod)'s server killed"
            }
        }
    }

    /// 21 episodes over 3 pods: link outages of one pod or two at once, rotating, and every seventh a killed
    /// server (a restart costs a python start, slow on an emulated CPU).
    static let episodes: [Fault] = (0..<21).map { episode in
        let pod = episode % 3 + 1
        if episode % 7 == 6 { return .killed(pod) }
        return .linkDown(episode.isMultiple(of: 2) ? [pod, pod % 3 + 1] : [pod])
    }

    func testEveryOutageIsDetectedAndNoUnreachablePodGetsItsWeightBack() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        var pods = try (1...3).map { try cluster.addPod($0) }
        // The node's end of each pod's link, and ARP on it giving up after 3 probes 200 ms apart (1 s by default).
        let links = try pods.map { pod in
            let route = try KernelTest.shell("ip -o route get \(pod.address)").split(separator: " ").map(String.init)
            let device = try XCTUnwrap(route.firstIndex(of: "dev").map { route[$0 + 1] }, "no route to \(pod.address)")
            try KernelTest.shell("sysctl -qw net.ipv4.neigh.\(device).retrans_time_ms=200")
            return device
        }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false, annotations: Self.annotations))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "5s",
                                             "--metrics-address", "127.0.0.1:10257"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        let weights = try KernelWeights(service: .address(.tcp, IPAddress("10.96.0.10")!, port: 80))
        let servers = pods.map { RealServerID(address: IPAddress($0.address)!, port: 8080) }
        func weight(_ pod: Int) -> Int32? { weights.weight(of: servers[pod - 1]) }
        try waitUntil("the agent programs web", timeout: 60) { (1...3).allSatisfy { weight($0) == 1 } }

        var restarted: [Process] = []
        defer { restarted.forEach { $0.terminate() } }
        var detected = 0, unreachableSeen = 0
        var detections: [Double] = []
        for (episode, fault) in Self.episodes.enumerated() {
            // The fault.
            switch fault {
            case .linkDown(let downed):
                for pod in downed {
                    // The node forgets the pod's MAC address as it would once its entry expires: ARP starts over.
                    // A flush that meets an entry the kernel deleted meanwhile fails (ENOENT): flushed again.
                    try KernelTest.shell("ip -n \(pods[pod - 1].namespace) link set eth0 down && "
                                         + "{ ip neigh flush dev \(links[pod - 1]) || ip neigh flush dev \(links[pod - 1]); }")
                }
            case .killed(let pod):
                pods[pod - 1].server?.terminate()
                pods[pod - 1].server?.waitUntilExit()
            }
            let started = Date()

            // Every faulted pod is quiesced within the bound...
            var seen = Set<Int>()
            while seen.count < fault.pods.count, Date().timeIntervalSince(started) < Self.bound {
                for pod in fault.pods where weight(pod) == 0 { seen.insert(pod) }
                Thread.sleep(forTimeInterval: 0.05)
            }
            let detectedAfter = Date().timeIntervalSince(started)
            XCTAssertEqual(seen.count, fault.pods.count, "episode \(episode) (\(fault)): not quiesced within \(Self.bound) s:\n"
                           + ((try? cluster.table()) ?? ""))
            if seen.count == fault.pods.count {
                detected += 1
                detections.append(detectedAfter)
            }
            // ...and none gets its weight back while the fault lasts.
            let holdEnd = Date().addingTimeInterval(Self.hold)
            var regained: [Int] = []
            while Date() < holdEnd {
                regained += fault.pods.filter { seen.contains($0) && weight($0) != 0 && !regained.contains($0) }
                Thread.sleep(forTimeInterval: 0.05)
            }
            XCTAssertEqual(regained, [], "episode \(episode) (\(fault)): weight back while unreachable:\n" + ((try? cluster.table()) ?? ""))
            // Once is enough to know that the outages reach EHOSTUNREACH (curl is slow to start when emulated).
            if unreachableSeen == 0, case .linkDown = fault,
               (try? KernelTest.shell("curl -sf http://127.0.0.1:10257/status"))?.contains("no route to host") == true {
                unreachableSeen += 1
            }
            // The pods that were not faulted kept their weight.
            for pod in 1...3 where !fault.pods.contains(pod) {
                XCTAssertEqual(weight(pod), 1, "episode \(episode) (\(fault)): pod\(pod) lost its weight")
            }

            // The repair: the pod answers again and gets its weight back.
            switch fault {
            case .linkDown(let downed):
                for pod in downed {
                    let namespace = pods[pod - 1].namespace
                    try KernelTest.shell("ip -n \(namespace) link set eth0 up && ip -n \(namespace) route replace default via 10.250.\(pod).1")
                }
            case .killed(let pod):
                let server = try cluster.restartServer(pods[pod - 1])
                restarted.append(server)
                pods[pod - 1].server = server
                // python starts slowly on an emulated CPU: the bound counts from when it answers.
                try waitUntil("pod\(pod) answers again", timeout: 180) {
                    (try? TCPClient.request(pods[pod - 1].address, 8080, timeout: 1)) == "pod\(pod)"
                }
            }
            let repaired = Date()
            try waitUntil("episode \(episode) (\(fault)): the pods get their weight back", timeout: Self.bound) {
                (1...3).allSatisfy { weight($0) == 1 }
            }
            print("episode \(episode) (\(fault)): weight 0 after \(String(format: "%.2f", detectedAfter)) s, "
                  + "back \(String(format: "%.2f", Date().timeIntervalSince(repaired))) s after the repair")
        }
        let linkOutages = Self.episodes.filter { if case .linkDown = $0 { true } else { false } }.count
        print("\(detected) of \(Self.episodes.count) episodes detected (\(linkOutages) link outages, "
              + "\(Self.episodes.count - linkOutages) kills), quiesced after "
              + "\(detections.map { String(format: "%.2f", $0) }.joined(separator: " ")) s; "
              + "EHOSTUNREACH seen: \(unreachableSeen > 0 ? "yes" : "no")")
        XCTAssertEqual(detected, Self.episodes.count, "every episode is detected")
        XCTAssertGreaterThan(unreachableSeen, 0, "ARP gave up during the outages (the checks saw EHOSTUNREACH):\n\(cluster.log(log))")
    }
}
