import HealthCheck

/// What `--config` names: the agent's own configuration (``AgentConfiguration``) or kube-proxy's
/// (``KubeProxyConfiguration``, as kubeadm writes it); the document's `kind` decides.
public enum ConfigurationFile: Hashable, Sendable {
    case agent(AgentConfiguration)
    case kubeProxy(KubeProxyConfiguration)

    /// Reads the file at `path`; an agent configuration's health sections start from `base` (`--health-check`).
    ///
    /// - Throws: ``AgentConfigurationError`` with every problem found, each naming the file, line and field.
    public static func load(path: String, base: HealthCheckConfiguration) throws(AgentConfigurationError) -> ConfigurationFile {
        try parse(try AgentConfiguration.readText(path: path), file: path, base: base)
    }

    /// Reads a configuration from `text` (`file` names it in errors).
    public static func parse(_ text: String, file: String, base: HealthCheckConfiguration) throws(AgentConfigurationError) -> ConfigurationFile {
        if kind(of: text) == KubeProxyConfiguration.kind {
            return .kubeProxy(try KubeProxyConfiguration.parse(text, file: file))
        }
        return .agent(try AgentConfiguration.parse(text, file: file, base: base))
    }

    /// The agent configuration this file gives: a kube-proxy configuration has no health sections,
    /// so every Service starts from `base`.
    public func agentConfiguration(base: HealthCheckConfiguration) -> AgentConfiguration {
        switch self {
        case .agent(let configuration): configuration
        case .kubeProxy: AgentConfiguration(healthDefault: base)
        }
    }

    /// The kube-proxy configuration, when the file is one.
    public var kubeProxy: KubeProxyConfiguration? {
        if case .kubeProxy(let configuration) = self { return configuration }
        return nil
    }

    /// The top-level `kind` of a one-document mapping, if it has one.
    private static func kind(of text: String) -> String? {
        guard let roots = try? YAMLTree.parse(text).roots, roots.count == 1, let root = roots.first, root.kind == .mapping else {
            return nil
        }
        for position in 0..<root.count where root.pair(position).key.scalar == "kind" {
            return root.pair(position).value.scalar
        }
        return nil
    }
}
