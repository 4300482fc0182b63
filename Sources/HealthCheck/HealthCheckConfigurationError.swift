// MARK: - HealthCheckConfigurationError

/// A health check configuration that cannot be used, naming the field (or annotation key) and the bad value.
///
/// ```
/// rise must be >= 1, got 0
/// annotation ipvs.swift.dev/health-interval: "fast" is not a duration; use a number and a unit (ns, us, ms, s, m, h), as Go writes durations: 500ms, 30s, 1m30s
/// ```
public struct HealthCheckConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The configuration field (`rise`, `http.path`) or the full annotation key.
    public var field: String
    /// The offending value as the user wrote it.
    public var value: String
    /// What is wrong and what would be right.
    public var problem: String
    /// Whether ``field`` is an annotation key.
    public var isAnnotation: Bool

    public init(field: String, value: String, problem: String, isAnnotation: Bool = false) {
        self.field = field
        self.value = value
        self.problem = problem
        self.isAnnotation = isAnnotation
    }

    public var description: String {
        if isAnnotation {
            "annotation \(field): \"\(value)\" \(problem)"
        } else {
            "\(field) \(problem), got \(value)"
        }
    }
}
