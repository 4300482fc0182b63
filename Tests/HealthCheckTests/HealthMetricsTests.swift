import IPVS
import MetricsTestKit
import XCTest

@testable import HealthCheck

final class HealthMetricsTests: XCTestCase {
    private let service = ServiceKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)

    private func metrics(port: UInt16, _ factory: TestMetrics) -> HealthMetrics {
        let configuration = HealthCheckConfiguration(
            kind: .tcp, interval: .seconds(1), timeout: .milliseconds(500), rise: 2, fall: 2,
            initialDelay: .zero, jitter: 0, initialState: .up)
        return HealthMetrics(
            target: HealthTarget(
                id: BackendID(service: service, server: RealServerID(address: IPAddress("10.244.0.1")!, port: port)),
                serviceName: "default/web", configuration: configuration),
            factory: factory)
    }

    /// Transitions are counted per service and direction, on series registered when the backend's
    /// checks start: nothing is registered on the checking path, and 10,000 backends make 2 series.
    func testTransitionsAreCountedPerServiceOnSeriesRegisteredAtStart() throws {
        let factory = TestMetrics()
        let first = metrics(port: 8080, factory), second = metrics(port: 8081, factory)
        let label = "ipvs_health_transitions_total"
        XCTAssertEqual(factory.counters(label: label).count, 2, "both series exist before any transition")

        first.recordTransition(to: .down)
        second.recordTransition(to: .down)
        first.recordTransition(to: .up)
        XCTAssertEqual(factory.counters(label: label).count, 2, "a transition registered a new series")
        XCTAssertEqual(factory.counterTotal(label: label, dimensions: [("service", "default/web"), ("to", "down")]), 2)
        XCTAssertEqual(factory.counterTotal(label: label, dimensions: [("service", "default/web"), ("to", "up")]), 1)
        // And per backend, either way.
        let perBackend = "ipvs_health_backend_transitions_total"
        XCTAssertEqual(factory.counters(label: perBackend).count, 2, "one series per backend, registered at start")
        XCTAssertEqual(factory.counterTotal(label: perBackend, dimensions: [("service", "default/web"), ("backend", "10.244.0.1:8080")]), 2)
        XCTAssertEqual(factory.counterTotal(label: perBackend, dimensions: [("service", "default/web"), ("backend", "10.244.0.1:8081")]), 1)
    }

    /// The per-backend gauges carry the backend; checks are counted per service and result.
    func testBackendGaugesAndCheckCounters() throws {
        let factory = TestMetrics()
        let backend = metrics(port: 8080, factory)
        backend.recordState(.down)
        backend.recordCheck(success: false, latencyNanoseconds: 2_000_000)
        backend.recordCheck(success: true, latencyNanoseconds: 1_000_000)

        let dimensions = [("service", "default/web"), ("backend", "10.244.0.1:8080")]
        XCTAssertEqual(try factory.expectGauge("ipvs_health_backend_up", dimensions).lastValue, 0)
        XCTAssertEqual(try factory.expectGauge("ipvs_health_check_latency_seconds", dimensions).lastValue, 0.001)
        XCTAssertEqual(factory.counterTotal(label: "ipvs_health_checks_total",
                                            dimensions: [("service", "default/web"), ("result", "failure")]), 1)
        XCTAssertEqual(factory.counterTotal(label: "ipvs_health_checks_total",
                                            dimensions: [("service", "default/web"), ("result", "success")]), 1)
    }
}
