import CEpoll
import Foundation
import Glibc
import XCTest

/// Pods behind veth pairs, for checks whose backend must become unreachable the way a real one does (its link
/// down: SYNs dropped, then `EHOSTUNREACH` once ARP gives up). Everything lives in network namespaces of its
/// own: a "node" namespace (the checker's) and one per pod at 10.251.<n>.2 with a TCP listener on 8080, so the
/// host's own network is never touched. Needs root, `ip` and `python3`.
final class VethPods {
    let node: String
    private let prefix: String
    private(set) var namespaces: [String] = []
    private var servers: [Process] = []

    /// Skips the test unless it runs as root (network namespaces and veth need CAP_NET_ADMIN and CAP_SYS_ADMIN).
    static func requireRoot() throws {
        guard getuid() == 0 else {
            throw XCTSkip("needs root to make network namespaces and veth pairs (run `swift test` as root)")
        }
    }

    /// Makes `count` pods; ARP on the node's side of each link gives up after about `arpGiveUp` (3 probes).
    init(count: Int, arpGiveUp: Duration = .milliseconds(300)) throws {
        prefix = "hc\(getpid() % 100_000)"
        node = "\(prefix)-node"
        try Self.shell("ip netns add \(node) && ip -n \(node) link set lo up")
        namespaces.append(node)
        let giveUp = arpGiveUp.components.seconds * 1000 + arpGiveUp.components.attoseconds / 1_000_000_000_000_000
        let retransmit = giveUp / 3
        for index in 1...count {
            let pod = "\(prefix)-pod\(index)", veth = "\(prefix)v\(index)"
            namespaces.append(pod)
            try Self.shell("""
                ip netns add \(pod) && \
                ip -n \(node) link add \(veth) type veth peer name eth0 netns \(pod) && \
                ip -n \(node) addr add 10.251.\(index).1/24 dev \(veth) && ip -n \(node) link set \(veth) up && \
                ip netns exec \(node) sysctl -qw net.ipv4.neigh.\(veth).retrans_time_ms=\(max(1, retransmit)) && \
                ip -n \(pod) link set lo up && ip -n \(pod) addr add \(address(index))/24 dev eth0 && \
                ip -n \(pod) link set eth0 up
                """)
            let server = Process()
            server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            server.arguments = ["ip", "netns", "exec", pod, "python3", "-c", Self.listener]
            server.standardOutput = FileHandle.nullDevice
            try server.run()
            servers.append(server)
        }
    }

    deinit {
        for server in servers where server.isRunning { server.terminate(); server.waitUntilExit() }
        for namespace in namespaces { _ = try? Self.shell("ip netns del \(namespace)") }
    }

    func address(_ index: Int) -> String { "10.251.\(index).2" }

    /// Takes pod `index`'s link down or up (its end of the veth: the node's end loses its carrier). Going down,
    /// the node forgets the pod's MAC address, so the next SYN makes ARP start over and give up: an entry
    /// confirmed just before would otherwise be trusted for seconds, and its SYNs only time out.
    func setLink(_ index: Int, up: Bool) throws {
        try Self.shell("ip -n \(prefix)-pod\(index) link set eth0 \(up ? "up" : "down")"
                       + (up ? "" : " && ip -n \(node) neigh flush dev \(prefix)v\(index)"))
    }

    /// Runs `body` with the calling thread in the node's network namespace, then puts it back; sockets made
    /// meanwhile, and threads started meanwhile (for good), are the node's.
    func inNode<Result>(_ body: () throws -> Result) throws -> Result {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        let target = open("/run/netns/\(node)", O_RDONLY | O_CLOEXEC)
        defer { close(original); close(target) }
        guard original >= 0, target >= 0, Self.setns(target, Self.newNetworkNamespace) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        defer { _ = Self.setns(original, Self.newNetworkNamespace) }
        return try body()
    }

    /// Waits until every pod accepts a connection from the node (the listeners start slowly).
    func waitUntilListening(timeout: Duration = .seconds(120)) throws {
        let deadline = ContinuousClock.now + timeout
        for index in 1..<namespaces.count {
            while try !inNode({ Self.connects(to: address(index), port: 8080) }) {
                guard ContinuousClock.now < deadline else { throw XCTSkip("pod \(index)'s listener did not start within \(timeout)") }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    /// Whether a blocking connect to `address`:`port` succeeds within a second.
    private static func connects(to address: String, port: Int) -> Bool {
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var limit = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = UInt16(port).bigEndian
        target.sin_addr.s_addr = inet_addr(address)
        return withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    // MARK: - Helpers

    /// `CLONE_NEWNET`, which Swift's Glibc module does not export.
    private static let newNetworkNamespace: CInt = 0x4000_0000

    /// `setns(2)`, which Swift's Glibc module does not export (glibc declares it only with `_GNU_SOURCE`).
    private static func setns(_ fd: CInt, _ type: CInt) -> CInt {
        typealias SetNS = @convention(c) (CInt, CInt) -> CInt
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return -1 }
        return unsafeBitCast(symbol, to: SetNS.self)(fd, type)
    }

    /// Accepts on 0.0.0.0:8080 and closes each connection at once.
    private static let listener = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 8080)); s.listen(128)
        while True:
            c, _ = s.accept(); c.close()
        """

    @discardableResult
    static func shell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "VethPods", code: Int(process.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "`\(command)` failed: \(text)"])
        }
        return text
    }
}
