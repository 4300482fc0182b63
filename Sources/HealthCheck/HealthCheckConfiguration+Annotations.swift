import Foundation
import IPVS

// MARK: - Annotations

extension HealthCheckConfiguration {
    /// The annotation names read by ``init(annotations:prefix:defaults:)``, after the prefix
    /// (`ipvs.swift.dev/`), with an example each.
    ///
    /// | annotation | example | field |
    /// | --- | --- | --- |
    /// | `health-check` | `tcp`, `http`, `https`, `udp`, `exec`, `none` | ``kind`` |
    /// | `health-port` | `8081` | ``port`` |
    /// | `health-interval` | `1s`, `500ms`, `1m` | ``interval`` |
    /// | `health-timeout` | `300ms` | ``timeout`` |
    /// | `health-rise` / `health-fall` | `2` | ``rise`` / ``fall`` |
    /// | `health-initial-delay` | `5s` | ``initialDelay`` |
    /// | `health-jitter` | `0.1` or `10%` | ``jitter`` |
    /// | `health-on-failure` | `quiesce`, `remove` | ``failureAction`` |
    /// | `health-initial-state` | `up`, `down` | ``initialState`` |
    /// | `health-path` | `/healthz` | ``HTTPHealthCheck/path`` |
    /// | `health-host` | `www.example.com` | ``HTTPHealthCheck/host`` |
    /// | `health-status` | `200-399`, `200` | ``HTTPHealthCheck/expectedStatus`` |
    /// | `health-body` | `OK` | ``HTTPHealthCheck/bodyContains`` |
    /// | `health-insecure-skip-verify` | `true` | ``HTTPHealthCheck/insecureSkipVerify`` |
    /// | `health-udp-send` / `health-udp-expect` | `ping` / `pong` | ``UDPHealthCheck`` (text) |
    /// | `health-exec` | `["/usr/local/bin/check", "--fast"]` or `/usr/local/bin/check --fast`; from a tenant: a name the operator allows | ``ExecHealthCheck/arguments`` |
    /// | `health-exec-dynamic-weight` | `true` | ``ExecHealthCheck/dynamicWeight`` |
    /// | `health-quorum` | `2` | ``Quorum/minimumHealthy`` |
    /// | `health-quorum-policy` | `keep-all`, `fallback` | ``Quorum/policy`` |
    /// | `health-fallback` | `10.0.0.9:8080`, `[fd00::9]:80`; from a tenant: a name (or the address) the operator allows | ``FallbackServer`` |
    public static let annotationNames: [String] = [
        "health-check", "health-port", "health-interval", "health-timeout", "health-rise", "health-fall",
        "health-initial-delay", "health-jitter", "health-on-failure", "health-initial-state", "health-path",
        "health-host", "health-status", "health-body", "health-insecure-skip-verify", "health-udp-send",
        "health-udp-expect", "health-exec", "health-exec-dynamic-weight", "health-quorum", "health-quorum-policy",
        "health-fallback",
    ]

    /// Reads a configuration from Kubernetes annotations, starting from `defaults` and overriding each field
    /// that has an annotation (see ``annotationNames``). Annotations outside `prefix + "health-"` are ignored.
    /// `author` decides what `health-exec` and `health-fallback` may say (``SettingsAuthor``).
    ///
    /// ```swift
    /// let config = try HealthCheckConfiguration(
    ///     annotations: ["ipvs.swift.dev/health-check": "http", "ipvs.swift.dev/health-path": "/healthz"],
    ///     prefix: "ipvs.swift.dev/", defaults: .default, author: .tenant(allowed: .none))
    /// ```
    ///
    /// - Throws: ``HealthCheckConfigurationError`` naming the annotation key and its value, for an unknown
    ///   `health-` annotation, a value that does not parse, an annotation that does not apply to the check
    ///   kind (`health-path` on a TCP check), an exec check or fallback server a tenant may not choose, or a
    ///   result that fails ``validate()``.
    public init(annotations: [String: String], prefix: String, defaults: HealthCheckConfiguration, author: SettingsAuthor) throws {
        let reader = AnnotationReader(annotations: annotations, prefix: prefix)
        // Most Services have no health annotation: then the defaults, without looking up each
        // name (the agent maps thousands of Services on a cold start).
        let healthPrefix = prefix + "health-"
        guard annotations.keys.contains(where: { $0.hasPrefix(healthPrefix) }) else {
            do {
                try defaults.validate()
            } catch {
                throw reader.annotationError(for: error)
            }
            self = defaults
            return
        }
        try reader.rejectUnknown()
        var config = defaults
        if let kind = try reader.kindName() { config.kind = try Self.freshKind(kind, reader: reader, defaults: defaults, author: author) }
        try reader.value("health-port") { config.port = try reader.port($0, key: "health-port") }
        try reader.value("health-interval") { config.interval = try reader.duration($0, key: "health-interval") }
        try reader.value("health-timeout") { config.timeout = try reader.duration($0, key: "health-timeout") }
        try reader.value("health-rise") { config.rise = try reader.integer($0, key: "health-rise") }
        try reader.value("health-fall") { config.fall = try reader.integer($0, key: "health-fall") }
        try reader.value("health-initial-delay") { config.initialDelay = try reader.duration($0, key: "health-initial-delay") }
        try reader.value("health-jitter") { config.jitter = try reader.fraction($0, key: "health-jitter") }
        try reader.value("health-on-failure") {
            config.failureAction = try reader.choice($0, key: "health-on-failure", FailureAction.allCases)
        }
        try reader.value("health-initial-state") {
            config.initialState = try reader.choice($0, key: "health-initial-state", InitialHealth.allCases)
        }
        config.kind = try Self.applyKindAnnotations(to: config.kind, reader: reader, author: author)
        config.quorum = try Self.quorum(reader: reader, defaults: defaults.quorum, author: author)
        do {
            try config.validate()
        } catch {
            throw reader.annotationError(for: error)
        }
        self = config
    }

    // MARK: - Kind

    private static func freshKind(
        _ name: String, reader: AnnotationReader, defaults: HealthCheckConfiguration, author: SettingsAuthor
    ) throws -> HealthCheckKind {
        switch name {
        case "none", "disabled": return .disabled
        case "tcp": return .tcp
        case "http", "https":
            var http = HTTPHealthCheck()
            if case .http(let base) = defaults.kind { http = base }
            http.tls = name == "https"
            return .http(http)
        case "udp":
            if case .udp(let base) = defaults.kind { return .udp(base) }
            return .udp(UDPHealthCheck())
        case "exec":
            if case .exec(let base) = defaults.kind { return .exec(base) }
            guard reader.has("health-exec") else {
                if case .tenant(let allowed) = author {
                    throw reader.error("health-check", name, "needs the annotation \(reader.prefix)health-exec naming an exec check; "
                        + OperatorAllowances.choices(allowed.execChecks, section: "exec"))
                }
                throw reader.error("health-check", name, "needs the annotation \(reader.prefix)health-exec naming the program")
            }
            return .exec(ExecHealthCheck(arguments: []))
        default:
            throw reader.error("health-check", name, "is not a check kind; use tcp, http, https, udp, exec or none")
        }
    }

    private static func applyKindAnnotations(to kind: HealthCheckKind, reader: AnnotationReader, author: SettingsAuthor) throws -> HealthCheckKind {
        let httpKeys = ["health-path", "health-host", "health-status", "health-body", "health-insecure-skip-verify"]
        let udpKeys = ["health-udp-send", "health-udp-expect"]
        let execKeys = ["health-exec", "health-exec-dynamic-weight"]
        var allowed: [String] = []
        var result = kind
        switch kind {
        case .http(var http):
            allowed = httpKeys
            try reader.value("health-path") { http.path = $0 }
            try reader.value("health-host") { http.host = $0 }
            try reader.value("health-status") { http.expectedStatus = try reader.statusRange($0, key: "health-status") }
            try reader.value("health-body") { http.bodyContains = $0 }
            try reader.value("health-insecure-skip-verify") {
                http.insecureSkipVerify = try reader.boolean($0, key: "health-insecure-skip-verify")
            }
            result = .http(http)
        case .udp(var udp):
            allowed = udpKeys
            try reader.value("health-udp-send") { udp.payload = Array($0.utf8) }
            try reader.value("health-udp-expect") { udp.expectedReply = Array($0.utf8) }
            result = .udp(udp)
        case .exec(var exec):
            allowed = execKeys
            try reader.value("health-exec") { text in
                guard case .tenant(let allowed) = author else {
                    exec.arguments = try reader.argv(text, key: "health-exec")
                    return
                }
                // A tenant names a check; the operator's entry says which program runs, and as whom.
                guard let chosen = allowed.execChecks[String(text.trimmingWhitespace())] else {
                    throw reader.error("health-exec", text, "is not an exec check this node allows; "
                        + OperatorAllowances.choices(allowed.execChecks, section: "exec"))
                }
                exec.arguments = chosen.arguments
                exec.user = chosen.user
                exec.dynamicWeight = chosen.dynamicWeight
            }
            try reader.value("health-exec-dynamic-weight") {
                exec.dynamicWeight = try reader.boolean($0, key: "health-exec-dynamic-weight")
            }
            result = .exec(exec)
        case .disabled, .tcp:
            break
        }
        for key in httpKeys + udpKeys + execKeys where !allowed.contains(key) && reader.has(key) {
            throw reader.error(key, reader.raw(key) ?? "", "does not apply to a \(kind.name) check; set \(reader.prefix)health-check")
        }
        return result
    }

    // MARK: - Quorum

    private static func quorum(reader: AnnotationReader, defaults: Quorum?, author: SettingsAuthor) throws -> Quorum? {
        guard reader.has("health-quorum") || reader.has("health-quorum-policy") || reader.has("health-fallback") else {
            return defaults
        }
        var quorum = defaults ?? Quorum()
        try reader.value("health-quorum") { quorum.minimumHealthy = try reader.integer($0, key: "health-quorum") }
        var fallback: FallbackServer?
        try reader.value("health-fallback") { text in
            guard case .tenant(let allowed) = author else {
                fallback = try reader.endpoint(text, key: "health-fallback")
                return
            }
            // A tenant names a fallback the operator lists (by its name, or by its address and port).
            let trimmed = String(text.trimmingWhitespace())
            let byAddress = try? reader.endpoint(text, key: "health-fallback")
            guard let chosen = allowed.fallbacks[trimmed] ?? allowed.fallbacks.sorted(by: { $0.key < $1.key }).first(where: { $0.value.id == byAddress?.id })?.value else {
                throw reader.error("health-fallback", text, "is not a fallback server this node allows; "
                    + OperatorAllowances.choices(allowed.fallbacks, section: "fallback"))
            }
            fallback = chosen
        }
        let policyName = reader.raw("health-quorum-policy").map { String($0.trimmingWhitespace()) }
            ?? (fallback != nil ? "fallback" : nil)
        switch policyName {
        case nil: break
        case "keep-all":
            if fallback != nil {
                throw reader.error("health-fallback", reader.raw("health-fallback") ?? "", "needs \(reader.prefix)health-quorum-policy: fallback")
            }
            quorum.policy = .keepAll
        case "fallback":
            if let fallback {
                quorum.policy = .fallback(fallback)
            } else if case .fallback = quorum.policy {
                break
            } else {
                throw reader.error("health-quorum-policy", "fallback", "needs \(reader.prefix)health-fallback: <address>:<port>")
            }
        case let other?:
            throw reader.error("health-quorum-policy", other, "is not a policy; use keep-all or fallback")
        }
        return quorum
    }
}
