import ArgumentParser
import Foundation
import HealthCheck
import IPVS
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOPosix
import Prometheus

// MARK: - HealthBench

/// `make bench`'s health workload: the HealthCheck library's checker, as the agent runs it, against N
/// loopback TCP backends; then K of them are killed and their detection latency is measured.
@main
struct HealthBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health-bench",
        abstract: "Measures HealthChecker's CPU, memory and detection latency on N loopback TCP backends.",
        discussion: """
            Starts SERVER (Benchmarks/health/health-backends.c) with N backends on 127.1.x.y:PORT, checks them \
            with HealthChecker on MultiThreadedEventLoopGroup.singleton with TCP checks and metrics recorded \
            into a Prometheus registry (as ipvs-agent does), \
            waits WARMUP seconds, measures this process's CPU time (getrusage: every thread, user + system) \
            over WINDOW seconds, then kills K backends spread over the range and records, for each, the time \
            from the kill to its transition to down. Prints a table, or results.tsv rows with --tsv.
            """)

    @Option(name: .long, help: "The health-backends program.")
    var server: String

    @Option(name: .long, help: "Backends to check.")
    var backends = 10_000

    @Option(name: .long, help: "The port every backend listens on.")
    var port: UInt16 = 18_080

    @Option(name: .long, help: "A.B.0.0: backend i is A.B.(i / 250).(i % 250 + 1), for the server, the floor and the checker.")
    var baseAddress = "127.1.0.0"

    @Option(name: .long, help: "A command SERVER runs under, split on spaces (e.g. 'ip netns exec NS taskset -c 1').")
    var serverLauncher: String?

    @Option(name: .long, help: "Check interval in milliseconds.")
    var interval = 1_000

    @Option(name: .long, help: "Check timeout in milliseconds.")
    var timeout = 500

    @Option(name: .long, help: "Failures in a row that take a backend down.")
    var fall = 2

    @Option(name: .long, help: "Successes in a row that bring a backend up.")
    var rise = 2

    @Option(name: .long, help: "Backends to kill (default: 1% of the backends, at least 1).")
    var kill: Int?

    @Option(name: .long, help: "Backends per virtual service.")
    var perService = 100

    @Option(name: .long, help: "Seconds of checking before the CPU window.")
    var warmup = 5.0

    @Option(name: .long, help: "Seconds over which CPU is measured.")
    var window = 10.0

    @Option(name: .long, help: "The health-floor program (Benchmarks/health/health-floor.c): run first, on the same backends, warm-up and window, for comparison.")
    var floor: String?

    @Option(name: .long, help: "The repetition number written in --tsv rows.")
    var repetition = 1

    @Flag(name: .long, help: "Print results.tsv rows (workload, tool, size, repetition, value, unit).")
    var tsv = false

    mutating func validate() throws {
        guard (1...62_500).contains(backends) else { throw ValidationError("--backends must be 1 to 62500") }
        guard interval > 0, timeout > 0, fall > 0, rise > 0, perService > 0 else {
            throw ValidationError("--interval, --timeout, --fall, --rise and --per-service must be positive")
        }
        if let kill, !(1...backends).contains(kill) { throw ValidationError("--kill must be 1 to --backends") }
        guard BackendServer.base(baseAddress) != nil else { throw ValidationError("--base-address must be an IPv4 address A.B.0.0") }
    }

    func run() async throws {
        let killCount = kill ?? max(1, backends / 100)
        let backendServer = try BackendServer(
            program: server, launcher: serverLauncher?.split(separator: " ").map(String.init) ?? [], count: backends, port: port,
            base: baseAddress)
        defer { backendServer.stop() }
        let floorResult = try floor.map { try runFloor($0) }

        let configuration = HealthCheckConfiguration(
            kind: .tcp, interval: .milliseconds(interval), timeout: .milliseconds(timeout), rise: rise, fall: fall)
        let targets = (0..<backends).map { index in
            let service = ServiceKey.address(
                .tcp, IPAddress("10.96.\(index / perService / 250).\(index / perService % 250 + 1)")!, port: 80)
            return HealthTarget(
                id: BackendID(service: service, server: RealServerID(address: IPAddress(backendServer.address(of: index))!, port: port)),
                configuration: configuration)
        }
        var logger = Logger(label: "health-bench")
        logger.logLevel = .error
        // Every check records its metrics, as in the agent (which bootstraps the same factory).
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
        let checker = HealthChecker(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        try checker.update(targets: targets)

        // Each backend's first transition to down: when, and the verdict that caused it.
        let downs = NIOLockedValueBox<[BackendID: (time: Date, reason: String)]>([:])
        let result = try await withThrowingTaskGroup(of: Void.self) { tasks -> Measurement in
            tasks.addTask { try await checker.run() }
            tasks.addTask {
                for await transition in checker.transitions where transition.to == .down {
                    downs.withLockedValue { $0[transition.backend] = $0[transition.backend] ?? (transition.time, transition.reason) }
                }
            }
            defer { tasks.cancelAll() }
            return try await measure(checker: checker, targets: targets, server: backendServer, killCount: killCount, downs: downs)
        }
        print(tsv ? result.tsv(size: backends, repetition: repetition) : result.table(backends: backends, killed: killCount))
        if let floorResult {
            print(tsv ? floorResult.tsv(size: backends, repetition: repetition) : floorResult.table)
        }
    }

    /// Runs the C floor against the backends and reads its line: `cpu PERCENT checks-per-second RATE failures N`.
    private func runFloor(_ program: String) throws -> FloorMeasurement {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = [String(backends), String(port), String(warmup), String(window), baseAddress]
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard process.terminationStatus == 0, fields.count == 6, let cpu = Double(fields[1]), let rate = Double(fields[3]),
            let failures = Int(fields[5])
        else { throw BenchError("the floor \(program) printed '\(text)' (status \(process.terminationStatus))") }
        return FloorMeasurement(
            cpuPercent: cpu, checksPerSecond: rate, failures: failures, targetRate: Double(backends) * 1_000 / Double(interval))
    }

    // MARK: - Measuring

    /// Live backends that went down: the checker or the host is overloaded, or a check is wrong. Says why (the
    /// verdict that took each down first) on stderr.
    private func reportLiveBackendsDown(_ downs: NIOLockedValueBox<[BackendID: (time: Date, reason: String)]>,
                                        except killed: Set<BackendID> = [], when: String) {
        let down = downs.withLockedValue { $0 }.filter { !killed.contains($0.key) }
        let grouped = Dictionary(grouping: down.values.map(\.reason)) { $0 }
        for (reason, backends) in grouped.sorted(by: { $0.value.count > $1.value.count }).prefix(5) {
            FileHandle.standardError.write(Data("health-bench: \(backends.count) live backends down \(when): \(reason)\n".utf8))
        }
    }

    private func measure(
        checker: HealthChecker, targets: [HealthTarget], server: BackendServer, killCount: Int,
        downs: NIOLockedValueBox<[BackendID: (time: Date, reason: String)]>
    ) async throws -> Measurement {
        try await Task.sleep(for: .seconds(warmup))
        let checksBefore = checker.status().reduce(0) { $0 + $1.state.checks }
        let before = ProcessUsage.now()
        try await Task.sleep(for: .seconds(window))
        let after = ProcessUsage.now()
        let checksAfter = checker.status().reduce(0) { $0 + $1.state.checks }
        let rss = ProcessUsage.memoryMiB("VmRSS")
        let downBeforeKill = downs.withLockedValue { $0.count }
        if downBeforeKill > 0 { reportLiveBackendsDown(downs, when: "before the kill") }

        // Kill backends spread evenly over the range, so each service loses about as many.
        let stride = max(1, targets.count / killCount)
        let victims = (0..<killCount).map { ($0 * stride) % targets.count }
        let killedAt = try server.kill(victims)
        let bound = Double(fall * interval + timeout) / 1_000
        let deadline = ContinuousClock.now + .seconds(bound + 2 * Double(interval) / 1_000 + 1)
        let victimIDs = Set(victims.map { targets[$0].id })
        while ContinuousClock.now < deadline {
            if downs.withLockedValue({ state in victimIDs.allSatisfy { state[$0] != nil } }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let (latencies, falseDowns) = downs.withLockedValue { state in
            (victimIDs.compactMap { state[$0].map { $0.time.timeIntervalSince(killedAt) } }.sorted(),
             state.keys.filter { !victimIDs.contains($0) }.count)
        }
        if falseDowns > 0 { reportLiveBackendsDown(downs, except: victimIDs, when: "after the kill") }
        return Measurement(
            cpuPercent: after.cpuPercent(since: before),
            rssMiB: rss,
            checksPerSecond: Double(checksAfter - checksBefore) / (after.wallSeconds - before.wallSeconds),
            targetRate: Double(backends) * 1_000 / Double(interval),
            latencies: latencies, missed: victimIDs.count - latencies.count,
            falseDowns: max(falseDowns, downBeforeKill), boundSeconds: bound, intervalSeconds: Double(interval) / 1_000,
            timeoutSeconds: Double(timeout) / 1_000, fall: fall, rise: rise)
    }
}
