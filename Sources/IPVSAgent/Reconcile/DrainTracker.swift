import HealthCheck
import IPVS

/// Identifies a real server within a virtual service: the same identity the health checker
/// uses for its backends.
public typealias RealServerRef = BackendID

/// Graceful termination of removed endpoints: a removed real server is set to weight 0 (the kernel
/// sends it no new connections, existing ones continue) and deleted once it has no connections
/// left, or at its deadline, whichever comes first.
///
/// A value type driven by the caller's clock, so its decisions are testable without waiting.
public struct DrainTracker: Hashable, Sendable {
    /// How long a removed real server may keep connections before it is deleted anyway.
    public var timeout: Duration
    /// Draining servers and their deadlines (on the caller's clock).
    public private(set) var deadlines: [RealServerRef: ContinuousClock.Instant] = [:]
    /// Draining servers a drain check found with connections: their drain is logged, as is its end.
    /// Most removed endpoints have none and are deleted at the first check, logged at debug level only.
    public private(set) var busy: Set<RealServerRef> = []

    public init(timeout: Duration) {
        self.timeout = timeout
    }

    public var isEmpty: Bool { deadlines.isEmpty }

    /// The services that have draining servers.
    public var services: Set<ServiceKey> { Set(deadlines.keys.map(\.service)) }

    public func isDraining(_ ref: RealServerRef) -> Bool { deadlines[ref] != nil }

    /// Starts draining `ref` at `now` (no-op when it already drains).
    public mutating func begin(_ ref: RealServerRef, now: ContinuousClock.Instant) {
        if deadlines[ref] == nil { deadlines[ref] = now + timeout }
    }

    /// Records that a check found connections on draining `ref`; `true` the first time (to log it once).
    public mutating func foundBusy(_ ref: RealServerRef) -> Bool {
        deadlines[ref] != nil && busy.insert(ref).inserted
    }

    /// Stops tracking `ref` (it came back, or it was deleted).
    public mutating func end(_ ref: RealServerRef) {
        deadlines[ref] = nil
        busy.remove(ref)
    }

    /// Stops tracking every server of `service` (the service went away).
    public mutating func endAll(in service: ServiceKey) {
        deadlines = deadlines.filter { $0.key.service != service }
        busy = busy.filter { $0.service != service }
    }

    /// Whether `ref` should be deleted now: it has no connections, or its deadline passed.
    /// `connections` is `nil` when unknown (then only the deadline counts).
    public func shouldDelete(_ ref: RealServerRef, connections: ConnectionCounts?, now: ContinuousClock.Instant) -> Bool {
        if let connections, connections.active == 0, connections.inactive == 0 { return true }
        guard let deadline = deadlines[ref] else { return true }
        return now >= deadline
    }
}
