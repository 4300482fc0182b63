import ArgumentParser
import Foundation
import IPVSAgent
import TestSupport

/// `api-bench MANIFESTS --kubeconfig FILE --samples-file FILE`: `make bench`'s API server workload.
/// Serves the Services and EndpointSlices of gen-inputs.py's manifests (read with the agent's own
/// decoder) from the tests' `TestAPIServer`, shaped as `kubectl get -o json` prints them
/// (`APIObjects`), over TLS with a test CA and a bearer token, and writes the kubeconfig the agent
/// follows it with. Then it takes commands on stdin, one a line, and answers on stdout:
///
/// - `load RATE`: from now on, RATE watch events a second to the background Services (every
///   Service but the samples'), each turning the first endpoint of one of them not ready, or ready
///   again, in turn; answers `load RATE`.
/// - `change K`: sends sample K's change, one endpoint added to the K-th Service (by name), and
///   answers `sent K MICROSECONDS` (wall clock, since the epoch) taken right before the event is
///   written to the watches.
/// - `rate`: answers `rate EVENTS SECONDS`, the background events sent since `load` and over what time.
///
/// Exits at the end of stdin.
@main
struct APIBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-bench",
        abstract: "The test API server serving gen-inputs.py's manifests, for make bench's API server workload.")

    @Argument(help: "The manifests folder of one gen-inputs.py size.")
    var manifests: String

    @Option(help: "Where to write the agent's kubeconfig (TLS with the test CA, a bearer token).")
    var kubeconfig: String

    @Option(help: "How many Services get a measured change (the first ones by name; the others take the background events).")
    var samples = 100

    @Option(help: "Where to write the samples, one line each: INDEX VIP:PORT ENDPOINT:PORT (the endpoint its change adds).")
    var samplesFile: String

    func run() throws {
        let services = try Self.read(manifests)
        guard samples >= 1, samples < services.count, samples <= 62_500 else {
            throw ValidationError("--samples must be at least 1 and less than the \(services.count) Services of \(manifests) (and at most 62500)")
        }
        let certificates = try TestCertificates.make()
        let server = TestAPIServer(certificates: certificates, tokens: ["bench-token"])
        for service in services {
            server.put(TestAPIServer.services, APIObjects.service(service.name, namespace: service.namespace,
                                                                  clusterIP: service.clusterIP, port: service.port))
            server.put(TestAPIServer.endpointSlices, service.slice(notReady: []))
        }
        let port = try server.start()
        try TestAPIServer.kubeconfig(port: port, authority: certificates.authority, token: "bench-token", name: "bench")
            .write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        // A change adds an endpoint from 198.18.0.0/15 (RFC 2544's benchmark addresses): no pod has one.
        let added = (0..<samples).map { "198.18.\($0 / 250).\($0 % 250 + 1)" }
        try (0..<samples).map { "\($0) \(services[$0].clusterIP):\(services[$0].port) \(added[$0]):\(services[$0].targetPort)\n" }
            .joined().write(toFile: samplesFile, atomically: true, encoding: .utf8)
        let load = BackgroundLoad(server: server, services: Array(services[samples...]))
        say("ready \(port) \(services.count)")

        while let line = readLine() {
            let words = line.split(separator: " ").map(String.init)
            switch (words.first, words.count) {
            case ("load", 2):
                guard let rate = Double(words[1]), rate > 0 else { say("error: load takes a positive rate"); continue }
                load.start(rate: rate)
                say("load \(words[1])")
            case ("change", 2):
                guard let k = Int(words[1]), (0..<samples).contains(k) else { say("error: change takes a sample 0..<\(samples)"); continue }
                let service = services[k]
                let slice = service.slice(notReady: [], adding: added[k])
                let sent = Self.wallMicroseconds()
                server.put(TestAPIServer.endpointSlices, slice)
                say("sent \(k) \(sent)")
            case ("rate", 1):
                let (events, seconds) = load.sent()
                say("rate \(events) \(String(format: "%.3f", seconds))")
            default:
                say("error: unknown command '\(line)' (load RATE, change K, rate)")
            }
        }
        load.stop()
        server.stop()
        try? FileManager.default.removeItem(atPath: certificates.folder)
    }

    /// One Service of the manifests with its one EndpointSlice, as `APIObjects` can shape them.
    struct BenchService: Sendable {
        var namespace: String
        var name: String
        var clusterIP: String
        var port: Int
        var targetPort: Int
        var sliceName: String
        var addresses: [String]

        func slice(notReady: Set<String>, adding extra: String? = nil) -> String {
            APIObjects.slice(sliceName, service: name, namespace: namespace, addresses: addresses + (extra.map { [$0] } ?? []),
                             notReady: notReady, port: targetPort)
        }
    }

    /// The Services of `folder` with their slices, sorted by name; refuses what gen-inputs.py does
    /// not write (more ports or slices, not a TCP port, a target port other than its slice's).
    static func read(_ folder: String) throws -> [BenchService] {
        let source = ManifestSource(paths: [folder], logger: .init(label: "api-bench"))
        let files = source.files()
        if let issue = files.issues.first { throw ValidationError("cannot read \(folder): \(issue)") }
        var services: [ObjectName: KubeService] = [:]
        var slices: [ObjectName: EndpointSlice] = [:]
        for file in files.files {
            let decoding = ManifestDecoder.decode(try String(contentsOfFile: file, encoding: .utf8), file: file)
            if let issue = decoding.issues.first { throw ValidationError("\(file): \(issue)") }
            for object in decoding.objects {
                switch object {
                case .service(let service): services[service.name] = service
                case .endpointSlice(let slice):
                    let service = ObjectName(namespace: slice.name.namespace, name: slice.serviceName ?? "")
                    guard slices[service] == nil else { throw ValidationError("\(file): Service \(service) has a second EndpointSlice \(slice.name); api-bench serves one each") }
                    slices[service] = slice
                }
            }
        }
        guard !services.isEmpty else { throw ValidationError("no Services in \(folder): give it a manifests folder of gen-inputs.py") }
        return try services.keys.sorted().map { name in
            let service = services[name]!
            guard let slice = slices[name] else { throw ValidationError("Service \(name) of \(folder) has no EndpointSlice") }
            guard service.ports.count == 1, let port = service.ports.first, port.transport == .tcp, let clusterIP = service.clusterIPs.first,
                  slice.ports.count == 1, case .number(let target) = port.targetPort, slice.ports[0].port == target else {
                throw ValidationError("Service \(name) of \(folder) is not one TCP port with a ClusterIP and a numbered target port matching its slice's, as gen-inputs.py writes")
            }
            return BenchService(namespace: name.namespace, name: name.name, clusterIP: "\(clusterIP)", port: Int(port.port),
                                targetPort: Int(target), sliceName: slice.name.name,
                                addresses: slice.endpoints.compactMap(\.address).map { "\($0)" })
        }
    }

    static func wallMicroseconds() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return time.tv_sec * 1_000_000 + time.tv_nsec / 1000
    }
}

/// A line on stdout, written at once (the guest script reads it through a pipe).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The background watch events: RATE a second, evenly spaced, each flipping the readiness of the
/// first endpoint of the next background Service in turn (a change the agent writes to the kernel).
final class BackgroundLoad: @unchecked Sendable {
    private let server: TestAPIServer
    private let services: [APIBench.BenchService]
    private let lock = NSLock()
    private var running = false
    private var events = 0
    private var started = Date()

    init(server: TestAPIServer, services: [APIBench.BenchService]) {
        self.server = server
        self.services = services
    }

    func start(rate: Double) {
        let first = lock.withLock { () -> Bool in
            defer { running = true; events = 0; started = Date() }
            return !running
        }
        guard first else { return }
        let interval = 1 / rate
        Thread.detachNewThread { [self] in
            var next = Date()
            var n = 0
            var notReady = Set<Int>()
            while lock.withLock({ running }) {
                Thread.sleep(until: next)
                let index = n % services.count
                if !notReady.insert(index).inserted { notReady.remove(index) }
                let service = services[index]
                server.put(TestAPIServer.endpointSlices,
                           service.slice(notReady: notReady.contains(index) ? [service.addresses[0]] : []))
                n += 1
                lock.withLock { events = n }
                // Behind (the machine stalled): the next one now, without a burst to catch up.
                next = max(next.addingTimeInterval(interval), Date())
            }
        }
    }

    /// Events sent since `start` and the seconds since.
    func sent() -> (Int, Double) { lock.withLock { (events, Date().timeIntervalSince(started)) } }

    func stop() { lock.withLock { running = false } }
}
