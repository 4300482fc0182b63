import Foundation
import Metrics

/// kube-proxy's metrics (`pkg/proxy/metrics`) for what the agent measures the same way, under
/// kube-proxy's names, so dashboards made for kube-proxy's IPVS mode read the agent too. The
/// agent's own metrics (``AgentMetrics``) keep their names beside them.
struct KubeProxyMetrics: Sendable {
    /// The histograms with kube-proxy's buckets (``buckets``).
    static let histograms = ["kubeproxy_sync_proxy_rules_duration_seconds"]
    /// kube-proxy's buckets: `prometheus.ExponentialBuckets(0.001, 2, 15)`, 1 ms to about 16 s.
    static let buckets: [Duration] = (0..<15).map { .microseconds(1_000 << $0) }

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
            count.endpointSlices += now.filter { before[$0.key] != $0.value }.count + before.keys.filter { now[$0] == nil }.count
            slices[name] = now.isEmpty ? nil : now
        }
        return count
    }
}
