import Foundation
import Metrics

/// kube-proxy's metrics (`pkg/proxy/metrics`) for what the agent measures the same way, under
/// kube-proxy's names, so dashboards made for kube-proxy's IPVS mode read the agent too. The
/// agent's own metrics (``AgentMetrics``) keep their names beside them.
struct KubeProxyMetrics: Sendable {
    /// kube-proxy's buckets of its histograms, by name.
    static let buckets: [String: [Duration]] = [
        // prometheus.ExponentialBuckets(0.001, 2, 15): 1 ms to about 16 s.
        "kubeproxy_sync_proxy_rules_duration_seconds": (0..<15).map { .microseconds(1_000 << $0) },
        // 0.25 s and 0.5 s, each second to 59 s, every 5 s to 115 s, every 30 s from 2 to 5 minutes.
        "kubeproxy_network_programming_duration_seconds": [.milliseconds(250), .milliseconds(500)]
            + (1...59).map { .seconds($0) } + stride(from: 60, through: 115, by: 5).map { .seconds($0) }
            + stride(from: 120, through: 300, by: 30).map { .seconds($0) },
    ]

    /// When the agent started: a change triggered before is not the agent's to measure (kube-proxy skips those too).
    let started = Date()

    /// One reload or verification applied to the kernel (`kubeproxy_sync_proxy_rules_duration_seconds`).
    let syncDuration = Metrics.Timer(label: "kubeproxy_sync_proxy_rules_duration_seconds", preferredDisplayUnit: .seconds)
    /// When the last sync ended (`kubeproxy_sync_proxy_rules_last_timestamp_seconds`).
    let lastSync = Gauge(label: "kubeproxy_sync_proxy_rules_last_timestamp_seconds")
    /// When the last change was queued (`kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds`).
    let lastQueued = Gauge(label: "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds")
    /// EndpointSlices (and Endpoints) that appeared, changed or went (`kubeproxy_sync_proxy_rules_endpoint_changes_total`).
    let endpointChanges = Counter(label: "kubeproxy_sync_proxy_rules_endpoint_changes_total")
    /// Services that appeared, changed or went (`kubeproxy_sync_proxy_rules_service_changes_total`).
    let serviceChanges = Counter(label: "kubeproxy_sync_proxy_rules_service_changes_total")
    /// From a pod's change (the EndpointSlice's `endpoints.kubernetes.io/last-change-trigger-time`) to its
    /// programming in the kernel (`kubeproxy_network_programming_duration_seconds`).
    let networkProgramming = Metrics.Timer(label: "kubeproxy_network_programming_duration_seconds", preferredDisplayUnit: .seconds)

    /// A sync that began at `start` ended now.
    func synced(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        syncDuration.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        lastSync.record(Date().timeIntervalSince1970)
    }

    /// A change is waiting for a sync.
    func queued() {
        lastQueued.record(Date().timeIntervalSince1970)
    }

    /// The changes triggered at `times` are programmed now.
    func programmed(_ times: [Date]) {
        let now = Date()
        for time in times where time >= started && time <= now {
            networkProgramming.recordNanoseconds(Int64(now.timeIntervalSince(time) * 1e9))
        }
    }

    /// Counts the objects of `changes`.
    func count(_ changes: ObjectChanges.Count) {
        if changes.services > 0 { serviceChanges.increment(by: changes.services) }
        if changes.endpointSlices > 0 { endpointChanges.increment(by: changes.endpointSlices) }
    }
}

/// Which Service and EndpointSlice objects a reload changed, as kube-proxy counts its informers'
/// add, update and delete events: each object that appeared, changed or went counts once.
struct ObjectChanges: Sendable {
    struct Count: Hashable, Sendable {
        var services = 0
        var endpointSlices = 0
        /// The trigger times of the slices that appeared or changed (`EndpointSlice.lastChangeTriggerTime`).
        var triggerTimes: [Date] = []
    }

    /// The hash of each Service and of each EndpointSlice, by the Service they belong to.
    private var services: [ObjectName: Int] = [:]
    private var slices: [ObjectName: [ObjectName: Int]] = [:]

    /// Compares the objects of the Services named `names` (every Service when `nil`) in `snapshot`
    /// with those seen before, and remembers them.
    mutating func count(_ names: Set<ObjectName>?, in snapshot: SourceSnapshot) -> Count {
        var count = Count()
        var inputs: [ObjectName: ServiceInputs] = [:]
        if let names {
            for name in names { inputs[name] = snapshot.inputs(of: name) }
        } else {
            inputs = ServiceInputs.grouped(snapshot.objects)
            for name in Set(services.keys).union(slices.keys) where inputs[name] == nil { inputs[name] = ServiceInputs() }
        }
        for (name, input) in inputs {
            let service = input.service?.hashValue
            if service != services[name] { count.services += 1 }
            services[name] = service
            let now = Dictionary(input.slices.map { ($0.name, $0.hashValue) }) { first, _ in first }
            let before = slices[name] ?? [:]
            let changed = input.slices.filter { before[$0.name] != $0.hashValue }
            count.endpointSlices += Set(changed.map(\.name)).count + before.keys.filter { now[$0] == nil }.count
            count.triggerTimes += changed.compactMap(\.lastChangeTriggerTime)
            slices[name] = now.isEmpty ? nil : now
        }
        return count
    }
}
