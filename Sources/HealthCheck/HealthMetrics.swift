import Metrics

// MARK: - HealthMetrics

/// The metrics of one backend, created once when its checks start and destroyed when it goes away.
///
/// | metric | type | dimensions |
/// | --- | --- | --- |
/// | `ipvs_health_backend_up` | gauge: 1 serving, 0 not | `service`, `backend` |
/// | `ipvs_health_check_latency_seconds` | gauge: the last check's latency | `service`, `backend` |
/// | `ipvs_health_check_duration_seconds` | timer (histogram) | `service`, `check` |
/// | `ipvs_health_checks_total` | counter | `service`, `result` (`success`, `failure`) |
/// | `ipvs_health_transitions_total` | counter | `service`, `backend`, `to` (`up`, `down`) |
///
/// The latency histogram is per service, not per backend, to keep the series count bounded with thousands
/// of backends; the per-backend latency gauge gives the last value.
struct HealthMetrics: Sendable {
    private let service: String
    private let backend: String
    private let up: Gauge
    private let latency: Gauge
    private let duration: Timer
    private let successes: Counter
    private let failures: Counter

    init(target: HealthTarget) {
        service = target.serviceName
        backend = target.id.server.description
        let perBackend = [("service", service), ("backend", backend)]
        up = Gauge(label: "ipvs_health_backend_up", dimensions: perBackend)
        latency = Gauge(label: "ipvs_health_check_latency_seconds", dimensions: perBackend)
        duration = Timer(label: "ipvs_health_check_duration_seconds", dimensions: [
            ("service", service), ("check", target.configuration.kind.name),
        ])
        successes = Counter(label: "ipvs_health_checks_total", dimensions: [("service", service), ("result", "success")])
        failures = Counter(label: "ipvs_health_checks_total", dimensions: [("service", service), ("result", "failure")])
    }

    func recordState(_ status: HealthStatus) {
        up.record(status.isServing ? 1 : 0)
    }

    func recordCheck(success: Bool, latencyNanoseconds: Int64) {
        latency.record(Double(latencyNanoseconds) / 1e9)
        duration.recordNanoseconds(latencyNanoseconds)
        (success ? successes : failures).increment()
    }

    func recordTransition(to status: HealthStatus) {
        Counter(label: "ipvs_health_transitions_total", dimensions: [
            ("service", service), ("backend", backend), ("to", status.rawValue),
        ]).increment()
    }

    /// Removes the per-backend series (the per-service ones stay while other backends use them).
    func destroy() {
        up.destroy()
        latency.destroy()
    }
}
