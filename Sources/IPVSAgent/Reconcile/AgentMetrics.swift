import Metrics

/// The agent's metrics, through swift-metrics (the executable bootstraps Prometheus).
public struct AgentMetrics: Sendable {
    /// Seconds per reconcile pass (`ipvs_agent_sync_duration_seconds`).
    public let syncDuration = Metrics.Timer(label: "ipvs_agent_sync_duration_seconds", preferredDisplayUnit: .seconds)
    /// Kernel operations applied successfully (`ipvs_agent_operations_applied_total`).
    public let operationsApplied = Counter(label: "ipvs_agent_operations_applied_total")
    /// Kernel operations or reads that failed (`ipvs_agent_errors_total`).
    public let errors = Counter(label: "ipvs_agent_errors_total")
    /// Manifest problems found on the last load (`ipvs_agent_manifest_issues`).
    public let manifestIssues = Gauge(label: "ipvs_agent_manifest_issues")
    /// Differences between the model and the kernel repaired by verification (`ipvs_agent_drift_repaired_total`).
    public let driftRepaired = Counter(label: "ipvs_agent_drift_repaired_total")
    /// Virtual services the agent owns in the kernel (`ipvs_agent_services_programmed`).
    public let servicesProgrammed = Gauge(label: "ipvs_agent_services_programmed")
    /// Real servers of those services (`ipvs_agent_real_servers_programmed`).
    public let realServersProgrammed = Gauge(label: "ipvs_agent_real_servers_programmed")
    /// Real servers draining at weight 0 (`ipvs_agent_real_servers_draining`).
    public let realServersDraining = Gauge(label: "ipvs_agent_real_servers_draining")
    /// VIPs the agent owns on the dummy interface (`ipvs_agent_addresses_programmed`).
    public let addressesProgrammed = Gauge(label: "ipvs_agent_addresses_programmed")

    public init() {}
}
