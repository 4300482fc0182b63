import CoreMetrics
import Prometheus

/// The swift-metrics factory of the daemon: Prometheus's, with each series' `# HELP` text from
/// ``help`` (swift-metrics has no place for one) and kube-proxy's buckets for its histograms.
struct HelpingMetricsFactory: MetricsFactory {
    let base: PrometheusMetricsFactory

    init(registry: PrometheusCollectorRegistry) {
        var base = PrometheusMetricsFactory(registry: registry)
        base.durationHistogramBuckets = KubeProxyMetrics.buckets
        self.base = base
    }

    /// What each series the agent exports means, by name: its `# HELP` line.
    static let help: [String: String] = [
        "ipvs_agent_sync_duration_seconds": "Seconds per reconcile pass of the agent (apply or verification).",
        "ipvs_agent_operations_applied_total": "Kernel operations (IPVS and VIPs) the agent applied successfully.",
        "ipvs_agent_errors_total": "Kernel operations or reads that failed.",
        "ipvs_agent_manifest_issues": "Problems found in the manifests on the last load.",
        "ipvs_agent_drift_repaired_total": "Differences between the agent's model and the kernel that a verification repaired.",
        "ipvs_agent_services_programmed": "IPVS virtual services the agent owns.",
        "ipvs_agent_real_servers_programmed": "Real servers of the virtual services the agent owns.",
        "ipvs_agent_real_servers_draining": "Real servers draining at weight 0 until their connections end.",
        "ipvs_agent_addresses_programmed": "VIPs the agent owns on the dummy interface.",
        "ipvs_agent_api_lists_total": "Complete lists of a resource from the API server.",
        "ipvs_agent_api_listed_objects": "Objects of a resource in the last complete list from the API server.",
        "ipvs_agent_api_last_list_timestamp_seconds": "When the last complete list of a resource ended.",
        "ipvs_agent_api_relists_total": "Lists of a resource made again after a watch could not resume (410 Gone).",
        "ipvs_agent_api_watch_connected": "1 while the watch of a resource is connected, else 0.",
        "ipvs_agent_api_events_total": "Watch events received, by resource and type.",
        "ipvs_agent_api_last_event_timestamp_seconds": "When the last watch event of a resource arrived.",
        "ipvs_agent_api_malformed_events_total": "Watch events that could not be read and were skipped.",
        "ipvs_agent_api_request_failures_total": "Requests to the API server that failed (connection, status or body).",
        "ipvs_agent_nftables_transactions_total": "Transactions on the agent's nftables table, by kind (update: set elements only; replace: the whole table).",
        "ipvs_agent_nftables_failures_total": "Transactions on the agent's nftables table that nftables refused.",
        "ipvs_agent_conntrack_entries_deleted_total": "UDP conntrack entries deleted after kernel changes left them stale.",
        "ipvs_agent_conntrack_failures_total": "Failed listings or deletions of conntrack entries.",
        "ipvs_health_backend_up": "1 while a backend passes its health check, 0 while it fails.",
        "ipvs_health_check_latency_seconds": "Seconds the last health check of a backend took.",
        "ipvs_health_backend_transitions_total": "Times a backend went up or down by its health check.",
        "ipvs_health_check_duration_seconds": "Seconds per health check, by Service and kind of check.",
        "ipvs_health_checks_total": "Health checks run, by Service and result.",
        "ipvs_health_transitions_total": "Times backends of a Service went up or down by their health checks.",
        "kubeproxy_sync_proxy_rules_duration_seconds": "SyncProxyRules latency in seconds (kube-proxy's name): one reload or verification applied to the kernel.",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds": "The last time proxy rules were successfully synced (kube-proxy's name).",
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": "The last time a sync of proxy rules was queued (kube-proxy's name): a manifest change or SIGHUP.",
        "kubeproxy_sync_proxy_rules_endpoint_changes_total": "Cumulative EndpointSlice (and Endpoints) changes seen (kube-proxy's name).",
        "kubeproxy_sync_proxy_rules_service_changes_total": "Cumulative Service changes seen (kube-proxy's name).",
        "kubeproxy_network_programming_duration_seconds": "In-cluster network programming latency in seconds (kube-proxy's name): from an EndpointSlice's last-change-trigger-time to its programming in the kernel.",
        "process_cpu_seconds_total": "Total user and system CPU time spent in seconds.",
        "process_resident_memory_bytes": "Resident memory size in bytes.",
        "process_virtual_memory_bytes": "Virtual memory size in bytes.",
        "process_open_fds": "Number of open file descriptors.",
        "process_max_fds": "Maximum number of open file descriptors.",
        "process_start_time_seconds": "Start time of the process since unix epoch in seconds.",
    ]

    private func descriptor(_ label: String) -> MetricNameDescriptor? {
        Self.help[label].map { MetricNameDescriptor(metricName: label, unitName: "", helpText: $0) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        guard let descriptor = descriptor(label) else { return base.makeCounter(label: label, dimensions: dimensions) }
        return base.registry.makeCounter(descriptor: descriptor, labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        guard let descriptor = descriptor(label) else { return base.makeFloatingPointCounter(label: label, dimensions: dimensions) }
        return base.registry.makeCounter(descriptor: descriptor, labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard let descriptor = descriptor(label) else { return base.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate) }
        guard aggregate else { return base.registry.makeGauge(descriptor: descriptor, labels: dimensions) }
        let buckets = base.valueHistogramBuckets[label] ?? base.defaultValueHistogramBuckets
        return base.registry.makeValueHistogram(descriptor: descriptor, labels: dimensions, buckets: buckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard let descriptor = descriptor(label) else { return base.makeMeter(label: label, dimensions: dimensions) }
        return base.registry.makeGauge(descriptor: descriptor, labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        guard let descriptor = descriptor(label) else { return base.makeTimer(label: label, dimensions: dimensions) }
        let buckets = base.durationHistogramBuckets[label] ?? base.defaultDurationHistogramBuckets
        return base.registry.makeDurationHistogram(descriptor: descriptor, labels: dimensions, buckets: buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
    func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}
