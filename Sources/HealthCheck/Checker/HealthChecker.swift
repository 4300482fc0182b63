import Foundation
import IPVS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

// MARK: - HealthChecker

/// Checks backends on an event loop group and reports their transitions: the agent's health checker.
///
/// The agent owns the event loop group, hands the checker its targets with ``update(targets:)`` whenever
/// endpoints change, runs it in its `ServiceGroup`, and consumes ``transitions`` to recompute the weights of
/// the affected services from ``healthStates(of:)``: what a verdict means for a load balancer is its user's
/// decision, not the checker's.
///
/// ```swift
/// let checker = HealthChecker(eventLoopGroup: group, logger: logger)
/// // On every endpoints change: one target per (service, endpoint) with the service's configuration.
/// try checker.update(targets: targets)
/// // In the agent's ServiceGroup (or a task group):
/// try await checker.run()
/// // The reconciler: on each transition, recompute that service and apply the difference (drain the
/// // transitions already buffered first and recompute each affected service once).
/// for await transition in checker.transitions {
///     let states = checker.healthStates(of: transition.backend.service)
///     try apply(weights(from: states), to: transition.backend.service)  // diff against the kernel, minimal ops
/// }
/// // The status endpoint: JSONEncoder().encode(checker.status())
/// ```
///
/// HTTP, UDP and exec checks run on one event loop of the group each, scheduled with `scheduleTask`, with no
/// task or thread per check; exec checks block a thread of the checker's own thread pool (``execThreads``)
/// while the program runs. TCP checks, the common case, never touch an event loop: one epoll thread of the
/// checker's own starts each on a bare non-blocking socket when it is due, completes it and schedules the
/// next. Checks start when ``run()`` starts and stop when it returns (graceful shutdown or cancellation),
/// which also finishes ``transitions``.
public final class HealthChecker: Service, Sendable {
    /// The transitions of all backends, in order per backend. One consumer; unbounded buffer (transitions are
    /// rare: at most one per `rise` or `fall` checks of a backend). Finishes when ``run()`` returns.
    public let transitions: AsyncStream<HealthTransition>

    /// Threads for exec checks: at most this many programs run at once; others wait (their timeout runs).
    public let execThreads: Int

    private let group: any EventLoopGroup
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let context: ProbeContext
    private let threadPool: NIOThreadPool
    private let continuation: AsyncStream<HealthTransition>.Continuation
    private let state = NIOLockedValueBox(CheckerState())

    struct CheckerState {
        var phase = Phase.idle
        var runners: [BackendID: BackendRunner] = [:]
        /// The checked backends of each service, for ``HealthChecker/healthStates(of:)``.
        var byService: [ServiceKey: Set<BackendID>] = [:]

        mutating func remove(_ id: BackendID) {
            runners[id] = nil
            byService[id.service]?.remove(id)
            if byService[id.service]?.isEmpty == true { byService[id.service] = nil }
        }

        enum Phase { case idle, running, finished }
    }

    /// - Parameters:
    ///   - eventLoopGroup: The loops checks run on (usually the agent's `MultiThreadedEventLoopGroup`).
    ///   - execThreads: Threads for exec checks (default 4).
    ///   - logger: Where transitions are logged (`notice` up, `warning` down) and single failures (`debug`).
    ///   - now: The wall clock stamped on results and transitions; tests may pass their own.
    public init(
        eventLoopGroup: any EventLoopGroup,
        execThreads: Int = 4,
        logger: Logger = Logger(label: "health-check"),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.group = eventLoopGroup
        self.execThreads = max(1, execThreads)
        self.logger = logger
        self.now = now
        self.threadPool = NIOThreadPool(numberOfThreads: max(1, execThreads))
        self.context = ProbeContext(threadPool: threadPool)
        (transitions, continuation) = AsyncStream.makeStream(of: HealthTransition.self, bufferingPolicy: .unbounded)
    }

    // MARK: - Targets

    /// Replaces the set of checked backends. Unchanged targets keep their schedule and state; new ones start
    /// in their initial state; removed ones stop (a check in flight is dropped); a target whose configuration
    /// or service name changed restarts its checks but keeps its status and counters. Targets with
    /// ``HealthCheckKind/disabled`` are not checked.
    ///
    /// - Throws: ``HealthTargetError`` for the first invalid target; then nothing changes.
    public func update(targets: [HealthTarget]) throws {
        var wanted: [BackendID: HealthTarget] = [:]
        for target in targets where target.configuration.kind != .disabled {
            do {
                try target.configuration.validate()
            } catch {
                throw HealthTargetError(target: target, reason: error.description)
            }
            wanted[target.id] = target
        }
        let current = state.withLockedValue { $0.runners }
        var probes: [BackendID: any HealthProbe] = [:]
        for (id, target) in wanted where current[id]?.target != target {
            do {
                probes[id] = try context.makeProbe(for: target)
            } catch {
                throw HealthTargetError(target: target, reason: "\(error)")
            }
        }
        let time = now()
        // One closure for every runner: a closure per runner would be one more object for each check to reach.
        let record: @Sendable (BackendRunner, CheckOutcome, Int64) -> Void = { [weak self] runner, outcome, nanoseconds in
            self?.record(runner, outcome, nanoseconds)
        }
        let (started, stopped) = state.withLockedValue { state -> ([BackendRunner], [BackendRunner]) in
            guard state.phase != .finished else { return ([], []) }
            var started: [BackendRunner] = []
            var stopped: [BackendRunner] = []
            for (id, runner) in state.runners where wanted[id] == nil {
                stopped.append(runner)
                state.remove(id)
            }
            for (id, probe) in probes {
                guard let target = wanted[id] else { continue }
                var machine = HealthStateMachine(target: target, at: time)
                if let old = state.runners[id] {
                    // Stop (and drop the metrics of) the old runner before the new one registers its own.
                    old.stop()
                    stopped.append(old)
                    machine = old.machine
                    machine.reconfigure(rise: target.configuration.rise, fall: target.configuration.fall, serviceName: target.serviceName)
                }
                let runner = BackendRunner(target: target, machine: machine, eventLoop: group.next(), probe: probe, record: record)
                state.runners[id] = runner
                state.byService[id.service, default: []].insert(id)
                if state.phase == .running { started.append(runner) }
            }
            return (started, stopped)
        }
        stopped.forEach { $0.stop() }  // idempotent for the replaced ones stopped above
        started.forEach { $0.start() }
        if !probes.isEmpty || !stopped.isEmpty {
            logger.debug("health check targets updated", metadata: [
                "targets": "\(wanted.count)", "started": "\(probes.count)", "stopped": "\(stopped.count)",
            ])
        }
    }

    // MARK: - Status

    /// Every checked backend's health, sorted by backend: for the agent's status endpoint.
    public func status() -> [BackendHealth] {
        let runners = state.withLockedValue { Array($0.runners.values) }
        return runners.map { runner in
            BackendHealth(
                backend: runner.target.id, serviceName: runner.target.serviceName,
                checkKind: runner.target.configuration.kind.name, state: runner.machine.state)
        }
        .sorted { $0.backend < $1.backend }
    }

    /// The health state of every checked backend, from which the user decides the weights.
    public func healthStates() -> [BackendID: HealthState] {
        let runners = state.withLockedValue { $0.runners }
        return runners.mapValues { $0.machine.state }
    }

    /// The health state of the checked backends of one service: what its user needs to recompute
    /// that service after a transition, without copying every backend's state.
    public func healthStates(of service: ServiceKey) -> [BackendID: HealthState] {
        let runners = state.withLockedValue { state in
            (state.byService[service] ?? []).compactMap { state.runners[$0] }
        }
        return Dictionary(uniqueKeysWithValues: runners.map { ($0.target.id, $0.machine.state) })
    }

    /// The health state of one backend; `nil` when it is not checked.
    public func state(of backend: BackendID) -> HealthState? {
        state.withLockedValue { $0.runners[backend] }?.machine.state
    }

    /// The runner of one backend, for tests that check a schedule was kept.
    func runner(for backend: BackendID) -> BackendRunner? {
        state.withLockedValue { $0.runners[backend] }
    }

    // MARK: - Running

    /// Starts the checks of all targets, and of targets added later, until graceful shutdown or cancellation;
    /// then stops them and finishes ``transitions``. Runs once.
    public func run() async throws {
        let runners = state.withLockedValue { state -> [BackendRunner]? in
            guard state.phase == .idle else { return nil }
            state.phase = .running
            return Array(state.runners.values)
        }
        guard let runners else {
            logger.error("health checker run() called twice; the second call does nothing")
            return
        }
        threadPool.start()
        runners.forEach { $0.start() }
        logger.info("health checker started", metadata: ["targets": "\(runners.count)"])

        try? await gracefulShutdown()

        let stopping = state.withLockedValue { state -> [BackendRunner] in
            state.phase = .finished
            defer {
                state.runners = [:]
                state.byService = [:]
            }
            return Array(state.runners.values)
        }
        stopping.forEach { $0.stop() }
        context.shutdown()
        continuation.finish()
        try? await threadPool.shutdownGracefully()
        logger.info("health checker stopped", metadata: ["targets": "\(stopping.count)"])
    }

    // MARK: - Results

    private func record(_ runner: BackendRunner, _ outcome: CheckOutcome, _ nanoseconds: Int64) {
        let result = CheckResult(outcome, latency: .nanoseconds(nanoseconds), at: now())
        guard let (transition, status) = runner.apply(result) else { return }
        runner.metrics.recordCheck(success: outcome.isSuccess, latencyNanoseconds: nanoseconds)
        if case .failure(let reason) = outcome {
            logger.debug("health check failed", metadata: [
                "backend.address": "\(runner.target.id.server.address)", "backend.port": "\(runner.target.id.server.port)",
                "service": "\(runner.target.serviceName)", "reason": "\(reason)",
            ])
        }
        guard let transition else { return }
        runner.metrics.recordState(status)
        if transition.from != transition.to { runner.metrics.recordTransition(to: transition.to) }
        log(transition)
        continuation.yield(transition)
    }

    private func log(_ transition: HealthTransition) {
        let metadata: Logger.Metadata = [
            "backend.address": "\(transition.backend.server.address)",
            "backend.port": "\(transition.backend.server.port)",
            "service": "\(transition.serviceName)",
            "service.key": "\(transition.backend.service)",
            "reason": "\(transition.reason)",
            "latency_ms": "\(String(format: "%.1f", transition.latency.seconds * 1_000))",
            "health.from": "\(transition.from)",
            "health.to": "\(transition.to)",
            "health.consecutive": "\(transition.consecutive)",
            "health.previous_for_ms": "\(Int(transition.time.timeIntervalSince(transition.previousSince) * 1_000))",
        ]
        switch (transition.from, transition.to) {
        case (_, .down):
            logger.warning("backend down", metadata: metadata)
        case (.up, .up):
            logger.notice("backend weight changed", metadata: metadata.merging(
                ["health.weight": "\(transition.dynamicWeight.map(String.init) ?? "configured")"]) { $1 })
        default:
            logger.notice("backend up", metadata: metadata)
        }
    }
}

// MARK: - HealthTargetError

/// A target handed to ``HealthChecker/update(targets:)`` that cannot be checked.
public struct HealthTargetError: Error, Hashable, Sendable, CustomStringConvertible {
    public var backend: BackendID
    public var serviceName: String
    public var reason: String

    init(target: HealthTarget, reason: String) {
        self.backend = target.id
        self.serviceName = target.serviceName
        self.reason = reason
    }

    public var description: String {
        "cannot health-check backend \(backend.server) of service \(serviceName) (\(backend.service)): \(reason); fix the service's health check configuration"
    }
}
