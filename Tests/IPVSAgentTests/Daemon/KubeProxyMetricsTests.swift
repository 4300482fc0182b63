import Foundation
import Metrics
import Prometheus
import TestSupport
import XCTest
@testable import IPVSAgent

/// kube-proxy's metric names, `process_*` metrics and a `# HELP` line on every series the agent exports.
final class KubeProxyMetricsTests: XCTestCase {
    /// Every metric name written in the sources has its help text: a new metric without one fails here.
    func testEveryMetricNameInTheSourcesHasHelp() throws {
        let sources = URL(fileURLWithPath: repositoryPath("Sources"))
        let pattern = try NSRegularExpression(pattern: "\"((?:ipvs_agent|ipvs_health|kubeproxy|process)_[a-z_]+)\"")
        var names: Set<String> = []
        for case let file as URL in FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        XCTAssertTrue(names.isSuperset(of: ["ipvs_agent_errors_total", "kubeproxy_sync_proxy_rules_duration_seconds",
                                            "process_cpu_seconds_total", "ipvs_health_checks_total"]), "\(names.sorted())")
        XCTAssertEqual(names.subtracting(HelpingMetricsFactory.help.keys).sorted(), [], "metrics without a # HELP text")
    }

    /// Through the daemon's factory every kind of series gets its `# HELP` line, and kube-proxy's sync
    /// histogram kube-proxy's buckets (1 ms to about 16 s).
    func testTheFactoryWritesHelpAndKubeProxysBuckets() {
        let registry = PrometheusCollectorRegistry()
        let factory = HelpingMetricsFactory(registry: registry)
        factory.makeTimer(label: "kubeproxy_sync_proxy_rules_duration_seconds", dimensions: []).recordNanoseconds(3_000_000)
        factory.makeRecorder(label: "kubeproxy_sync_proxy_rules_last_timestamp_seconds", dimensions: [], aggregate: false).record(1.0)
        factory.makeCounter(label: "kubeproxy_sync_proxy_rules_service_changes_total", dimensions: []).increment(by: 2)
        factory.makeFloatingPointCounter(label: "process_cpu_seconds_total", dimensions: []).increment(by: 0.5)
        factory.makeCounter(label: "ipvs_health_checks_total", dimensions: [("service", "default/web"), ("result", "success")]).increment(by: 1)
        let text = registry.emitToString()
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
        XCTAssertEqual(types.count, 5, text)
        for type in types {
            let name = type.split(separator: " ")[2]
            XCTAssertTrue(text.contains("# HELP \(name) \(HelpingMetricsFactory.help[String(name)]!)"), "no help for \(name):\n\(text)")
        }
        XCTAssertTrue(text.contains("kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.004\"} 1"), text)
        XCTAssertTrue(text.contains("kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"16.384\"} 1"), text)
        XCTAssertTrue(text.contains("kubeproxy_sync_proxy_rules_service_changes_total 2"), text)
    }

    /// `/proc/self` read as Prometheus's process collector reads it.
    func testProcessFiguresComeFromProc() throws {
        // A process just started (each test is one under `swift test --parallel`) may not have used a
        // clock tick of CPU yet: work until it has, for a few seconds at most.
        var sample = try XCTUnwrap(ProcessMetrics.read())
        let deadline = ContinuousClock.now + .seconds(5)
        var work = 0
        while sample.cpuSeconds == 0, ContinuousClock.now < deadline {
            for value in 0..<100_000 { work &+= value &* value }
            sample = try XCTUnwrap(ProcessMetrics.read())
        }
        XCTAssertGreaterThan(sample.cpuSeconds, 0, "\(work)")
        XCTAssertGreaterThan(sample.residentBytes, 1_000_000, "a Swift test process holds megabytes")
        XCTAssertGreaterThanOrEqual(sample.virtualBytes, sample.residentBytes)
        // Other threads of the test process may open or close files meanwhile: one of a few tries
        // sees exactly one more.
        var counts: [(Int, Int)] = []
        for _ in 0..<5 {
            let before = try XCTUnwrap(ProcessMetrics.read()).openFiles
            let fd = open("/dev/null", O_RDONLY)
            let after = try XCTUnwrap(ProcessMetrics.read()).openFiles
            close(fd)
            counts.append((before, after))
            if after == before + 1 { break }
        }
        XCTAssertTrue(counts.contains { $0.1 == $0.0 + 1 }, "one more open file: \(counts)")
        let now = Date().timeIntervalSince1970
        XCTAssertLessThanOrEqual(sample.startTime, now + 1)
        XCTAssertGreaterThan(sample.startTime, now - 86_400 * 365, "the start time is since the epoch, not since boot")
    }

    /// Service and EndpointSlice changes are counted per object, as kube-proxy counts its informers' events.
    func testChangesAreCountedPerObject() throws {
        func objects(_ endpoints: [String], serviceIP: String = "10.96.0.1", slices: Int = 1) throws -> SourceSnapshot {
            var text = """
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: default}
                spec: {clusterIP: \(serviceIP), ports: [{port: 80}]}

                """
            for slice in 0..<slices {
                text += """
                    ---
                    apiVersion: discovery.k8s.io/v1
                    kind: EndpointSlice
                    metadata: {name: web-\(slice), namespace: default, labels: {kubernetes.io/service-name: web}}
                    addressType: IPv4
                    endpoints: [\(endpoints.map { "{addresses: [\($0)]}" }.joined(separator: ", "))]
                    ports: [{port: 80}]

                    """
            }
            let decoded = ManifestDecoder.decode(text, file: "x.yaml")
            XCTAssertEqual(decoded.issues, [])
            return SourceSnapshot(objects: decoded.objects)
        }
        var changes = ObjectChanges()
        XCTAssertEqual(changes.count(nil, in: try objects(["10.244.0.1"], slices: 2)), .init(services: 1, endpointSlices: 2))
        XCTAssertEqual(changes.count(nil, in: try objects(["10.244.0.1"], slices: 2)), .init(), "nothing changed")
        XCTAssertEqual(changes.count(nil, in: try objects(["10.244.0.2"], slices: 2)), .init(services: 0, endpointSlices: 2))
        XCTAssertEqual(changes.count(nil, in: try objects(["10.244.0.2"], serviceIP: "10.96.0.2", slices: 1)),
                       .init(services: 1, endpointSlices: 1), "a changed Service and a deleted slice")
        XCTAssertEqual(changes.count(nil, in: SourceSnapshot()), .init(services: 1, endpointSlices: 1), "both deleted")
    }
}

/// `kubeproxy_network_programming_duration_seconds` from the EndpointSlice controller's annotation.
final class NetworkProgrammingTests: XCTestCase {
    private func slice(_ name: String, address: String, trigger: String?) -> String {
        """
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: \(name)
          namespace: default
          labels: {kubernetes.io/service-name: web}
        \(trigger.map { "  annotations: {endpoints.kubernetes.io/last-change-trigger-time: \"\($0)\"}" } ?? "")
        addressType: IPv4
        endpoints: [{addresses: [\(address)]}]
        ports: [{port: 80}]

        """
    }

    func testTheTriggerTimeIsReadAndOnlyChangedSlicesReportIt() throws {
        func snapshot(_ text: String) -> SourceSnapshot {
            let decoded = ManifestDecoder.decode(text, file: "x.yaml")
            XCTAssertEqual(decoded.issues, [])
            return SourceSnapshot(objects: decoded.objects)
        }
        let decoded = ManifestDecoder.decode(slice("a", address: "10.244.0.1", trigger: "2026-12-06T22:00:00.25Z")
                                             + slice("b", address: "10.244.0.2", trigger: "2026-12-06T22:00:01Z")
                                             + slice("c", address: "10.244.0.3", trigger: "yesterday"), file: "x.yaml")
        let times = decoded.objects.map { object -> Date? in
            if case .endpointSlice(let slice) = object { return slice.lastChangeTriggerTime }
            return nil
        }
        XCTAssertEqual(times.map { $0?.timeIntervalSince1970 }, [1_796_594_400.25, 1_796_594_401, nil], "RFC 3339 with or without fractions; kube-proxy ignores a bad one")

        var changes = ObjectChanges()
        let first = changes.count(nil, in: snapshot(slice("a", address: "10.244.0.1", trigger: "2026-12-06T22:00:00Z")
                                                    + slice("b", address: "10.244.0.2", trigger: "2026-12-06T22:00:01Z")))
        XCTAssertEqual(first.triggerTimes.count, 2)
        let second = changes.count(nil, in: snapshot(slice("a", address: "10.244.0.1", trigger: "2026-12-06T22:00:00Z")
                                                     + slice("b", address: "10.244.0.9", trigger: "2026-12-06T22:05:00Z")))
        XCTAssertEqual(second.triggerTimes.map(\.timeIntervalSince1970), [1_796_594_700], "only the changed slice's time")
        XCTAssertEqual(second.endpointSlices, 1)
    }
}
