import IPVS

// MARK: - HealthCheckConfiguration

/// How the backends of one service are checked, and what happens to them when they fail.
///
/// A backend goes down after ``fall`` consecutive failed checks and comes back after ``rise`` consecutive
/// successes, so a dead backend is taken out within about `fall × interval + timeout`. With the defaults
/// (1 s, 500 ms, rise 2, fall 2) that is 2.5 s at worst.
public struct HealthCheckConfiguration: Hashable, Sendable {
    /// What a check does.
    public var kind: HealthCheckKind
    /// Time from the start of one check to the start of the next (a check never overlaps the previous one).
    public var interval: Duration
    /// How long one check may take before it counts as failed.
    public var timeout: Duration
    /// Consecutive successes that bring a down backend back up.
    public var rise: Int
    /// Consecutive failures that take an up backend down.
    public var fall: Int
    /// Time after a backend appears before its first check.
    public var initialDelay: Duration
    /// Spread of check times, as a fraction of the interval (0 to 1): each interval varies by up to
    /// `±jitter/2 × interval`, and with any jitter the first check comes at a random point of the first
    /// interval (after ``initialDelay``), so that many backends added at once are not checked in
    /// bursts. With 0, every check is exactly one interval after the previous one, the first right after
    /// ``initialDelay``.
    public var jitter: Double
    /// Check this port instead of the real server's port.
    public var port: UInt16?
    /// What happens to a backend that is down.
    public var failureAction: FailureAction
    /// The state of a backend before its first check.
    public var initialState: InitialHealth
    /// What to do when too few backends of the service are healthy; `nil`: nothing special.
    public var quorum: Quorum?

    public init(
        kind: HealthCheckKind = .tcp,
        interval: Duration = .seconds(1),
        timeout: Duration = .milliseconds(500),
        rise: Int = 2,
        fall: Int = 2,
        initialDelay: Duration = .zero,
        jitter: Double = 0.1,
        port: UInt16? = nil,
        failureAction: FailureAction = .quiesce,
        initialState: InitialHealth = .up,
        quorum: Quorum? = nil
    ) {
        self.kind = kind
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
        self.initialDelay = initialDelay
        self.jitter = jitter
        self.port = port
        self.failureAction = failureAction
        self.initialState = initialState
        self.quorum = quorum
    }

    /// The defaults: a TCP connect every second, 500 ms timeout, rise 2, fall 2, quiesce on failure.
    public static let `default` = HealthCheckConfiguration()
}

// MARK: - Policies

/// What happens to a backend that is down.
public enum FailureAction: String, Hashable, Sendable, CaseIterable {
    /// Keep the real server with weight 0: no new connections, existing ones finish.
    case quiesce
    /// Delete the real server: the kernel stops forwarding its existing connections too.
    case remove
}

/// The state of a new backend before its first check.
public enum InitialHealth: String, Hashable, Sendable, CaseIterable {
    /// Healthy at once, so a new endpoint gets traffic immediately, as Kubernetes already found it ready.
    case up
    /// ``HealthStatus/unknown`` and not serving until its first successful check.
    case down
}

/// The minimum number of healthy backends of a service, and the policy when there are fewer.
public struct Quorum: Hashable, Sendable {
    /// The number of healthy backends below which the ``policy`` applies (at least 1).
    public var minimumHealthy: Int
    /// What to do below the minimum.
    public var policy: QuorumPolicy

    public init(minimumHealthy: Int = 1, policy: QuorumPolicy = .keepAll) {
        self.minimumHealthy = minimumHealthy
        self.policy = policy
    }
}

/// What a service does when fewer than ``Quorum/minimumHealthy`` backends are healthy.
public enum QuorumPolicy: Hashable, Sendable {
    /// Keep every backend at its configured weight, healthy or not, rather than empty the service: failed
    /// checks are then more likely a checker or network problem than all pods dying together.
    case keepAll
    /// Serve from a "sorry" server instead: it is added and every backend is quiesced or removed (per the
    /// failure action), like keepalived's `sorry_server`.
    case fallback(FallbackServer)
}

/// A "sorry" server that takes a service's traffic while it has lost its quorum.
public struct FallbackServer: Hashable, Sendable {
    public var address: IPAddress
    public var port: UInt16
    /// Its weight in the kernel (1 to 65535).
    public var weight: Int32

    public init(address: IPAddress, port: UInt16, weight: Int32 = 1) {
        self.address = address
        self.port = port
        self.weight = weight
    }

    /// Reads `10.0.0.9:8080` or `[fd00::9]:8080` (weight 1); `nil` for anything else.
    public init?(endpoint text: String) {
        let trimmed = String(text.trimmingWhitespace())
        let host: Substring
        let portText: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]"), trimmed[close...].hasPrefix("]:") else { return nil }
            host = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            portText = trimmed[trimmed.index(close, offsetBy: 2)...]
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { return nil }
            host = trimmed[..<colon]
            portText = trimmed[trimmed.index(after: colon)...]
        }
        guard let address = IPAddress(String(host)), let port = UInt16(portText), port != 0 else { return nil }
        if !trimmed.hasPrefix("["), case .v6 = address { return nil }
        self.init(address: address, port: port)
    }

    /// The real server identity of the fallback.
    public var id: RealServerID { RealServerID(address: address, port: port) }
}
