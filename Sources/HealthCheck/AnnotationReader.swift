import Foundation
import IPVS

// MARK: - AnnotationReader

/// Reads `prefix + "health-…"` annotations and turns bad values into errors naming the full key.
struct AnnotationReader {
    let annotations: [String: String]
    let prefix: String

    func has(_ name: String) -> Bool { annotations[prefix + name] != nil }

    func raw(_ name: String) -> String? { annotations[prefix + name] }

    /// Calls `body` with the annotation's value when it is present.
    func value(_ name: String, _ body: (String) throws -> Void) throws {
        if let value = raw(name) { try body(value) }
    }

    func error(_ name: String, _ value: String, _ problem: String) -> HealthCheckConfigurationError {
        HealthCheckConfigurationError(field: prefix + name, value: value, problem: problem, isAnnotation: true)
    }

    /// Rejects `health-` annotations that are not in ``HealthCheckConfiguration/annotationNames`` (typos).
    func rejectUnknown() throws {
        for key in annotations.keys.sorted() where key.hasPrefix(prefix + "health-") {
            let name = String(key.dropFirst(prefix.count))
            if !HealthCheckConfiguration.annotationNames.contains(name) {
                throw HealthCheckConfigurationError(
                    field: key, value: annotations[key] ?? "",
                    problem: "is not a known health annotation; known: \(HealthCheckConfiguration.annotationNames.joined(separator: ", "))",
                    isAnnotation: true)
            }
        }
    }

    func kindName() throws -> String? {
        raw("health-check").map { $0.trimmingWhitespace().lowercased() }
    }

    // MARK: - Values

    func duration(_ text: String, key: String) throws -> Duration {
        guard let duration = DurationText.parse(text) else {
            throw error(key, text, "is not a duration; \(DurationText.expected)")
        }
        return duration
    }

    func integer(_ text: String, key: String) throws -> Int {
        guard let value = Int(text.trimmingWhitespace()) else {
            throw error(key, text, "is not a whole number; use e.g. \"2\"")
        }
        return value
    }

    func port(_ text: String, key: String) throws -> UInt16 {
        guard let value = UInt16(text.trimmingWhitespace()), value != 0 else {
            throw error(key, text, "is not a port number; use 1 to 65535")
        }
        return value
    }

    /// `0.1` or `10%`.
    func fraction(_ text: String, key: String) throws -> Double {
        let trimmed = text.trimmingWhitespace()
        let value = trimmed.hasSuffix("%") ? Double(trimmed.dropLast()).map { $0 / 100 } : Double(trimmed)
        guard let value, value >= 0, value <= 1 else {
            throw error(key, text, "is not a fraction between 0 and 1; use e.g. 0.1 or 10%")
        }
        return value
    }

    func boolean(_ text: String, key: String) throws -> Bool {
        switch text.trimmingWhitespace().lowercased() {
        case "true": return true
        case "false": return false
        default: throw error(key, text, "is not a boolean; use true or false")
        }
    }

    func choice<Choice: RawRepresentable<String>>(_ text: String, key: String, _ choices: [Choice]) throws -> Choice {
        guard let choice = Choice(rawValue: text.trimmingWhitespace().lowercased()) else {
            throw error(key, text, "is not one of \(choices.map(\.rawValue).joined(separator: ", "))")
        }
        return choice
    }

    /// `200-399` or `200`.
    func statusRange(_ text: String, key: String) throws -> ClosedRange<Int> {
        let parts = text.trimmingWhitespace().split(separator: "-", omittingEmptySubsequences: false)
        let numbers = parts.compactMap { Int($0.trimmingWhitespace()) }
        guard numbers.count == parts.count, (1...2).contains(numbers.count),
              let low = numbers.first, let high = numbers.last, low <= high
        else {
            throw error(key, text, "is not a status range; use e.g. 200-399 or 200")
        }
        return low...high
    }

    /// A JSON array of strings, or words separated by spaces (no quoting).
    func argv(_ text: String, key: String) throws -> [String] {
        guard let arguments = ExecHealthCheck.arguments(commandLine: text) else {
            throw error(key, text, "is not a JSON array of strings; use e.g. [\"/usr/local/bin/check\", \"--fast\"]")
        }
        return arguments
    }

    /// `10.0.0.9:8080` or `[fd00::9]:8080`.
    func endpoint(_ text: String, key: String) throws -> FallbackServer {
        guard let server = FallbackServer(endpoint: text) else {
            throw error(key, text, "is not an address and port; use e.g. 10.0.0.9:8080 or [fd00::9]:8080")
        }
        return server
    }

    // MARK: - Validation errors

    /// Re-labels a ``HealthCheckConfiguration/validate()`` error with the annotation that set the field, when
    /// one did; an error in a default value keeps its field name.
    func annotationError(for validation: HealthCheckConfigurationError) -> HealthCheckConfigurationError {
        let names: [String: String] = [
            "interval": "health-interval", "timeout": "health-timeout", "rise": "health-rise", "fall": "health-fall",
            "initialDelay": "health-initial-delay", "jitter": "health-jitter", "port": "health-port",
            "http.path": "health-path", "http.host": "health-host", "http.expectedStatus": "health-status",
            "http.bodyContains": "health-body", "exec.arguments": "health-exec", "exec.arguments[0]": "health-exec",
            "quorum.minimumHealthy": "health-quorum", "quorum.fallback.port": "health-fallback",
            "quorum.fallback.weight": "health-fallback",
        ]
        guard let name = names[validation.field], let value = raw(name) else { return validation }
        return error(name, value, validation.problem)
    }
}
