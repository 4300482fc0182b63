import HealthCheck

// MARK: - HealthSetting

/// One health check setting, as a Service annotation (`ipvs.swift.dev/health-interval`) and as a key
/// of a health section of the agent's configuration file (`interval`) name it: the same names and
/// values in both, read by ``HealthSettings``.
///
/// | setting | example | field |
/// | --- | --- | --- |
/// | `check` | `tcp`, `http`, `https`, `udp`, `exec`, `none` | ``HealthCheckConfiguration/kind`` |
/// | `port` | `8081` | ``HealthCheckConfiguration/port`` |
/// | `interval` / `timeout` / `initial-delay` | `1s`, `500ms`, `1m` | the field of that name |
/// | `rise` / `fall` | `2` | the field of that name |
/// | `jitter` | `0.1` or `10%` | ``HealthCheckConfiguration/jitter`` |
/// | `on-failure` | `quiesce`, `remove` | ``HealthCheckConfiguration/failureAction`` |
/// | `initial-state` | `up`, `down` | ``HealthCheckConfiguration/initialState`` |
/// | `path`, `host`, `status`, `body`, `insecure-skip-verify` | `/healthz`, `200-399` | ``HTTPHealthCheck`` |
/// | `udp-send` / `udp-expect` | `ping` / `pong` | ``UDPHealthCheck`` (text) |
/// | `exec` | `["/usr/local/bin/check", "--fast"]`; from a tenant: a name the operator allows | ``ExecHealthCheck/arguments`` |
/// | `exec-dynamic-weight` | `true` | ``ExecHealthCheck/dynamicWeight`` |
/// | `quorum` | `2` | ``Quorum/minimumHealthy`` |
/// | `quorum-policy` | `keep-all`, `fallback` | ``Quorum/policy`` |
/// | `fallback` | `10.0.0.9:8080`, `[fd00::9]:80`; from a tenant: a name the operator allows | ``FallbackServer`` |
enum HealthSetting: String, CaseIterable, Hashable, Sendable {
    case check, port, interval, timeout, rise, fall
    case initialDelay = "initial-delay"
    case jitter
    case onFailure = "on-failure"
    case initialState = "initial-state"
    case path, host, status, body
    case insecureSkipVerify = "insecure-skip-verify"
    case udpSend = "udp-send"
    case udpExpect = "udp-expect"
    case exec
    case execDynamicWeight = "exec-dynamic-weight"
    case quorum
    case quorumPolicy = "quorum-policy"
    case fallback

    /// The annotation's name after the prefix: `health-interval`.
    var annotationName: String { "health-" + rawValue }

    /// The setting that holds a field named by ``HealthCheckConfiguration/validate()`` (`http.path`).
    init?(validationField field: String) {
        let settings: [String: HealthSetting] = [
            "interval": .interval, "timeout": .timeout, "rise": .rise, "fall": .fall, "initialDelay": .initialDelay,
            "jitter": .jitter, "port": .port, "http.path": .path, "http.host": .host, "http.expectedStatus": .status,
            "http.bodyContains": .body, "exec.arguments": .exec, "exec.arguments[0]": .exec,
            "quorum.minimumHealthy": .quorum, "quorum.fallback.port": .fallback, "quorum.fallback.weight": .fallback,
        ]
        guard let setting = settings[field] else { return nil }
        self = setting
    }
}

// MARK: - HealthSettingsSource

/// Where health settings come from, which decides how a message names them.
enum HealthSettingsSource: Hashable, Sendable {
    /// A Service's annotations, each named `prefix + "health-" + setting`.
    case annotations(prefix: String)
    /// A health section of the agent's configuration file, each setting named by its key.
    case configurationFile

    /// The setting as the user wrote its name: `ipvs.swift.dev/health-exec` or `exec`.
    func name(_ setting: HealthSetting) -> String {
        switch self {
        case .annotations(let prefix): prefix + setting.annotationName
        case .configurationFile: setting.rawValue
        }
    }

    /// `the annotation ipvs.swift.dev/health-exec` or `the setting exec`.
    func mention(_ setting: HealthSetting) -> String {
        switch self {
        case .annotations: "the annotation \(name(setting))"
        case .configurationFile: "the setting \(name(setting))"
        }
    }
}

// MARK: - HealthSettingsError

/// Health settings that cannot be used.
enum HealthSettingsError: Error, Hashable, Sendable {
    /// The value the user gave a setting is wrong: `problem` says why and what would be right.
    case setting(HealthSetting, value: String, problem: String)
    /// A setting the source does not know (annotations only: a typo such as `health-intervall`).
    case unknown(key: String, value: String, problem: String)
    /// The configuration below the settings (the defaults) is itself invalid.
    case defaults(HealthCheckConfigurationError)
}
