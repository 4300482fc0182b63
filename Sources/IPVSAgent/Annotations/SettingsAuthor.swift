import HealthCheck

// MARK: - Who wrote the settings

/// Who wrote the health settings being read, which decides what they may ask for. A Service's annotations
/// are its owner's (a tenant's); the agent's configuration file is the node operator's. Only the operator may
/// name a program to run on the node or a server to send a Service's traffic to; a tenant may only pick, by
/// name, among those the operator allows.
enum SettingsAuthor: Hashable, Sendable {
    /// A Service's owner: `health-exec` and `health-fallback` name entries of `allowed`.
    case tenant(allowed: OperatorAllowances)
    /// The node's operator: `health-exec` is a program and `health-fallback` an address and port.
    case nodeOperator
}

/// The exec checks and fallback servers the node's operator lets Service annotations choose, each by name.
public struct OperatorAllowances: Hashable, Sendable {
    /// Exec checks by name, each with the user it runs as.
    public var execChecks: [String: ExecHealthCheck]
    /// Fallback ("sorry") servers by name.
    public var fallbacks: [String: FallbackServer]

    public init(execChecks: [String: ExecHealthCheck] = [:], fallbacks: [String: FallbackServer] = [:]) {
        self.execChecks = execChecks
        self.fallbacks = fallbacks
    }

    /// Nothing allowed: no exec check, no fallback server.
    public static let none = OperatorAllowances()

    /// What an annotation may name instead: `check-dns, check-ldap`, or that the operator allows none.
    static func choices<Value>(_ entries: [String: Value], section: String) -> String {
        entries.isEmpty
            ? "an annotation may only name one the node's operator allows in healthChecks.allowed.\(section) of the agent's --config, and it allows none"
            : "an annotation may only name one of \(entries.keys.sorted().joined(separator: ", ")) (healthChecks.allowed.\(section) in the agent's --config)"
    }
}
