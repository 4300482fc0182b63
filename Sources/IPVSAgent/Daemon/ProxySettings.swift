import ArgumentParser
import IPVS
import PacketFilter

/// The settings kube-proxy's flags and its `KubeProxyConfiguration` share, resolved as kube-proxy
/// resolves them: a flag given on the command line, else the configuration file's field, else the default.
struct ProxySettings: Hashable, Sendable {
    /// `--scheduler`/`--ipvs-scheduler`, `ipvs.scheduler`; rr.
    var scheduler: Scheduler
    /// `--node-name`/`--hostname-override`, `hostnameOverride`; `nil`: the host name.
    var nodeName: String?
    /// `--sync-period`/`--ipvs-sync-period`, `ipvs.syncPeriod`; 30s.
    var syncPeriod: Duration
    /// `--min-sync-period`/`--ipvs-min-sync-period`, `ipvs.minSyncPeriod`; 0 for files, 1s for the API server.
    var minSyncPeriod: Duration
    /// `--strict-arp`/`--ipvs-strict-arp` or `ipvs.strictARP`.
    var strictARP: Bool
    /// `--ipvs-tcp-timeout`, `--ipvs-tcpfin-timeout`, `--ipvs-udp-timeout` and their `ipvs.*` fields, in
    /// seconds; 0 leaves the kernel's value.
    var timeouts: Timeouts
    /// `--metrics-address`/`--metrics-bind-address`, `metricsBindAddress`; `nil`: none.
    var metricsAddress: String?
    /// `--healthz-bind-address`, `healthzBindAddress`; `nil`: none.
    var healthzAddress: String?
    /// `--bind-address-hard-fail` or `bindAddressHardFail`.
    var bindAddressHardFail: Bool

    init(command: AgentCommand, file: KubeProxyConfiguration? = nil) {
        let file = file ?? KubeProxyConfiguration()
        scheduler = command.scheduler ?? file.scheduler ?? .roundRobin
        nodeName = command.nodeName ?? file.hostnameOverride
        syncPeriod = command.syncPeriod?.duration ?? file.syncPeriod
        // A zero in the file is kube-proxy's "unset"; the API server's events are coalesced by default.
        let followsAPIServer = command.kubeconfig != nil || command.inCluster
        minSyncPeriod = command.ipvsMinSyncPeriod?.duration
            ?? (file.minSyncPeriod != .zero ? file.minSyncPeriod : followsAPIServer ? .seconds(1) : .zero)
        strictARP = command.strictARP || file.strictARP
        func seconds(_ flag: DurationArgument?, _ field: UInt32) -> UInt32 {
            flag.map { KubeProxyConfiguration.timeoutSeconds($0.duration) ?? 0 } ?? field
        }
        timeouts = Timeouts(tcp: seconds(command.ipvsTCPTimeout, file.timeouts.tcp),
                            tcpFin: seconds(command.ipvsTCPFinTimeout, file.timeouts.tcpFin),
                            udp: seconds(command.ipvsUDPTimeout, file.timeouts.udp))
        func address(_ flag: String?, _ field: String, port: Int) -> String? {
            guard let flag else { return field }
            return flag == "none" ? nil : KubeProxyConfiguration.bindAddress(flag, defaultPort: port)
        }
        metricsAddress = address(command.metricsAddress, file.metricsBindAddress, port: 10249)
        healthzAddress = address(command.healthzBindAddress, file.healthzBindAddress, port: 10256)
        bindAddressHardFail = command.bindAddressHardFail || file.bindAddressHardFail
    }

    /// Checks the flags of these settings (the file's fields are checked when it is read).
    static func validate(_ command: AgentCommand) throws {
        for (flag, value, port) in [("--metrics-address", command.metricsAddress, 10249), ("--healthz-bind-address", command.healthzBindAddress, 10256)] {
            if let value, value != "none", KubeProxyConfiguration.bindAddress(value, defaultPort: port) == nil {
                throw ValidationError("\(flag) must be host:port (0.0.0.0:\(port), [::1]:\(port)), an address alone (port \(port)) or none; got '\(value)'")
            }
        }
        if let period = command.syncPeriod, period.duration < .milliseconds(100) {
            throw ValidationError("--sync-period (--ipvs-sync-period) must be at least 100ms")
        }
        for (flag, value) in [("--ipvs-tcp-timeout", command.ipvsTCPTimeout), ("--ipvs-tcpfin-timeout", command.ipvsTCPFinTimeout),
                              ("--ipvs-udp-timeout", command.ipvsUDPTimeout)] {
            if let value, KubeProxyConfiguration.timeoutSeconds(value.duration) == nil {
                throw ValidationError("\(flag) is too long for the kernel (at most \(UInt32.max) seconds)")
            }
        }
        for cidr in (command.ipvsExcludeCIDRs ?? "").split(separator: ",") where AddressPrefix(String(cidr)) == nil {
            throw ValidationError("--ipvs-exclude-cidrs: '\(cidr)' is not a CIDR; use e.g. 10.0.0.0/8,fd00::/8")
        }
    }
}
