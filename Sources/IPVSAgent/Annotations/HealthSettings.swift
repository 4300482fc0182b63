import Foundation
import HealthCheck
import IPVS

// MARK: - HealthSettings

/// Reads a ``HealthCheckConfiguration`` from health settings: a Service's `ipvs.swift.dev/health-*`
/// annotations, or a health section of the agent's configuration file (``HealthSetting`` lists both).
/// Each setting overrides one field of the defaults; `author` decides what `exec` and `fallback` may say
/// (``SettingsAuthor``).
enum HealthSettings {
    /// The configuration a Service's `annotations` ask for over `defaults`; annotations outside
    /// `prefix + "health-"` are ignored.
    ///
    /// ```swift
    /// let config = try HealthSettings.configuration(
    ///     annotations: ["ipvs.swift.dev/health-check": "http", "ipvs.swift.dev/health-path": "/healthz"],
    ///     prefix: "ipvs.swift.dev/", defaults: .default, author: .tenant(allowed: .none))
    /// ```
    ///
    /// - Throws: ``HealthSettingsError`` naming the annotation and its value: an unknown `health-`
    ///   annotation, a value that does not parse, an annotation that does not apply to the check kind
    ///   (`health-path` on a TCP check), an exec check or fallback server a tenant may not choose, or a
    ///   result that fails ``HealthCheckConfiguration/validate()``.
    static func configuration(annotations: [String: String], prefix: String, defaults: HealthCheckConfiguration,
                              author: SettingsAuthor) throws(HealthSettingsError) -> HealthCheckConfiguration {
        let healthPrefix = prefix + "health-"
        var values: [HealthSetting: String] = [:]
        for (key, value) in annotations where key.hasPrefix(healthPrefix) {
            guard let setting = HealthSetting(rawValue: String(key.dropFirst(healthPrefix.count))) else {
                let known = HealthSetting.allCases.map(\.annotationName).joined(separator: ", ")
                // The first unknown key in order, so the error is the same on every run.
                let first = annotations.keys.filter {
                    $0.hasPrefix(healthPrefix) && HealthSetting(rawValue: String($0.dropFirst(healthPrefix.count))) == nil
                }.min() ?? key
                throw .unknown(key: first, value: annotations[first] ?? "", problem: "is not a known health annotation; known: \(known)")
            }
            values[setting] = value
        }
        return try configuration(values, source: .annotations(prefix: prefix), defaults: defaults, author: author)
    }

    /// The configuration `values` ask for over `defaults`, with errors naming settings as `source` does.
    static func configuration(_ values: [HealthSetting: String], source: HealthSettingsSource,
                              defaults: HealthCheckConfiguration, author: SettingsAuthor) throws(HealthSettingsError) -> HealthCheckConfiguration {
        let reader = HealthSettingsReader(values: values, source: source)
        // Most Services have no health annotation: then the defaults as they are.
        guard !values.isEmpty else {
            do {
                try defaults.validate()
            } catch {
                throw .defaults(error)
            }
            return defaults
        }
        var config = defaults
        if let kind = reader.raw(.check) {
            config.kind = try freshKind(HealthSettingsReader.trimmed(kind).lowercased(), reader: reader, defaults: defaults, author: author)
        }
        try reader.value(.port) { text throws(HealthSettingsError) in config.port = try reader.port(text, .port) }
        try reader.value(.interval) { text throws(HealthSettingsError) in config.interval = try reader.duration(text, .interval) }
        try reader.value(.timeout) { text throws(HealthSettingsError) in config.timeout = try reader.duration(text, .timeout) }
        try reader.value(.rise) { text throws(HealthSettingsError) in config.rise = try reader.integer(text, .rise) }
        try reader.value(.fall) { text throws(HealthSettingsError) in config.fall = try reader.integer(text, .fall) }
        try reader.value(.initialDelay) { text throws(HealthSettingsError) in config.initialDelay = try reader.duration(text, .initialDelay) }
        try reader.value(.jitter) { text throws(HealthSettingsError) in config.jitter = try reader.fraction(text, .jitter) }
        try reader.value(.onFailure) { text throws(HealthSettingsError) in
            config.failureAction = try reader.choice(text, .onFailure, FailureAction.allCases)
        }
        try reader.value(.initialState) { text throws(HealthSettingsError) in
            config.initialState = try reader.choice(text, .initialState, InitialHealth.allCases)
        }
        config.kind = try applyKindSettings(to: config.kind, reader: reader, author: author)
        config.quorum = try quorum(reader: reader, defaults: defaults.quorum, author: author)
        do {
            try config.validate()
        } catch {
            throw reader.settingError(for: error)
        }
        return config
    }

    // MARK: - Kind

    private static func freshKind(_ name: String, reader: HealthSettingsReader, defaults: HealthCheckConfiguration,
                                  author: SettingsAuthor) throws(HealthSettingsError) -> HealthCheckKind {
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
            guard reader.has(.exec) else {
                if case .tenant(let allowed) = author {
                    throw reader.error(.check, name, "needs \(reader.source.mention(.exec)) naming an exec check; "
                        + OperatorAllowances.choices(allowed.execChecks, section: "exec"))
                }
                throw reader.error(.check, name, "needs \(reader.source.mention(.exec)) naming the program")
            }
            return .exec(ExecHealthCheck(arguments: []))
        default:
            throw reader.error(.check, name, "is not a check kind; use tcp, http, https, udp, exec or none")
        }
    }

    private static func applyKindSettings(to kind: HealthCheckKind, reader: HealthSettingsReader,
                                          author: SettingsAuthor) throws(HealthSettingsError) -> HealthCheckKind {
        let httpSettings: [HealthSetting] = [.path, .host, .status, .body, .insecureSkipVerify]
        let udpSettings: [HealthSetting] = [.udpSend, .udpExpect]
        let execSettings: [HealthSetting] = [.exec, .execDynamicWeight]
        var allowed: [HealthSetting] = []
        var result = kind
        switch kind {
        case .http(var http):
            allowed = httpSettings
            try reader.value(.path) { http.path = $0 }
            try reader.value(.host) { http.host = $0 }
            try reader.value(.status) { text throws(HealthSettingsError) in http.expectedStatus = try reader.statusRange(text, .status) }
            try reader.value(.body) { http.bodyContains = $0 }
            try reader.value(.insecureSkipVerify) { text throws(HealthSettingsError) in
                http.insecureSkipVerify = try reader.boolean(text, .insecureSkipVerify)
            }
            result = .http(http)
        case .udp(var udp):
            allowed = udpSettings
            try reader.value(.udpSend) { udp.payload = Array($0.utf8) }
            try reader.value(.udpExpect) { udp.expectedReply = Array($0.utf8) }
            result = .udp(udp)
        case .exec(var exec):
            allowed = execSettings
            try reader.value(.exec) { text throws(HealthSettingsError) in
                guard case .tenant(let allowed) = author else {
                    exec.arguments = try reader.argv(text, .exec)
                    return
                }
                // A tenant names a check; the operator's entry says which program runs, and as whom.
                guard let chosen = allowed.execChecks[HealthSettingsReader.trimmed(text)] else {
                    throw reader.error(.exec, text, "is not an exec check this node allows; "
                        + OperatorAllowances.choices(allowed.execChecks, section: "exec"))
                }
                exec.arguments = chosen.arguments
                exec.user = chosen.user
                exec.dynamicWeight = chosen.dynamicWeight
            }
            try reader.value(.execDynamicWeight) { text throws(HealthSettingsError) in
                exec.dynamicWeight = try reader.boolean(text, .execDynamicWeight)
            }
            result = .exec(exec)
        case .disabled, .tcp:
            break
        }
        for setting in httpSettings + udpSettings + execSettings where !allowed.contains(setting) && reader.has(setting) {
            throw reader.error(setting, reader.raw(setting) ?? "", "does not apply to a \(kind.name) check; set \(reader.source.name(.check))")
        }
        return result
    }

    // MARK: - Quorum

    private static func quorum(reader: HealthSettingsReader, defaults: Quorum?, author: SettingsAuthor) throws(HealthSettingsError) -> Quorum? {
        guard reader.has(.quorum) || reader.has(.quorumPolicy) || reader.has(.fallback) else {
            return defaults
        }
        var quorum = defaults ?? Quorum()
        try reader.value(.quorum) { text throws(HealthSettingsError) in quorum.minimumHealthy = try reader.integer(text, .quorum) }
        var fallback: FallbackServer?
        try reader.value(.fallback) { text throws(HealthSettingsError) in
            guard case .tenant(let allowed) = author else {
                fallback = try reader.endpoint(text, .fallback)
                return
            }
            // A tenant names a fallback the operator lists (by its name, or by its address and port).
            let trimmed = HealthSettingsReader.trimmed(text)
            let byAddress = FallbackServer(endpoint: text)
            guard let chosen = allowed.fallbacks[trimmed]
                ?? allowed.fallbacks.sorted(by: { $0.key < $1.key }).first(where: { $0.value.id == byAddress?.id })?.value else {
                throw reader.error(.fallback, text, "is not a fallback server this node allows; "
                    + OperatorAllowances.choices(allowed.fallbacks, section: "fallback"))
            }
            fallback = chosen
        }
        let policyName = reader.raw(.quorumPolicy).map(HealthSettingsReader.trimmed) ?? (fallback != nil ? "fallback" : nil)
        switch policyName {
        case nil: break
        case "keep-all":
            if fallback != nil {
                throw reader.error(.fallback, reader.raw(.fallback) ?? "", "needs \(reader.source.name(.quorumPolicy)): fallback")
            }
            quorum.policy = .keepAll
        case "fallback":
            if let fallback {
                quorum.policy = .fallback(fallback)
            } else if case .fallback = quorum.policy {
                break
            } else {
                throw reader.error(.quorumPolicy, "fallback", "needs \(reader.source.name(.fallback)): <address>:<port>")
            }
        case let other?:
            throw reader.error(.quorumPolicy, other, "is not a policy; use keep-all or fallback")
        }
        return quorum
    }
}
