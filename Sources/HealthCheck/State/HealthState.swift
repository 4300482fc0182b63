import Foundation

// MARK: - HealthStatus

/// Whether a backend is fit for traffic.
public enum HealthStatus: String, Hashable, Sendable, CustomStringConvertible {
    /// Never checked successfully, and configured to start down (``InitialHealth/down``): not serving.
    case unknown
    /// Serving.
    case up
    /// Failed `fall` checks in a row and not yet back with `rise` successes: quiesced or removed.
    case down

    /// Whether the backend should get new connections.
    public var isServing: Bool { self == .up }

    public var description: String { rawValue }
}

// MARK: - HealthState

/// The health of one backend: its status, since when, and the counters that decide the next transition.
public struct HealthState: Hashable, Sendable {
    /// The current status.
    public var status: HealthStatus
    /// When the backend entered ``status``.
    public var since: Date
    /// Successes in a row (reset by a failure).
    public var consecutiveSuccesses: Int
    /// Failures in a row (reset by a success).
    public var consecutiveFailures: Int
    /// The weight the last successful check asked for (exec checks with dynamic weight), else `nil`.
    public var dynamicWeight: Int32?
    /// The verdict of the last check: `connected`, `HTTP 503`, `connect: connection refused`, `timeout after 500ms`.
    public var lastReason: String?
    /// How long the last check took.
    public var lastLatency: Duration?
    /// When the last check finished.
    public var lastCheck: Date?
    /// Checks finished so far.
    public var checks: Int

    public init(
        status: HealthStatus, since: Date, consecutiveSuccesses: Int = 0, consecutiveFailures: Int = 0,
        dynamicWeight: Int32? = nil, lastReason: String? = nil, lastLatency: Duration? = nil,
        lastCheck: Date? = nil, checks: Int = 0
    ) {
        self.status = status
        self.since = since
        self.consecutiveSuccesses = consecutiveSuccesses
        self.consecutiveFailures = consecutiveFailures
        self.dynamicWeight = dynamicWeight
        self.lastReason = lastReason
        self.lastLatency = lastLatency
        self.lastCheck = lastCheck
        self.checks = checks
    }
}

// MARK: - Check results

/// The verdict of one check.
public enum CheckOutcome: Hashable, Sendable {
    /// Healthy; `weight` is a dynamic weight asked for by the check (exec with dynamic weight), else `nil`.
    case success(reason: String, weight: Int32? = nil)
    /// Unhealthy, with why: `connect: connection refused`, `HTTP 503`, `timeout after 500ms`.
    case failure(reason: String)

    /// Whether the check passed.
    public var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }

    /// The reason text of either case.
    public var reason: String {
        switch self {
        case .success(let reason, _), .failure(let reason): reason
        }
    }
}

/// One finished check: its verdict, how long it took and when it finished.
public struct CheckResult: Hashable, Sendable {
    public var outcome: CheckOutcome
    public var latency: Duration
    public var time: Date

    public init(_ outcome: CheckOutcome, latency: Duration, at time: Date) {
        self.outcome = outcome
        self.latency = latency
        self.time = time
    }
}

// MARK: - HealthTransition

/// A backend changed status (or, while up, its dynamic weight): the event the agent turns into kernel updates.
public struct HealthTransition: Hashable, Sendable, CustomStringConvertible {
    /// The backend.
    public var backend: BackendID
    /// The human service name given with the target.
    public var serviceName: String
    /// The status before.
    public var from: HealthStatus
    /// The status now.
    public var to: HealthStatus
    /// The verdict of the check that caused the transition.
    public var reason: String
    /// How long that check took.
    public var latency: Duration
    /// When the transition happened: the backend is in ``to`` since then.
    public var time: Date
    /// Since when the backend had been in ``from``.
    public var previousSince: Date
    /// The dynamic weight now asked for (exec checks with dynamic weight), else `nil`.
    public var dynamicWeight: Int32?
    /// The failures (going down) or successes (coming up) in a row that caused the transition.
    public var consecutive: Int

    public init(
        backend: BackendID, serviceName: String, from: HealthStatus, to: HealthStatus, reason: String,
        latency: Duration, time: Date, previousSince: Date, dynamicWeight: Int32? = nil, consecutive: Int
    ) {
        self.backend = backend
        self.serviceName = serviceName
        self.from = from
        self.to = to
        self.reason = reason
        self.latency = latency
        self.time = time
        self.previousSince = previousSince
        self.dynamicWeight = dynamicWeight
        self.consecutive = consecutive
    }

    /// `TCP 10.96.0.10:80 -> 10.244.1.7:8080 up -> down (connect: connection refused)`.
    public var description: String {
        let weight = dynamicWeight.map { " weight \($0)" } ?? ""
        return "\(backend) \(from) -> \(to)\(weight) (\(reason))"
    }
}

// MARK: - BackendHealth

/// One row of ``HealthChecker/status()``: a backend's health for the agent's status endpoint.
public struct BackendHealth: Hashable, Sendable {
    public var backend: BackendID
    public var serviceName: String
    /// `tcp`, `http`, `https`, `udp` or `exec`.
    public var checkKind: String
    public var state: HealthState

    public init(backend: BackendID, serviceName: String, checkKind: String, state: HealthState) {
        self.backend = backend
        self.serviceName = serviceName
        self.checkKind = checkKind
        self.state = state
    }
}

extension BackendHealth: Encodable {
    private enum CodingKeys: String, CodingKey {
        case service, serviceName, backend, check, state, since, consecutiveSuccesses, consecutiveFailures
        case dynamicWeight, lastReason, lastLatencyMs, lastCheck, checks
    }

    /// Encodes as `{"service": "TCP 10.96.0.10:80", "backend": "10.244.1.7:8080", "state": "up",
    /// "since": <date>, "lastLatencyMs": 0.4, …}`; dates use the encoder's date strategy.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(backend.service.description, forKey: .service)
        try container.encode(serviceName, forKey: .serviceName)
        try container.encode(backend.server.description, forKey: .backend)
        try container.encode(checkKind, forKey: .check)
        try container.encode(state.status.rawValue, forKey: .state)
        try container.encode(state.since, forKey: .since)
        try container.encode(state.consecutiveSuccesses, forKey: .consecutiveSuccesses)
        try container.encode(state.consecutiveFailures, forKey: .consecutiveFailures)
        try container.encodeIfPresent(state.dynamicWeight, forKey: .dynamicWeight)
        try container.encodeIfPresent(state.lastReason, forKey: .lastReason)
        try container.encodeIfPresent(state.lastLatency.map { $0.seconds * 1_000 }, forKey: .lastLatencyMs)
        try container.encodeIfPresent(state.lastCheck, forKey: .lastCheck)
        try container.encode(state.checks, forKey: .checks)
    }
}
