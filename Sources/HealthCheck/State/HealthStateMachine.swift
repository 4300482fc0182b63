import Foundation

// MARK: - HealthStateMachine

/// The rise/fall state machine of one backend: pure, with time passed in by the caller (the clock is whoever
/// stamps the ``CheckResult``s), so tests drive it with any sequence of results and times.
///
/// - An ``HealthStatus/up`` backend goes ``HealthStatus/down`` after `fall` failures in a row.
/// - A down backend comes up after `rise` successes in a row.
/// - An ``HealthStatus/unknown`` backend (``InitialHealth/down``) comes up at its first success, and goes down
///   (with the failure's reason) after `fall` failures in a row.
/// - While up, a change of the dynamic weight is reported as an up-to-up transition.
///
/// Any other result only updates the counters, so a backend cannot change status more often than every `rise`
/// (or `fall`) checks, however it flaps.
public struct HealthStateMachine: Hashable, Sendable {
    /// The backend.
    public let backend: BackendID
    /// The service name used in transitions.
    public var serviceName: String
    /// Successes in a row that bring a down backend up.
    public private(set) var rise: Int
    /// Failures in a row that take an up backend down.
    public private(set) var fall: Int
    /// The current state.
    public private(set) var state: HealthState

    /// A machine in its initial state: ``HealthStatus/up`` or, for ``InitialHealth/down``,
    /// ``HealthStatus/unknown``, since `time`.
    public init(backend: BackendID, serviceName: String, rise: Int, fall: Int, initialState: InitialHealth, at time: Date) {
        self.backend = backend
        self.serviceName = serviceName
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.state = HealthState(status: initialState == .up ? .up : .unknown, since: time)
    }

    /// A machine for `target` with its configuration's rise, fall and initial state.
    public init(target: HealthTarget, at time: Date) {
        let config = target.configuration
        self.init(
            backend: target.id, serviceName: target.serviceName, rise: config.rise, fall: config.fall,
            initialState: config.initialState, at: time)
    }

    /// Takes new thresholds and keeps the current state and counters: a changed check configuration does not
    /// make a backend forget it is down.
    public mutating func reconfigure(rise: Int, fall: Int, serviceName: String) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.serviceName = serviceName
    }

    // MARK: - Recording results

    /// Records a finished check; returns the transition it caused, if any.
    public mutating func record(_ result: CheckResult) -> HealthTransition? {
        state.checks += 1
        state.lastReason = result.outcome.reason
        state.lastLatency = result.latency
        state.lastCheck = result.time
        switch result.outcome {
        case .success(_, let weight):
            state.consecutiveSuccesses += 1
            state.consecutiveFailures = 0
            let previousWeight = state.dynamicWeight
            state.dynamicWeight = weight
            switch state.status {
            case .up:
                return weight != previousWeight ? transition(to: .up, result: result, consecutive: state.consecutiveSuccesses) : nil
            case .unknown:
                return transition(to: .up, result: result, consecutive: state.consecutiveSuccesses)
            case .down:
                guard state.consecutiveSuccesses >= rise else { return nil }
                return transition(to: .up, result: result, consecutive: state.consecutiveSuccesses)
            }
        case .failure:
            state.consecutiveFailures += 1
            state.consecutiveSuccesses = 0
            guard state.status != .down, state.consecutiveFailures >= fall else { return nil }
            return transition(to: .down, result: result, consecutive: state.consecutiveFailures)
        }
    }

    private mutating func transition(to status: HealthStatus, result: CheckResult, consecutive: Int) -> HealthTransition {
        let event = HealthTransition(
            backend: backend, serviceName: serviceName, from: state.status, to: status,
            reason: result.outcome.reason, latency: result.latency, time: result.time,
            previousSince: state.since, dynamicWeight: state.dynamicWeight, consecutive: consecutive)
        if status != state.status {
            state.status = status
            state.since = result.time
        }
        return event
    }
}
