import Foundation
import HealthCheck

/// The agent's own configuration file (`--config`): settings that are the node operator's rather
/// than the Services' owners', in YAML or JSON.
///
/// ```yaml
/// apiVersion: ipvs.swift.dev/v1alpha1
/// kind: AgentConfiguration
/// healthChecks:
///   default:                  # every Service, under its own annotations
///     check: tcp
///     interval: 1s
///     fall: 3
///   services:
///     default/web:            # namespace/name: over the default, under the Service's annotations
///       check: http
///       path: /healthz
///       quorum: 2
///       fallback: 10.0.0.9:8080
///   execUser: nobody          # exec checks run as this unprivileged user (keepalived's script_user)
///   allowed:                  # what Service annotations may name: nothing else runs or receives traffic
///     exec:
///       check-dns: ["/usr/local/lib/ipvs-agent/check-dns", "--fast"]
///     fallback:
///       sorry: 10.0.0.9:8080
/// ```
///
/// A health section takes the names of the `ipvs.swift.dev/health-*` annotations without that
/// prefix (`check`, `interval`, `initial-delay`, `on-failure`, …) and the same values; `exec` may
/// also be a YAML list. The layers, each overriding only what it names: the built-in defaults,
/// `--health-check`, `healthChecks.default`, the Service's entry in `healthChecks.services`, then
/// the Service's own annotations. Programs and fallback servers are the operator's alone: here
/// they are written out, while an annotation may only name an entry of `allowed`.
public struct AgentConfiguration: Hashable, Sendable {
    /// The `apiVersion` this agent reads.
    public static let apiVersion = "ipvs.swift.dev/v1alpha1"
    /// The `kind` of the document.
    public static let kind = "AgentConfiguration"

    /// The health check of Services without an entry of their own (before their annotations).
    public var healthDefault: HealthCheckConfiguration
    /// The health check of the Services named in `healthChecks.services` (the default under it).
    public var serviceHealth: [ObjectName: HealthCheckConfiguration]
    /// The exec checks and fallback servers Service annotations may name (`healthChecks.allowed`).
    public var allowed: OperatorAllowances

    /// The user exec checks run as when `healthChecks.execUser` names none.
    public static let defaultExecUser = "nobody"

    public init(healthDefault: HealthCheckConfiguration, serviceHealth: [ObjectName: HealthCheckConfiguration] = [:],
                allowed: OperatorAllowances = .none) {
        self.healthDefault = healthDefault
        self.serviceHealth = serviceHealth
        self.allowed = allowed
    }

    // MARK: - Reading

    /// Reads the file at `path`; its health sections start from `base` (`--health-check`).
    ///
    /// - Throws: ``AgentConfigurationError`` with every problem found, each naming the file, line
    ///   and field.
    public static func load(path: String, base: HealthCheckConfiguration) throws(AgentConfigurationError) -> AgentConfiguration {
        try parse(try readText(path: path), file: path, base: base)
    }

    /// The text of the configuration file at `path`, or an error saying why it cannot be read.
    static func readText(path: String) throws(AgentConfigurationError) -> String {
        func unreadable(_ reason: String) -> AgentConfigurationError {
            AgentConfigurationError(problems: [ManifestIssue(file: path, message: "cannot read the configuration file: \(reason)")])
        }
        // open(2) rather than Foundation's readers, whose errors do not say why ("No such file or directory").
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw unreadable(String(cString: strerror(errno))) }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            var isFolder: ObjCBool = false
            let folder = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
            throw unreadable(folder ? "it is a folder; name the file" : "\(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw unreadable("it is not UTF-8 text") }
        return text
    }

    /// Reads a configuration from `text` (`file` names it in errors).
    public static func parse(_ text: String, file: String, base: HealthCheckConfiguration) throws(AgentConfigurationError) -> AgentConfiguration {
        var reader = Reader(file: file)
        let configuration = reader.read(text, base: base)
        guard reader.problems.isEmpty, let configuration else { throw AgentConfigurationError(problems: reader.problems) }
        return configuration
    }
}

/// Why a configuration file cannot be used: every problem in it.
public struct AgentConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var problems: [ManifestIssue]

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

// MARK: - Reader

/// Walks the YAML of a configuration file, collecting every problem rather than stopping at the first.
private struct Reader {
    let file: String
    var problems: [ManifestIssue] = []
    /// `healthChecks.execUser` and its line; looked up once, when an exec check needs it.
    var execUserName = AgentConfiguration.defaultExecUser
    var execUserLine: Int?
    var execUser: ProcessUser??

    /// The keys of a health section: the annotation names without `ipvs.swift.dev/health-`.
    static let healthKeys: [String] = HealthSetting.allCases.map(\.rawValue)

    mutating func problem(_ line: Int?, _ field: String?, _ message: String) {
        problems.append(ManifestIssue(file: file, line: line, field: field, message: message))
    }

    mutating func read(_ text: String, base: HealthCheckConfiguration) -> AgentConfiguration? {
        let roots: [YAMLNode]
        do {
            roots = try YAMLTree.parse(text).roots
        } catch {
            problem(error.line, nil, "not YAML or JSON: \(error.summary)")
            return nil
        }
        guard roots.count == 1, let root = roots.first, root.kind == .mapping else {
            problem(roots.first?.line, nil, roots.count > 1
                    ? "holds \(roots.count) documents; a configuration file holds one"
                    : "is not a mapping; start with apiVersion: \(AgentConfiguration.apiVersion) and kind: \(AgentConfiguration.kind)")
            return nil
        }
        var configuration = AgentConfiguration(healthDefault: base)
        var seen: Set<String> = []
        for position in 0..<root.count {
            let (key, value) = root.pair(position)
            let name = key.scalar ?? ""
            seen.insert(name)
            switch name {
            case "apiVersion":
                if value.scalar != AgentConfiguration.apiVersion {
                    problem(value.line, "apiVersion", "is \(Self.show(value)); this agent reads \(AgentConfiguration.apiVersion)")
                }
            case "kind":
                if value.scalar != AgentConfiguration.kind {
                    problem(value.line, "kind", "is \(Self.show(value)); a configuration file is kind: \(AgentConfiguration.kind), or kube-proxy's kind: \(KubeProxyConfiguration.kind)")
                }
            case "healthChecks":
                readHealthChecks(value, into: &configuration)
            default:
                problem(key.line, name, "is not a field of \(AgentConfiguration.kind); known: apiVersion, kind, healthChecks")
            }
        }
        for required in ["apiVersion", "kind"] where !seen.contains(required) {
            problem(root.line, required, "is missing; a configuration file starts with apiVersion: \(AgentConfiguration.apiVersion) and kind: \(AgentConfiguration.kind)")
        }
        return configuration
    }

    private mutating func readHealthChecks(_ node: YAMLNode, into configuration: inout AgentConfiguration) {
        guard let pairs = mapping(node, "healthChecks") else { return }
        // The exec user, then the default: every other entry builds on them, wherever they stand in the file.
        if let user = pairs.first(where: { $0.key.scalar == "execUser" }) {
            execUserLine = user.value.line
            if let name = scalarText(user.value, allowList: false, field: "healthChecks.execUser") { execUserName = name }
        }
        if let defaults = pairs.first(where: { $0.key.scalar == "default" }),
           let health = readHealth(defaults.value, field: "healthChecks.default", over: configuration.healthDefault) {
            configuration.healthDefault = health
        }
        for (key, value) in pairs {
            switch key.scalar ?? "" {
            case "default", "execUser": continue
            case "allowed":
                readAllowed(value, into: &configuration.allowed)
            case "services":
                guard let services = mapping(value, "healthChecks.services") else { continue }
                for (nameNode, section) in services {
                    let text = nameNode.scalar ?? ""
                    let field = "healthChecks.services[\(text)]"
                    guard let name = Self.objectName(text) else {
                        problem(nameNode.line, field, "is not a Service name; use namespace/name, e.g. default/web")
                        continue
                    }
                    if let health = readHealth(section, field: field, over: configuration.healthDefault) {
                        configuration.serviceHealth[name] = health
                    }
                }
            case let other:
                problem(key.line, "healthChecks.\(other)", "is not a field of healthChecks; known: default, services, execUser, allowed")
            }
        }
    }

    /// `healthChecks.allowed`: the exec checks and fallback servers annotations may name.
    private mutating func readAllowed(_ node: YAMLNode, into allowed: inout OperatorAllowances) {
        guard let pairs = mapping(node, "healthChecks.allowed") else { return }
        for (key, value) in pairs {
            let section = key.scalar ?? ""
            guard section == "exec" || section == "fallback" else {
                problem(key.line, "healthChecks.allowed.\(section)", "is not a field of healthChecks.allowed; known: exec, fallback")
                continue
            }
            guard let entries = mapping(value, "healthChecks.allowed.\(section)") else { continue }
            for (nameNode, entry) in entries {
                let name = nameNode.scalar ?? ""
                let field = "healthChecks.allowed.\(section).\(name)"
                guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                    problem(nameNode.line, field, "is not a name an annotation can give; use letters, digits, -, _ and .")
                    continue
                }
                guard let text = scalarText(entry, allowList: section == "exec", field: field) else { continue }
                if section == "fallback" {
                    guard let server = FallbackServer(endpoint: text) else {
                        problem(entry.line, field, "\"\(text)\" is not an address and port; use e.g. 10.0.0.9:8080 or [fd00::9]:8080")
                        continue
                    }
                    allowed.fallbacks[name] = server
                    continue
                }
                guard let arguments = HealthSettingsReader.commandLine(text) else {
                    problem(entry.line, field, "must be a program and its arguments, as a list of strings")
                    continue
                }
                do {
                    try HealthCheckConfiguration(kind: .exec(ExecHealthCheck(arguments: arguments))).validate()
                } catch {
                    problem(entry.line, field, "\(error.value) \(error.problem)")
                    continue
                }
                guard let user = checkUser(line: entry.line) else { continue }
                allowed.execChecks[name] = ExecHealthCheck(arguments: arguments, user: user)
            }
        }
    }

    /// The user exec checks run as, looked up the first time one needs it; `nil` (reported once) when unusable.
    private mutating func checkUser(line: Int?) -> ProcessUser? {
        if let execUser { return execUser }
        do {
            execUser = .some(try ProcessUser.named(execUserName))
        } catch {
            execUser = .some(nil)
            problem(execUserLine ?? line, "healthChecks.execUser", "\(error.description)"
                    + (execUserLine == nil ? " (exec checks run as \(AgentConfiguration.defaultExecUser) unless healthChecks.execUser names another user)" : ""))
        }
        return execUser ?? nil
    }

    /// One health section over `defaults`, or `nil` (with its problems recorded) when it is wrong.
    private mutating func readHealth(_ node: YAMLNode, field: String, over defaults: HealthCheckConfiguration) -> HealthCheckConfiguration? {
        guard let pairs = mapping(node, field) else { return nil }
        var values: [HealthSetting: String] = [:]
        var lines: [HealthSetting: Int] = [:]
        var valid = true
        for (key, value) in pairs {
            let name = key.scalar ?? ""
            guard let setting = HealthSetting(rawValue: name) else {
                problem(key.line, "\(field).\(name)", "is not a health check setting; known: \(Self.healthKeys.joined(separator: ", "))")
                valid = false
                continue
            }
            guard let text = scalarText(value, allowList: setting == .exec, field: "\(field).\(name)") else {
                valid = false
                continue
            }
            values[setting] = text
            lines[setting] = key.line
        }
        guard valid else { return nil }
        do throws(HealthSettingsError) {
            var health = try HealthSettings.configuration(values, source: .configurationFile, defaults: defaults, author: .nodeOperator)
            if case .exec(var exec) = health.kind, exec.user == nil {
                guard let user = checkUser(line: lines[.exec] ?? node.line) else { return nil }
                exec.user = user
                health.kind = .exec(exec)
            }
            return health
        } catch {
            switch error {
            case .setting(let setting, let value, let message):
                problem(lines[setting] ?? node.line, "\(field).\(setting.rawValue)", "\"\(value)\" \(message)")
            case .unknown(let key, let value, let message):
                problem(node.line, "\(field).\(key)", "\"\(value)\" \(message)")
            case .defaults(let invalid):
                problem(node.line, field, invalid.description)
            }
            return nil
        }
    }

    // MARK: - Nodes

    /// A mapping's pairs; an empty value (`services:` with every entry commented out) is an empty mapping.
    private mutating func mapping(_ node: YAMLNode, _ field: String) -> [(key: YAMLNode, value: YAMLNode)]? {
        if Self.isNull(node) { return [] }
        guard node.kind == .mapping else {
            problem(node.line, field, "must be a mapping of names to values")
            return nil
        }
        return (0..<node.count).map { node.pair($0) }
    }

    /// A scalar's text; a list of scalars (where `allowList`) as a JSON array, as the annotation takes it.
    private mutating func scalarText(_ node: YAMLNode, allowList: Bool, field: String) -> String? {
        switch node.kind {
        case .scalar:
            guard let text = node.scalar, !Self.isNull(node) else {
                problem(node.line, field, "has no value")
                return nil
            }
            return text
        case .sequence where allowList:
            let items = (0..<node.count).map { node.element($0) }
            guard items.allSatisfy({ $0.kind == .scalar }), !items.isEmpty,
                  let data = try? JSONEncoder().encode(items.map { $0.scalar ?? "" }) else {
                problem(node.line, field, "must be a program and its arguments, as a list of strings")
                return nil
            }
            return String(decoding: data, as: UTF8.self)
        default:
            problem(node.line, field, allowList ? "must be a string or a list of strings" : "must be a single value, not a \(node.kind == .mapping ? "mapping" : "list")")
            return nil
        }
    }

    /// A plain scalar that YAML reads as null: nothing, `~` or `null`.
    private static func isNull(_ node: YAMLNode) -> Bool {
        node.kind == .scalar && node.isPlain && ["", "~", "null", "Null", "NULL"].contains(node.scalar ?? "")
    }

    private static func show(_ node: YAMLNode) -> String {
        node.scalar.map { "\"\($0)\"" } ?? "not a string"
    }

    /// `namespace/name`, each a non-empty name without slashes or spaces.
    static func objectName(_ text: String) -> ObjectName? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && !$0.contains(where: \.isWhitespace) }) else { return nil }
        return ObjectName(namespace: String(parts[0]), name: String(parts[1]))
    }
}
