import Metrics

// MARK: - HealthMetrics

/// The metrics of one backend, created once when its checks start and destroyed when it goes away.
///
/// | metric | type | dimensions |
/// | --- | --- | --- |
/// | `ipvs_health_backend_up` | gauge: 1 serving, 0 not | `service`, `backend` |
/// | `ipvs_health_check_latency_seconds` | gauge: the last check's latency (a TCP check's: the handshake's round trip) | `service`, `backend` |
/// | `ipvs_health_check_duration_seconds` | timer (histogram) | `service`, `check` |
/// | `ipvs_health_checks_total` | counter | `service`, `result` (`success`, `failure`) |
/// | `ipvs_health_transitions_total` | counter | `service`, `to` (`up`, `down`) |
/// | `ipvs_health_backend_transitions_total` | counter: the backend's transitions, either way | `service`, `backend` |
///
/// Each backend has three series (state, last latency, transitions); the latency histogram and the
/// counts by direction are per service, to keep the series count near three per backend however many
/// backends there are. Every transition is also logged with its backend. Every series is registered here, when the
/// backend's checks start: swift-prometheus copies a metric's series to register one more, so registering
/// on a backend's first transition would cost time proportional to the backends on the checking path,
/// at the worst moment (many backends going down at once).
///
/// It keeps the factory's handlers, not swift-metrics' `Gauge`, `Timer` and `Counter` around them: those are
/// one object more per metric and backend, and with many backends checked in turn every
/// one of them is a cache miss on every check. The handlers of the per-service series are the same objects
/// for every backend of the service, so they stay in the cache.
struct HealthMetrics: Sendable {
    // What every check records first, side by side.
    private let latency: any RecorderHandler
    private let duration: any TimerHandler
    private let successes: any CounterHandler
    private let failures: any CounterHandler
    private let up: any RecorderHandler
    private let toUp: any CounterHandler
    private let toDown: any CounterHandler
    private let transitions: any CounterHandler
    private let factory: any MetricsFactory

    /// `factory` is the process's metrics system unless a test passes its own.
    init(target: HealthTarget, factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        let service = target.serviceName
        let perBackend = [("service", service), ("backend", target.id.server.description)]
        // Gauges are recorders that do not aggregate, as swift-metrics' `Gauge` makes them.
        up = factory.makeRecorder(label: "ipvs_health_backend_up", dimensions: perBackend, aggregate: false)
        latency = factory.makeRecorder(label: "ipvs_health_check_latency_seconds", dimensions: perBackend, aggregate: false)
        transitions = factory.makeCounter(label: "ipvs_health_backend_transitions_total", dimensions: perBackend)
        duration = factory.makeTimer(label: "ipvs_health_check_duration_seconds", dimensions: [
            ("service", service), ("check", target.configuration.kind.name),
        ])
        func counter(_ label: String, _ name: String, _ value: String) -> any CounterHandler {
            factory.makeCounter(label: label, dimensions: [("service", service), (name, value)])
        }
        successes = counter("ipvs_health_checks_total", "result", "success")
        failures = counter("ipvs_health_checks_total", "result", "failure")
        toUp = counter("ipvs_health_transitions_total", "to", HealthStatus.up.rawValue)
        toDown = counter("ipvs_health_transitions_total", "to", HealthStatus.down.rawValue)
    }

    func recordState(_ status: HealthStatus) {
        up.record(status.isServing ? 1.0 : 0.0)
    }

    func recordCheck(success: Bool, latencyNanoseconds: Int64) {
        latency.record(Double(latencyNanoseconds) / 1e9)
        duration.recordNanoseconds(latencyNanoseconds)
        (success ? successes : failures).increment(by: 1)
    }

    func recordTransition(to status: HealthStatus) {
        (status.isServing ? toUp : toDown).increment(by: 1)
        transitions.increment(by: 1)
    }

    /// Removes the per-backend series (the per-service ones stay while other backends use them).
    func destroy() {
        factory.destroyRecorder(up)
        factory.destroyRecorder(latency)
        factory.destroyCounter(transitions)
    }
}
