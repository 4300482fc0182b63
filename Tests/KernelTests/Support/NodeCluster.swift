import Foundation
import XCTest

/// A cluster of nodes inside one kernel: each node is a network namespace with its own IPVS table,
/// dummy interface, nftables and `ipvs-agent` daemon; its pods are namespaces behind it (10.244.<node>.0/24,
/// routed between nodes as a CNI would); nodes and outside clients share a bridge (the LAN,
/// 192.168.77.0/24). Clients reach only the nodes' addresses and the routes the test gives them.
final class NodeCluster {
    struct Node {
        var name: String
        var index: Int
        var namespace: String
        /// The node's LAN address (192.168.77.1<index>).
        var address: String
    }

    struct Pod {
        var name: String
        var namespace: String
        var address: String
        var node: Int
    }

    let folder: URL
    private(set) var nodes: [Node] = []
    private(set) var pods: [Pod] = []
    private(set) var clients: [String: String] = [:] // namespace: address
    private var processes: [Process] = []
    private var agents: [Int: Process] = [:]
    private let prefix = "nc\(getpid())"
    private var bridge: String { "\(prefix)br" }

    /// Nodes 1...`nodes` on the LAN, each routing the others' pod networks to them.
    init(nodes count: Int) throws {
        folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ipvs-cluster-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("manifests"), withIntermediateDirectories: true)
        try AgentTestCluster.serverScript.write(to: folder.appendingPathComponent("pod.py"), atomically: true, encoding: .utf8)
        try Self.listenerScript.write(to: folder.appendingPathComponent("listen.py"), atomically: true, encoding: .utf8)
        try Self.peerScript.write(to: folder.appendingPathComponent("peer.py"), atomically: true, encoding: .utf8)
        try KernelTest.shell("ip link add \(bridge) type bridge && ip link set \(bridge) up")
        for index in 1...count {
            let node = Node(name: "node-\(index)", index: index, namespace: "\(prefix)-n\(index)", address: "192.168.77.1\(index)")
            try join(node.namespace, address: node.address, veth: "\(prefix)n\(index)")
            try KernelTest.shell("ip netns exec \(node.namespace) sh -c 'sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0'")
            nodes.append(node)
        }
        for node in nodes {
            for other in nodes where other.index != node.index {
                try KernelTest.shell("ip -n \(node.namespace) route add 10.244.\(other.index).0/24 via \(other.address)")
            }
        }
    }

    deinit {
        for process in processes + Array(agents.values) where process.isRunning { process.terminate() }
        for process in processes + Array(agents.values) { process.waitUntilExit() }
        for namespace in pods.map(\.namespace) + clients.keys + nodes.map(\.namespace) {
            _ = try? KernelTest.run(["ip", "netns", "del", namespace])
        }
        _ = try? KernelTest.run(["ip", "link", "del", bridge])
        try? FileManager.default.removeItem(at: folder)
    }

    /// Puts namespace `namespace` (created here) on the LAN at `address` through a veth named `veth`.
    private func join(_ namespace: String, address: String, veth: String) throws {
        try KernelTest.shell("""
            ip netns add \(namespace) && ip -n \(namespace) link set lo up && \
            ip link add \(veth) type veth peer name eth0 netns \(namespace) && \
            ip link set \(veth) master \(bridge) up && \
            ip -n \(namespace) addr add \(address)/24 dev eth0 && ip -n \(namespace) link set eth0 up
            """)
    }

    /// An outside client at 192.168.77.<host> whose `routes` (destination prefixes) go through node `via`.
    @discardableResult
    func addClient(_ host: Int, routes: [String] = [], via node: Int = 1) throws -> String {
        let namespace = "\(prefix)-c\(host)", address = "192.168.77.\(host)"
        try join(namespace, address: address, veth: "\(prefix)c\(host)")
        for route in routes { try KernelTest.shell("ip -n \(namespace) route add \(route) via \(nodes[node - 1].address)") }
        clients[namespace] = address
        return namespace
    }

    /// Pod `number` of node `node` at 10.244.<node>.<number + 1>, answering TCP 8080 and UDP 5353
    /// with its name (`pod<node>-<number>`).
    @discardableResult
    func addPod(node index: Int, number: Int) throws -> Pod {
        let node = nodes[index - 1]
        let namespace = "\(prefix)-p\(index)-\(number)", name = "pod\(index)-\(number)", address = "10.244.\(index).\(number + 1)"
        let veth = "\(prefix)p\(index)x\(number)"
        try KernelTest.shell("""
            ip netns add \(namespace) && ip -n \(namespace) link set lo up && \
            ip -n \(node.namespace) link add \(veth) type veth peer name eth0 netns \(namespace) && \
            ip -n \(node.namespace) addr add 10.244.\(index).1/32 dev \(veth) && ip -n \(node.namespace) link set \(veth) up && \
            ip -n \(node.namespace) route add \(address)/32 dev \(veth) && \
            ip -n \(namespace) addr add \(address)/32 dev eth0 && ip -n \(namespace) link set eth0 up && \
            ip -n \(namespace) route add 10.244.\(index).1/32 dev eth0 && \
            ip -n \(namespace) route add default via 10.244.\(index).1
            """)
        processes.append(try spawn(["ip", "netns", "exec", namespace, "python3", folder.appendingPathComponent("pod.py").path, name]))
        let pod = Pod(name: name, namespace: namespace, address: address, node: index)
        pods.append(pod)
        try waitUntil("\(name) answers", timeout: 180) { (try? request(from: node.namespace, address, 8080)) == name }
        return pod
    }

    /// Stops pod `pod`'s server and deletes its namespace.
    func removePod(_ pod: Pod) throws {
        try KernelTest.shell("ip netns pids \(pod.namespace) | xargs -r kill; ip netns del \(pod.namespace)")
        pods.removeAll { $0.namespace == pod.namespace }
    }

    /// A TCP listener on `port` of every address of node `node`, answering `name`.
    func listen(node: Int, port: UInt16, name: String) throws {
        processes.append(try spawn(["ip", "netns", "exec", nodes[node - 1].namespace, "python3",
                                    folder.appendingPathComponent("listen.py").path, "\(port)", name]))
        try waitUntil("node \(node) listens on \(port)", timeout: 120) {
            (try? request(from: nodes[node - 1].namespace, "127.0.0.1", port)) == name
        }
    }

    /// A TCP listener on `port` of pod `pod` answering each connection with the address it came
    /// from, as the pod sees it (whether a node kept the client's address or masqueraded it).
    func listenForPeers(pod: Pod, port: UInt16) throws {
        processes.append(try spawn(["ip", "netns", "exec", pod.namespace, "python3", folder.appendingPathComponent("peer.py").path, "\(port)"]))
        try waitUntil("\(pod.name) answers peers on \(port)", timeout: 120) {
            (try? request(from: pod.namespace, "127.0.0.1", port)) == "127.0.0.1"
        }
    }

    /// One HTTP/1.1 GET of `path` from namespace `namespace` to `address`:`port`: the whole answer
    /// (status line, headers, body); throws when the connection fails.
    func httpGet(from namespace: String, _ address: String, _ port: UInt16, path: String = "/healthz", timeout: Double = 3) throws -> String {
        try Self.inNamespace(namespace) {
            let connection = try TCPClient.Connection(address, port, timeout: timeout)
            defer { connection.close() }
            let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address):\(port)\r\nConnection: close\r\n\r\n".utf8)
            guard send(connection.descriptor, request, request.count, 0) == request.count else {
                throw TCPClient.Failure(description: "send to \(address):\(port): \(String(cString: strerror(errno)))")
            }
            var answer: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(connection.descriptor, &buffer, buffer.count, 0)
                if count <= 0 { break }
                answer += buffer[..<count]
            }
            return String(decoding: answer, as: UTF8.self)
        }
    }

    /// Sends one TCP message (or UDP datagram) from namespace `namespace` to `address`:`port` and
    /// returns the answer's first line; throws when nothing comes back within `timeout` seconds.
    /// The calling thread enters the namespace for the request (no process is started).
    func request(from namespace: String, _ address: String, _ port: UInt16, udp: Bool = false, timeout: Double = 3) throws -> String {
        try Self.inNamespace(namespace) {
            udp ? try TCPClient.udpRequest(address, port, timeout: timeout) : try TCPClient.request(address, port, timeout: timeout)
        }
    }

    /// Runs `body` with the calling thread in network namespace `namespace` (`ip netns` name), then puts it back.
    static func inNamespace<Result>(_ namespace: String, _ body: () throws -> Result) throws -> Result {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        let target = open("/run/netns/\(namespace)", O_RDONLY | O_CLOEXEC)
        defer { close(original); close(target) }
        guard original >= 0, target >= 0, setns(target, newNetworkNamespace) == 0 else {
            throw TCPClient.Failure(description: "cannot enter network namespace \(namespace): \(String(cString: strerror(errno)))")
        }
        defer { _ = setns(original, newNetworkNamespace) }
        return try body()
    }

    /// `CLONE_NEWNET`, which Swift's Glibc module does not export.
    private static let newNetworkNamespace: CInt = 0x4000_0000

    /// `setns(2)`, which Swift's Glibc module does not export (glibc declares it only with `_GNU_SOURCE`).
    private static func setns(_ fd: CInt, _ type: CInt) -> CInt {
        typealias SetNS = @convention(c) (CInt, CInt) -> CInt
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return -1 }
        return unsafeBitCast(symbol, to: SetNS.self)(fd, type)
    }

    /// Writes manifest `name` (read by every node's agent).
    func writeManifest(_ name: String, _ text: String) throws {
        let url = folder.appendingPathComponent("manifests").appendingPathComponent(name)
        let temporary = folder.appendingPathComponent(".\(name).tmp")
        try text.write(to: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary.path, url.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// The arguments every node's agent gets: the manifests, its own state file and node name.
    func agentArguments(node: Int) -> [String] {
        ["--manifests", folder.appendingPathComponent("manifests").path, "--node-name", nodes[node - 1].name,
         "--state-file", folder.appendingPathComponent("state-\(node).json").path]
    }

    /// Starts node `node`'s agent daemon with `arguments` after the common ones; its log is `agent-<node>.log`.
    func startAgent(node: Int, _ arguments: [String]) throws {
        let log = folder.appendingPathComponent("agent-\(node).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        agents[node] = try spawn(["ip", "netns", "exec", nodes[node - 1].namespace, KernelTest.product("ipvs-agent")]
                                 + agentArguments(node: node) + arguments, output: handle)
    }

    /// Stops node `node`'s agent (SIGTERM) and waits for it.
    func stopAgent(node: Int) {
        guard let agent = agents.removeValue(forKey: node) else { return }
        agent.terminate()
        agent.waitUntilExit()
    }

    /// Node `node`'s agent log.
    func agentLog(node: Int) -> String {
        (try? String(contentsOf: folder.appendingPathComponent("agent-\(node).log"), encoding: .utf8)) ?? ""
    }

    /// Runs `command` in node `node`'s namespace and returns its output (the test fails when it fails).
    @discardableResult
    func shell(node: Int, _ command: String) throws -> String {
        try KernelTest.shell("ip netns exec \(nodes[node - 1].namespace) sh -c '\(command)'")
    }

    private func spawn(_ arguments: [String], output: FileHandle? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = output ?? FileHandle.nullDevice
        try process.run()
        return process
    }

    // MARK: - Scripts

    /// `listen.py PORT NAME`: accepts TCP on every address and answers NAME.
    static let listenerScript = """
        import socket, sys, threading
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
        def answer(c):
            try:
                c.recv(100); c.sendall(sys.argv[2].encode() + b"\\n")
            except OSError:
                pass
            c.close()
        while True:
            c, _ = s.accept()
            threading.Thread(target=answer, args=(c,), daemon=True).start()
        """

    /// `peer.py PORT`: accepts TCP on every IPv4 address and answers the address each connection came from.
    static let peerScript = """
        import socket, sys, threading
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
        def answer(c, peer):
            try:
                c.recv(100); c.sendall(peer[0].encode() + b"\\n")
            except OSError:
                pass
            c.close()
        while True:
            c, peer = s.accept()
            threading.Thread(target=answer, args=(c, peer), daemon=True).start()
        """
}
