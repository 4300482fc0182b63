import Foundation
import XCTest

/// A tiny cluster inside the test's network namespace ("the node"): pods are network namespaces
/// joined by veth pairs, each running a small TCP and UDP server that answers with its name.
/// Every address is in 10.250.0.0/16 or fd00::/8 and stays inside these namespaces.
final class AgentTestCluster {
    struct Pod {
        var name: String
        var namespace: String
        var address: String
        var server: Process?
    }

    private(set) var pods: [Pod] = []
    let folder: URL
    private let prefix = "ap\(getpid())"

    init() throws {
        folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ipvs-agent-test-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Self.serverScript.write(to: folder.appendingPathComponent("pod.py"), atomically: true, encoding: .utf8)
    }

    deinit {
        for pod in pods {
            pod.server?.terminate()
            _ = try? KernelTest.run(["ip", "netns", "del", pod.namespace])
        }
        try? FileManager.default.removeItem(at: folder)
    }

    /// Adds pod number `index` (1-based) at 10.250.<index>.2 and fd00:250:<index>::2 serving TCP
    /// 8080 and UDP 5353 on both.
    @discardableResult
    func addPod(_ index: Int) throws -> Pod {
        let namespace = "\(prefix)-\(index)", name = "pod\(index)", address = "10.250.\(index).2"
        let veth = "\(prefix)v\(index)"
        try KernelTest.shell("""
            ip netns add \(namespace) && \
            ip link add \(veth) type veth peer name eth0 netns \(namespace) && \
            ip addr add 10.250.\(index).1/24 dev \(veth) && ip link set \(veth) up && \
            ip -n \(namespace) link set lo up && ip -n \(namespace) addr add \(address)/24 dev eth0 && \
            ip -n \(namespace) link set eth0 up && ip -n \(namespace) route add default via 10.250.\(index).1 && \
            ip addr add fd00:250:\(index)::1/64 dev \(veth) nodad && \
            ip -n \(namespace) addr add fd00:250:\(index)::2/64 dev eth0 nodad && \
            ip -n \(namespace) -6 route add default via fd00:250:\(index)::1
            """)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["ip", "netns", "exec", namespace, "python3", folder.appendingPathComponent("pod.py").path, name]
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        let pod = Pod(name: name, namespace: namespace, address: address, server: server)
        pods.append(pod)
        // Wait until it answers directly (python starts slowly on an emulated CPU).
        try waitUntil("\(name) answers", timeout: 180) { (try? TCPClient.request(address, 8080, timeout: 1)) == name }
        return pod
    }

    /// Writes `text` as manifest file `name` in the test folder; returns its path.
    @discardableResult
    func writeManifest(_ name: String, _ text: String) throws -> String {
        let url = folder.appendingPathComponent("manifests").appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Write then rename, as editors and ConfigMap updates do.
        let temporary = folder.appendingPathComponent(".\(name).tmp")
        try text.write(to: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary.path, url.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        return url.path
    }

    var manifests: String { folder.appendingPathComponent("manifests").path }
    var stateFile: String { folder.appendingPathComponent("state.json").path }

    /// Runs `ipvs-agent` to completion with the test's state file and no metrics server.
    func agent(_ arguments: [String]) throws -> KernelTest.CommandResult {
        try KernelTest.run([KernelTest.product("ipvs-agent"), "--state-file", stateFile, "--metrics-address", "none", "--node-name", "node-1"] + arguments)
    }

    /// Starts `ipvs-agent` as a daemon, with `environment` added to the test's; its log goes to `log`.
    func startDaemon(_ arguments: [String], log: URL, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: KernelTest.product("ipvs-agent"))
        process.arguments = ["--state-file", stateFile, "--node-name", "node-1"] + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    /// The IPVS table as `ipvsadm -Ln` prints it (real servers with weights).
    func table() throws -> String {
        try KernelTest.shell("ipvsadm -Ln")
    }

    /// The addresses bound on kube-ipvs0 but its IPv6 link-local one (which a new interface gets
    /// anew), as `address/prefix`; empty while the interface is missing.
    func vips() throws -> Set<String> {
        Set(try KernelTest.run(["ip", "-o", "addr", "show", "dev", "kube-ipvs0"]).standardOutput
            .split(separator: " ").filter { $0.contains("/") && !$0.hasPrefix("fe80:") }.map(String.init))
    }

    /// The value of the metric `name` (a counter or gauge without labels) at the agent's
    /// `/metrics` on `address`; 0 when it is not listed.
    func metric(_ name: String, address: String = "127.0.0.1:10249") throws -> Double {
        let line = try KernelTest.shell("curl -sf http://\(address)/metrics").split(separator: "\n")
            .first { $0.hasPrefix("\(name) ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// A minimal manifest: Service `web` (TCP 80 -> named port http, UDP 53 -> dns) on `clusterIP`
    /// with the given pods as endpoints; `notReady` pods are listed but not ready.
    /// Service `web` (TCP `http` 80 -> 8080 and, with `dns`, UDP `dns` 53 -> 5353) and its EndpointSlice;
    /// `annotations` without their `ipvs.swift.dev/` prefix; `extra` is appended to the Service's spec.
    static func webManifest(clusterIP: String = "10.96.0.10", pods: [Pod], notReady: [Pod] = [], dns: Bool = true,
                            annotations: [String: String] = [:], extra: String = "") -> String {
        func endpoint(_ pod: Pod, ready: Bool) -> String {
            "- addresses: [\(pod.address)]\n  conditions: {ready: \(ready)}\n  nodeName: node-1\n  targetRef: {kind: Pod, name: \(pod.name)}"
        }
        let endpoints = pods.map { endpoint($0, ready: true) } + notReady.map { endpoint($0, ready: false) }
        let annotationLines = annotations.isEmpty ? "" : "  annotations:\n" + annotations.sorted { $0.key < $1.key }
            .map { "    ipvs.swift.dev/\($0.key): \"\($0.value)\"" }.joined(separator: "\n")
        return """
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              namespace: default
            \(annotationLines)
            spec:
              clusterIP: \(clusterIP)
              ports:
              - {name: http, protocol: TCP, port: 80, targetPort: http}
            \(dns ? "  - {name: dns, protocol: UDP, port: 53, targetPort: dns}" : "")
            \(extra)
            ---
            \(endpointSlice(name: "web-abc12", service: "web", endpoints: endpoints,
                             ports: ["{name: http, protocol: TCP, port: 8080}"] + (dns ? ["{name: dns, protocol: UDP, port: 5353}"] : [])))
            """
    }

    /// A `discovery.k8s.io/v1` EndpointSlice of `service` in namespace default: `endpoints` are YAML
    /// list items (`- addresses: [...]` and their fields), `ports` flow mappings such as
    /// `{name: http, protocol: TCP, port: 8080}`. Ends with a newline.
    static func endpointSlice(name: String, service: String, addressType: String = "IPv4", endpoints: [String],
                              ports: [String]) -> String {
        let endpointLines = endpoints.isEmpty ? " []" : "\n" + endpoints.joined(separator: "\n")
        return """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: \(name)
              namespace: default
              labels: {kubernetes.io/service-name: \(service)}
            addressType: \(addressType)
            endpoints:\(endpointLines)
            ports:
            \(ports.map { "- " + $0 }.joined(separator: "\n"))

            """
    }

    /// The annotations of TCP health checks every 500 ms with a 300 ms timeout.
    /// The ClusterIP of Service `svc-<index>` in `manyServices`: 10.96.0.1, 10.96.0.2, …
    static func manyClusterIP(_ index: Int) -> String { "10.96.\(index / 250).\(index % 250 + 1)" }

    /// Services `svc-<index>` of `range` in namespace default, TCP 80 on `manyClusterIP(index)` to
    /// target port 8080, each with one EndpointSlice of `endpoints` (pod addresses, all ready).
    static func manyServices(_ range: Range<Int>, endpoints addresses: [String]) -> String {
        let endpoints = addresses.map { "- addresses: [\($0)]\n  conditions: {ready: true}" }
        return range.map { index in
            """
            apiVersion: v1
            kind: Service
            metadata: {name: svc-\(index), namespace: default}
            spec: {clusterIP: \(manyClusterIP(index)), ports: [{name: http, port: 80, targetPort: 8080}]}
            ---
            \(endpointSlice(name: "svc-\(index)-a", service: "svc-\(index)", endpoints: endpoints,
                           ports: ["{name: http, protocol: TCP, port: 8080}"]))
            """
        }.joined(separator: "---\n")
    }

    static let tcpChecks = ["health-check": "tcp", "health-interval": "500ms", "health-timeout": "300ms"]

    static let serverScript = """
        # A pod: answers every TCP message and every UDP datagram with its name, over IPv4 and IPv6.
        import socket, sys, threading
        name = sys.argv[1].encode() + b"\\n"
        def dual(kind):
            s = socket.socket(socket.AF_INET6, kind)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            return s
        def serve_tcp():
            s = dual(socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", 8080)); s.listen(128)
            while True:
                c, _ = s.accept()
                threading.Thread(target=answer, args=(c,), daemon=True).start()
        def answer(c):
            try:
                while c.recv(100):
                    c.sendall(name)
            except OSError:
                pass
            c.close()
        def serve_udp():
            s = dual(socket.SOCK_DGRAM)
            s.bind(("::", 5353))
            while True:
                _, peer = s.recvfrom(100)
                s.sendto(name, peer)
        threading.Thread(target=serve_udp, daemon=True).start()
        serve_tcp()
        """
}

/// Polls `condition` every 200 ms until it holds or `timeout` seconds pass.
func waitUntil(_ what: String, timeout: Double, file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        Thread.sleep(forTimeInterval: 0.2)
    }
    XCTFail("timed out after \(timeout)s waiting until \(what)", file: file, line: line)
    throw CancellationError()
}

/// Small blocking socket clients with timeouts.
enum TCPClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Connects, sends "ping", returns the first line of the answer. The default wait is long: on
    /// the emulated VM, beside another test, a python pod has taken over 3 s to answer an
    /// established connection (the IPVS connection table showed it ESTABLISHED); a test that
    /// expects no answer gives its own shorter timeout.
    static func request(_ address: String, _ port: UInt16, timeout: Double = 10) throws -> String {
        let connection = try Connection(address, port, timeout: timeout)
        defer { connection.close() }
        return try connection.ask()
    }

    /// `request`, or `nil` when it fails, printing why (with the tables a missing answer shows):
    /// for a test's starting point, retried until it holds (see README, "A problem not solved yet").
    static func answer(_ address: String, _ port: UInt16) -> String? {
        do {
            return try request(address, port)
        } catch {
            print("a request to \(address):\(port) failed and is retried: \(error)")
            return nil
        }
    }

    /// Sends one UDP datagram and returns the first line of the answer.
    static func udpRequest(_ address: String, _ port: UInt16, timeout: Double = 3) throws -> String {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { Glibc.close(descriptor) }
        try setTimeout(descriptor, timeout)
        var target = try socketAddress(address, port)
        let sent = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, "ping", 4, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard sent == 4 else { throw Failure(description: "send to \(address):\(port): \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { throw Failure(description: "no UDP answer from \(address):\(port): \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A connection kept open across calls, to check that established connections survive.
    final class Connection {
        let descriptor: Int32
        let address: String

        init(_ address: String, _ port: UInt16, timeout: Double) throws {
            self.address = address
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            try TCPClient.setTimeout(descriptor, timeout)
            var target = try TCPClient.socketAddress(address, port)
            let connected = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(descriptor)
                throw Failure(description: "connect to \(address):\(port): \(reason)")
            }
        }

        func ask() throws -> String {
            guard send(descriptor, "ping", 4, 0) == 4 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            var buffer = [UInt8](repeating: 0, count: 128)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else {
                let reason = count == 0 ? "closed" : String(cString: strerror(errno))
                // For a failure that is rare: what IPVS and conntrack hold for the connections, the
                // client socket's TCP state (unacknowledged data, retransmissions) and the VIPs.
                let tables = (try? KernelTest.shell("""
                    ipvsadm -Lnc 2>&1 | head -n 30; echo '-- conntrack'; grep -F '\(address)' /proc/net/nf_conntrack 2>&1 | head -n 20
                    echo '-- client sockets'; ss -tnio 2>&1 | head -n 20; echo '-- kube-ipvs0'; ip -br addr show kube-ipvs0 2>&1
                    for ns in $(ip netns list | cut -d' ' -f1); do echo "-- $ns sockets"; ip netns exec "$ns" ss -tnio 2>&1 | head -n 10; done
                    """)) ?? ""
                throw Failure(description: "no answer: \(reason)\n\(tables)")
            }
            return String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func close() { Glibc.close(descriptor) }

        /// Closes with a TCP reset (SO_LINGER 0), so IPVS forgets the connection within seconds.
        func reset() {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            Glibc.close(descriptor)
        }
    }

    /// A UDP socket kept across calls: every datagram leaves from the same source port, so the
    /// kernel sees one flow (one conntrack entry), as a resolver's socket does.
    final class Datagrams {
        let descriptor: Int32
        var target: sockaddr_in

        init(_ address: String, _ port: UInt16, timeout: Double) throws {
            descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            try TCPClient.setTimeout(descriptor, timeout)
            target = try TCPClient.socketAddress(address, port)
        }

        /// Sends "ping" and returns the answer, or `nil` when none came within the timeout (a
        /// late answer to an earlier datagram is skipped by the next call only if it is read here).
        func ask() -> String? {
            let sent = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, "ping", 4, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard sent == 4 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 128)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            return String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func close() { Glibc.close(descriptor) }
    }

    static func setTimeout(_ descriptor: Int32, _ seconds: Double) throws {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    static func socketAddress(_ address: String, _ port: UInt16) throws -> sockaddr_in {
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        guard inet_pton(AF_INET, address, &target.sin_addr) == 1 else { throw Failure(description: "bad address \(address)") }
        return target
    }
}
