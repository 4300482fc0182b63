import Foundation
import HealthCheck
import IPVS
import PacketFilter

/// kube-proxy's own configuration file (`kubeproxy.config.k8s.io/v1alpha1`, kind `KubeProxyConfiguration`),
/// as kubeadm writes it into the `kube-proxy` ConfigMap's `config.conf`, read by `--config` beside the
/// agent's own kind (`ConfigurationFile` decides by `kind`).
///
/// Read as kube-proxy reads it: strictly (a field kube-proxy does not know is an error naming it),
/// zero values meaning kube-proxy's defaults (`syncPeriod: 0s` is 30s, `metricsBindAddress: ""` is
/// `127.0.0.1:10249`). Fields the agent implements set the same thing as their flags (a flag given on
/// the command line wins, as with kube-proxy); a field that changes kube-proxy's IPVS mode and that the
/// agent does not implement is a warning naming it; fields kube-proxy's IPVS mode itself ignores
/// (`nftables`, `winkernel`, `iptables.syncPeriod`, `portRange`, …) are accepted silently.
public struct KubeProxyConfiguration: Hashable, Sendable {
    /// The `apiVersion` this agent reads.
    public static let apiVersion = "kubeproxy.config.k8s.io/v1alpha1"
    /// The `kind` of the document.
    public static let kind = "KubeProxyConfiguration"

    /// `hostnameOverride`: this node's name (`--hostname-override`, `--node-name`); `nil` when empty.
    public var hostnameOverride: String?
    /// `ipvs.scheduler` (`--ipvs-scheduler`, `--scheduler`); `nil` when empty (kube-proxy's default, rr).
    public var scheduler: Scheduler?
    /// `ipvs.syncPeriod` (`--ipvs-sync-period`, `--sync-period`): kube-proxy's default 30s when `0s`.
    public var syncPeriod: Duration = .seconds(30)
    /// `ipvs.minSyncPeriod` (`--ipvs-min-sync-period`): the least time between two reloads; 0 reloads at once.
    public var minSyncPeriod: Duration = .zero
    /// `ipvs.strictARP` (`--ipvs-strict-arp`, `--strict-arp`).
    public var strictARP = false
    /// `ipvs.tcpTimeout`, `tcpFinTimeout`, `udpTimeout` in seconds; 0 leaves the kernel's value.
    public var timeouts = Timeouts()
    /// `ipvs.excludeCIDRs` (`--ipvs-exclude-cidrs`): checked, and already the agent's rule (see the README).
    public var excludeCIDRs: [String] = []
    /// `metricsBindAddress` (`--metrics-bind-address`, `--metrics-address`), with kube-proxy's default port.
    public var metricsBindAddress = KubeProxyConfiguration.defaultMetricsBindAddress
    /// `healthzBindAddress` (`--healthz-bind-address`), with kube-proxy's default port.
    public var healthzBindAddress = KubeProxyConfiguration.defaultHealthzBindAddress
    /// `bindAddressHardFail` (`--bind-address-hard-fail`): a port that cannot be bound stops the agent.
    public var bindAddressHardFail = false
    /// Settings for flags other parts of the agent read (see ``FlagValues``).
    public var flagValues = FlagValues()
    /// One warning per field set here that the agent does not implement, naming the file, line and field.
    public var warnings: [ManifestIssue] = []

    /// kube-proxy's `metricsBindAddress` default.
    public static let defaultMetricsBindAddress = "127.0.0.1:10249"
    /// kube-proxy's `healthzBindAddress` default.
    public static let defaultHealthzBindAddress = "0.0.0.0:10256"

    // MARK: - Settings of other parts

    /// kube-proxy settings that set flags read by other parts of the agent: the nftables table's
    /// (`--cluster-cidr`, `--nodeport-addresses`, `--masquerade-all`) and the API server source's
    /// (`--kubeconfig`). `AgentCommand.applying(_:)` gives them to the flags not set on the command line.
    public struct FlagValues: Hashable, Sendable {
        /// `clusterCIDR` (`--cluster-cidr`): comma-separated CIDRs.
        public var clusterCIDR: String?
        /// `nodePortAddresses` (`--nodeport-addresses`).
        public var nodePortAddresses: [String] = []
        /// `iptables.masqueradeAll` (`--masquerade-all`), which kube-proxy's IPVS mode applies too.
        public var masqueradeAll = false
        /// `clientConnection.kubeconfig` (`--kubeconfig`).
        public var kubeconfig: String?
    }

    // MARK: - Reading

    /// Reads a configuration from `text` (`file` names it in errors and warnings).
    ///
    /// - Throws: ``AgentConfigurationError`` with every problem found, each naming the file, line and field.
    public static func parse(_ text: String, file: String) throws(AgentConfigurationError) -> KubeProxyConfiguration {
        let roots: [YAMLNode]
        do {
            roots = try YAMLTree.parse(text).roots
        } catch {
            throw AgentConfigurationError(problems: [ManifestIssue(file: file, line: error.line, message: "not YAML or JSON: \(error.summary)")])
        }
        guard roots.count == 1, let root = roots.first, root.kind == .mapping else {
            throw AgentConfigurationError(problems: [ManifestIssue(file: file, line: roots.first?.line, message: "holds \(roots.count) documents or is not a mapping; a configuration file is one mapping")])
        }
        var reader = KubeProxyConfigurationReader(file: file)
        let configuration = reader.read(root)
        guard reader.problems.isEmpty else { throw AgentConfigurationError(problems: reader.problems) }
        return configuration
    }

    /// `address` with kube-proxy's default `port` when it names none (`0.0.0.0` → `0.0.0.0:10256`,
    /// `::` → `[::]:10256`), as kube-proxy's `AppendPortIfNeeded`; `nil` when it is no host and port.
    static func bindAddress(_ address: String, defaultPort: Int) -> String? {
        if MetricsServer.parse(address) != nil, !(IPAddress(address)?.family == .inet6) { return address }
        guard let ip = IPAddress(address.hasPrefix("[") && address.hasSuffix("]") ? String(address.dropFirst().dropLast()) : address) else {
            return nil
        }
        return ip.family == .inet6 ? "[\(ip)]:\(defaultPort)" : "\(ip):\(defaultPort)"
    }
}

// MARK: - Reader

/// Walks a `KubeProxyConfiguration`, collecting every problem and warning rather than stopping at the first.
private struct KubeProxyConfigurationReader {
    let file: String
    var problems: [ManifestIssue] = []
    var configuration = KubeProxyConfiguration()

    /// What the agent does with a field.
    enum Use {
        /// Read by the agent (a `case` of `read` or `readIPVS` handles it).
        case implemented
        /// Changes kube-proxy's IPVS mode; the agent does not do it: a warning when set.
        case unimplemented
        /// As `unimplemented`, and a warning even when unset, since kube-proxy's default acts then.
        case unimplementedWithDefault
        /// kube-proxy's IPVS mode does not use it either: accepted silently.
        case ignoredInIPVSMode
        /// A ``KubeProxyConfiguration/FlagValues`` setting.
        case flagValue
    }

    /// Every field of `KubeProxyConfiguration` (kube-proxy's `staging/src/k8s.io/kube-proxy/config/v1alpha1/types.go`).
    static let fields: [String: Use] = [
        "apiVersion": .implemented, "kind": .implemented, "featureGates": .unimplemented,
        "clientConnection": .implemented, "logging": .unimplemented, "hostnameOverride": .implemented,
        "bindAddress": .unimplemented, "healthzBindAddress": .implemented, "metricsBindAddress": .implemented,
        "bindAddressHardFail": .implemented, "enableProfiling": .unimplemented, "showHiddenMetricsForVersion": .unimplemented,
        "mode": .implemented, "iptables": .implemented, "ipvs": .implemented, "nftables": .ignoredInIPVSMode,
        "winkernel": .ignoredInIPVSMode, "detectLocalMode": .unimplemented, "detectLocal": .unimplemented,
        "clusterCIDR": .flagValue, "nodePortAddresses": .flagValue, "oomScoreAdj": .unimplementedWithDefault,
        "conntrack": .unimplementedWithDefault, "configSyncPeriod": .unimplemented, "portRange": .ignoredInIPVSMode,
        "windowsRunAsService": .ignoredInIPVSMode,
    ]

    /// The fields of each section kube-proxy decodes strictly (`logging` and `featureGates` are read whole).
    static let sections: [String: [String: Use]] = [
        "clientConnection": ["kubeconfig": .flagValue, "acceptContentTypes": .unimplemented, "contentType": .unimplemented,
                             "qps": .unimplemented, "burst": .unimplemented],
        "iptables": ["masqueradeBit": .unimplemented, "masqueradeAll": .flagValue, "localhostNodePorts": .ignoredInIPVSMode,
                     "snatNodeInternalIP": .unimplemented, "syncPeriod": .ignoredInIPVSMode, "minSyncPeriod": .ignoredInIPVSMode],
        "ipvs": ["syncPeriod": .implemented, "minSyncPeriod": .implemented, "scheduler": .implemented, "excludeCIDRs": .implemented,
                 "strictARP": .implemented, "tcpTimeout": .implemented, "tcpFinTimeout": .implemented, "udpTimeout": .implemented],
        "nftables": ["masqueradeBit": .ignoredInIPVSMode, "masqueradeAll": .ignoredInIPVSMode, "syncPeriod": .ignoredInIPVSMode,
                     "minSyncPeriod": .ignoredInIPVSMode],
        "winkernel": ["networkName": .ignoredInIPVSMode, "sourceVip": .ignoredInIPVSMode, "enableDSR": .ignoredInIPVSMode,
                      "rootHnsEndpointName": .ignoredInIPVSMode, "forwardHealthCheckVip": .ignoredInIPVSMode],
        "detectLocal": ["bridgeInterface": .unimplemented, "interfaceNamePrefix": .unimplemented],
        "conntrack": ["maxPerCore": .unimplemented, "min": .unimplemented, "tcpEstablishedTimeout": .unimplemented,
                      "tcpCloseWaitTimeout": .unimplemented, "tcpBeLiberal": .unimplemented, "udpTimeout": .unimplemented,
                      "udpStreamTimeout": .unimplemented],
    ]

    /// Why the agent does not do what an unimplemented field asks, by field.
    static let reasons: [String: String] = [
        "conntrack": "kube-proxy sets nf_conntrack_max and the conntrack timeouts (its defaults when unset: 32768 entries per core, at least 131072; established TCP 24h, CLOSE_WAIT 1h); this agent leaves them as the node has them: set them with sysctl (net.netfilter.nf_conntrack_*)",
        "oomScoreAdj": "kube-proxy sets its own oom_score_adj (-999 when unset); this agent leaves its own as started: set OOMScoreAdjust= in the systemd unit or the Pod's priority class",
        "bindAddress": "only sets kube-proxy's idea of the node's primary IP; this agent finds the node's addresses itself (--node-ip)",
        "configSyncPeriod": "is how often kube-proxy re-lists the API server; this agent watches its --manifests files instead",
        "logging": "this agent logs with --log-level and --log-format",
    ]

    mutating func problem(_ line: Int?, _ field: String, _ message: String) {
        problems.append(ManifestIssue(file: file, line: line, field: field, message: message))
    }

    mutating func warn(_ line: Int?, _ field: String, _ message: String) {
        configuration.warnings.append(ManifestIssue(file: file, line: line, field: field, message: message))
    }

    mutating func read(_ root: YAMLNode) -> KubeProxyConfiguration {
        var mode: YAMLNode?
        for position in 0..<root.count {
            let (key, value) = root.pair(position)
            let name = key.scalar ?? ""
            guard let use = Self.fields[name] else {
                problem(key.line, name, "is not a field of \(KubeProxyConfiguration.kind) (kube-proxy decodes it strictly and refuses it too); check its spelling")
                continue
            }
            switch name {
            case "apiVersion":
                if value.scalar != KubeProxyConfiguration.apiVersion {
                    problem(value.line, name, "is \(Self.show(value)); this agent reads \(KubeProxyConfiguration.apiVersion)")
                }
            case "kind": break
            case "mode": mode = value
            case "hostnameOverride": configuration.hostnameOverride = text(value, name).flatMap { $0.isEmpty ? nil : $0 }
            case "metricsBindAddress": readBindAddress(value, name, defaultPort: 10249) { $0.metricsBindAddress = $1 }
            case "healthzBindAddress": readBindAddress(value, name, defaultPort: 10256) { $0.healthzBindAddress = $1 }
            case "bindAddressHardFail": configuration.bindAddressHardFail = bool(value, name) ?? false
            case "ipvs": readIPVS(value)
            case "clusterCIDR":
                guard let cidrs = text(value, name), !cidrs.isEmpty else { continue }
                for cidr in cidrs.split(separator: ",", omittingEmptySubsequences: false)
                where AddressPrefix(cidr.trimmingCharacters(in: .whitespaces)) == nil {
                    problem(value.line, name, "\"\(cidr)\" is not a CIDR; use e.g. 10.244.0.0/16 or 10.244.0.0/16,fd00:10:244::/56")
                }
                configuration.flagValues.clusterCIDR = cidrs
            case "nodePortAddresses":
                let cidrs = list(value, name) ?? []
                for cidr in cidrs where AddressPrefix(cidr) == nil {
                    problem(value.line, name, "\"\(cidr)\" is not a CIDR; use e.g. 192.168.0.0/16 (the agent takes no \"primary\")")
                }
                configuration.flagValues.nodePortAddresses = cidrs
            case "bindAddress" where ["", "0.0.0.0", "::"].contains(value.scalar ?? ""): break
            default:
                if let fields = Self.sections[name] {
                    readSection(value, name, fields: fields)
                } else {
                    check(use, value, name)
                }
            }
        }
        if let mode {
            if mode.scalar != "ipvs" {
                problem(mode.line, "mode", "is \(Self.show(mode))\(mode.scalar == "" ? " (kube-proxy's default: iptables)" : ""); this agent stands in for kube-proxy's IPVS mode only: set mode: ipvs")
            }
        } else {
            problem(root.line, "mode", "is missing (kube-proxy's default: iptables); this agent stands in for kube-proxy's IPVS mode only: set mode: ipvs")
        }
        return configuration
    }

    /// A field the agent does not implement: a warning when it is set (or always, when kube-proxy's default acts).
    private mutating func check(_ use: Use, _ value: YAMLNode, _ field: String) {
        switch use {
        case .implemented, .ignoredInIPVSMode, .flagValue: return
        case .unimplemented where Self.isUnset(value): return
        case .unimplemented, .unimplementedWithDefault:
            let reason = Self.reasons[field] ?? "changes what kube-proxy does and this agent does not implement it"
            warn(value.line, field, "is not implemented and is ignored: \(reason)")
        }
    }

    /// A section decoded strictly; `conntrack` (warned about whole, once) and `clientConnection`'s `kubeconfig`.
    private mutating func readSection(_ node: YAMLNode, _ section: String, fields: [String: Use]) {
        guard let pairs = mapping(node, section) else { return }
        for (key, value) in pairs {
            let name = key.scalar ?? ""
            let field = "\(section).\(name)"
            guard let use = fields[name] else {
                problem(key.line, field, "is not a field of \(section) (kube-proxy refuses it too); known: \(fields.keys.sorted().joined(separator: ", "))")
                continue
            }
            switch field {
            case "clientConnection.kubeconfig":
                configuration.flagValues.kubeconfig = text(value, field).flatMap { $0.isEmpty ? nil : $0 }
            case "iptables.masqueradeAll":
                configuration.flagValues.masqueradeAll = bool(value, field) ?? false
            default:
                if section != "conntrack" { check(use, value, field) }
            }
        }
        if section == "conntrack" { check(.unimplementedWithDefault, node, section) }
    }

    private mutating func readIPVS(_ node: YAMLNode) {
        guard let pairs = mapping(node, "ipvs") else { return }
        for (key, value) in pairs {
            let name = key.scalar ?? ""
            let field = "ipvs.\(name)"
            switch name {
            case "syncPeriod":
                if let period = duration(value, field) {
                    if period != .zero, period < .milliseconds(100) {
                        problem(value.line, field, "must be at least 100ms (0s: kube-proxy's default, 30s)")
                    } else if period != .zero {
                        configuration.syncPeriod = period
                    }
                }
            case "minSyncPeriod":
                if let period = duration(value, field) { configuration.minSyncPeriod = period }
            case "scheduler":
                guard let name = text(value, field), !name.isEmpty else { continue }
                guard Scheduler(rawValue: name).isKnown else {
                    problem(value.line, field, "\"\(name)\" is not an IPVS scheduler; use one of \(Scheduler.knownNames)")
                    continue
                }
                configuration.scheduler = Scheduler(rawValue: name)
            case "excludeCIDRs":
                let cidrs = list(value, field) ?? []
                for cidr in cidrs where AddressPrefix(cidr) == nil {
                    problem(value.line, field, "\"\(cidr)\" is not a CIDR; use e.g. 10.0.0.0/8 or fd00::/8")
                }
                configuration.excludeCIDRs = cidrs
            case "strictARP":
                configuration.strictARP = bool(value, field) ?? false
            case "tcpTimeout", "tcpFinTimeout", "udpTimeout":
                guard let timeout = duration(value, field) else { continue }
                guard let seconds = KubeProxyConfiguration.timeoutSeconds(timeout) else {
                    problem(value.line, field, "is too long for the kernel (at most \(UInt32.max) seconds)")
                    continue
                }
                switch name {
                case "tcpTimeout": configuration.timeouts.tcp = seconds
                case "tcpFinTimeout": configuration.timeouts.tcpFin = seconds
                default: configuration.timeouts.udp = seconds
                }
            default:
                let known = Self.sections["ipvs"]!.keys.sorted().joined(separator: ", ")
                problem(key.line, field, "is not a field of ipvs (kube-proxy refuses it too); known: \(known)")
            }
        }
    }

    private mutating func readBindAddress(_ node: YAMLNode, _ field: String, defaultPort: Int,
                                          set: (inout KubeProxyConfiguration, String) -> Void) {
        guard let address = text(node, field), !address.isEmpty else { return }
        guard let full = KubeProxyConfiguration.bindAddress(address, defaultPort: defaultPort) else {
            problem(node.line, field, "\"\(address)\" is not an address and port; use e.g. 0.0.0.0:\(defaultPort) or [::]:\(defaultPort)")
            return
        }
        set(&configuration, full)
    }

    // MARK: - Values

    private mutating func mapping(_ node: YAMLNode, _ field: String) -> [(key: YAMLNode, value: YAMLNode)]? {
        if Self.isNull(node) { return [] }
        guard node.kind == .mapping else {
            problem(node.line, field, "must be a mapping")
            return nil
        }
        return (0..<node.count).map { node.pair($0) }
    }

    private mutating func text(_ node: YAMLNode, _ field: String) -> String? {
        if Self.isNull(node) { return "" }
        guard node.kind == .scalar, let text = node.scalar else {
            problem(node.line, field, "must be a single value")
            return nil
        }
        return text
    }

    private mutating func bool(_ node: YAMLNode, _ field: String) -> Bool? {
        guard let value = text(node, field) else { return nil }
        switch value {
        case "", "false": return false
        case "true": return true
        default:
            problem(node.line, field, "is \"\(value)\"; use true or false")
            return nil
        }
    }

    private mutating func duration(_ node: YAMLNode, _ field: String) -> Duration? {
        guard let value = text(node, field) else { return nil }
        if value.isEmpty { return .zero }
        guard let duration = DurationText.parse(value) else {
            problem(node.line, field, "\"\(value)\" is not a duration; \(DurationText.expected)")
            return nil
        }
        return duration
    }

    private mutating func list(_ node: YAMLNode, _ field: String) -> [String]? {
        if Self.isNull(node) { return [] }
        guard node.kind == .sequence else {
            problem(node.line, field, "must be a list")
            return nil
        }
        var items: [String] = []
        for position in 0..<node.count {
            let item = node.element(position)
            guard item.kind == .scalar, let text = item.scalar else {
                problem(item.line, "\(field)[\(position)]", "must be a single value")
                continue
            }
            items.append(text)
        }
        return items
    }

    /// A plain scalar that YAML reads as null.
    private static func isNull(_ node: YAMLNode) -> Bool {
        node.kind == .scalar && node.isPlain && ["", "~", "null", "Null", "NULL"].contains(node.scalar ?? "")
    }

    /// Whether a value is Go's zero value, which kube-proxy reads as "not set": null, "", 0, 0s, false,
    /// an empty list or mapping, or a mapping of such values (kubeadm writes every section so).
    static func isUnset(_ node: YAMLNode) -> Bool {
        switch node.kind {
        case .scalar: return isNull(node) || ["", "0", "0s", "false"].contains(node.scalar ?? "")
        case .sequence: return node.count == 0
        case .mapping: return (0..<node.count).allSatisfy { isUnset(node.pair($0).value) }
        }
    }

    private static func show(_ node: YAMLNode) -> String {
        node.scalar.map { "\"\($0)\"" } ?? "not a string"
    }
}

extension KubeProxyConfiguration {
    /// A duration in whole seconds for the kernel's IPVS timeouts (kube-proxy truncates as well); `nil` past `UInt32`.
    static func timeoutSeconds(_ duration: Duration) -> UInt32? {
        UInt32(exactly: duration.components.seconds)
    }
}
