import Foundation
import NIOCore
import Synchronization

// MARK: - BackendRunner

/// Checks one backend forever on its event loop: one `scheduleTask` per check, no task or thread of its own.
/// TCP checks instead repeat on the ``TCPConnectPoller`` thread, which starts, completes and reschedules them
/// itself (``TCPConnectPoller/RepeatingCheck``): the cheapest path for the most common check.
///
/// Its mutable state sits behind one lock because ``HealthChecker`` reads it from other threads (status,
/// stop); the event loop is the only writer of the schedule. The lock and the state are in the runner itself,
/// and what every check touches comes first: with many backends taking turns, each check finds its
/// runner out of the cache, and every other object or cache line it reaches is one more miss.
final class BackendRunner: Sendable {
    private let state: Mutex<RunnerState>
    private let record: @Sendable (BackendRunner, CheckOutcome, Int64) -> Void
    let metrics: HealthMetrics
    let target: HealthTarget
    let eventLoop: any EventLoop
    private let probe: any HealthProbe

    struct RunnerState {
        var machine: HealthStateMachine
        var stopped = false
        var scheduled: Scheduled<Void>?
        var repeating: TCPConnectPoller.RepeatingCheck?
    }

    init(
        target: HealthTarget, machine: HealthStateMachine, eventLoop: any EventLoop, probe: any HealthProbe,
        record: @escaping @Sendable (BackendRunner, CheckOutcome, Int64) -> Void
    ) {
        self.target = target
        self.eventLoop = eventLoop
        self.probe = probe
        self.record = record
        self.metrics = HealthMetrics(target: target)
        self.state = Mutex(RunnerState(machine: machine))
        metrics.recordState(machine.state.status)
    }

    /// The state machine, read under the lock.
    var machine: HealthStateMachine { state.withLock { $0.machine } }

    /// Records a result in the state machine under the lock; `nil` once stopped (a late result of a removed
    /// or replaced backend is dropped).
    func apply(_ result: CheckResult) -> (transition: HealthTransition?, status: HealthStatus)? {
        state.withLock { state in
            guard !state.stopped else { return nil }
            let transition = state.machine.record(result)
            return (transition, state.machine.state.status)
        }
    }

    // MARK: - Schedule

    /// Schedules the first check after the initial delay, at a random point of the first interval.
    func start() {
        let config = target.configuration
        let delay = CheckSchedule.firstDelay(
            initialDelay: config.initialDelay, interval: config.interval, jitter: config.jitter, random: .random(in: 0..<1))
        if let tcp = probe as? TCPProbe {
            // The check holds its runner (a weak reference would be one more object to reach per check) until
            // `stop()` drops the check and the poller drops it too, after its outcome in flight or when it
            // comes up cancelled.
            let check = TCPConnectPoller.RepeatingCheck(
                address: tcp.address, timeout: .nanoseconds(config.timeout.nanoseconds), interval: config.interval,
                jitter: config.jitter, report: { outcome, nanoseconds in self.record(self, outcome, nanoseconds) })
            let started = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.repeating = check
                return true
            }
            // The poller refuses only after shutdown, when the checker has stopped too.
            if started { tcp.poller.schedule(check, after: delay) }
            return
        }
        schedule(in: delay)
    }

    /// Stops checking; a check in flight finishes but its result is dropped.
    func stop() {
        let (scheduled, repeating, wasStopped) = state.withLock { state -> (Scheduled<Void>?, TCPConnectPoller.RepeatingCheck?, Bool) in
            defer {
                state.stopped = true
                state.scheduled = nil
                state.repeating = nil
            }
            return (state.scheduled, state.repeating, state.stopped)
        }
        scheduled?.cancel()
        repeating?.cancel()
        if !wasStopped { metrics.destroy() }
    }

    private func schedule(in delay: TimeAmount) {
        state.withLock { state in
            guard !state.stopped else { return }
            state.scheduled = eventLoop.scheduleTask(in: delay) { self.runCheck() }
        }
    }

    private func runCheck() {
        let config = target.configuration
        let started = NIODeadline.now()
        probe.check(on: eventLoop, timeout: .nanoseconds(config.timeout.nanoseconds)).whenSuccess { outcome in
            let elapsed = (NIODeadline.now() - started).nanoseconds
            self.record(self, outcome, elapsed)
            let next = CheckSchedule.nextDelay(
                interval: config.interval, jitter: config.jitter, elapsed: .nanoseconds(elapsed), random: .random(in: 0..<1))
            self.schedule(in: next)
        }
    }
}

// MARK: - CheckSchedule

/// When checks run; pure so tests can pin the random draw.
enum CheckSchedule {
    /// `initialDelay + random × interval`, or `initialDelay` without jitter.
    ///
    /// The first checks spread over a whole interval, not over the jitter window: later intervals vary by only
    /// `±jitter/2`, so checks that start close together stay close for minutes: backends first checked within
    /// the jitter window would be checked in bursts every interval (a SYN burst for the pods, and more connects
    /// in flight than the TCP poller keeps sockets for; see docs/benchmarks.md).
    static func firstDelay(initialDelay: Duration, interval: Duration, jitter: Double, random: Double) -> TimeAmount {
        guard jitter > 0 else { return .nanoseconds(initialDelay.nanoseconds) }
        return .nanoseconds(initialDelay.nanoseconds + Int64(Double(interval.nanoseconds) * random))
    }

    /// `interval × (1 + jitter × (random - ½)) - elapsed`, at least 0: the next check starts one (jittered)
    /// interval after the previous one started, or at once if that one took longer.
    static func nextDelay(interval: Duration, jitter: Double, elapsed: TimeAmount, random: Double) -> TimeAmount {
        let period = Double(interval.nanoseconds) * (1 + jitter * (random - 0.5))
        return .nanoseconds(max(0, Int64(period) - elapsed.nanoseconds))
    }
}
