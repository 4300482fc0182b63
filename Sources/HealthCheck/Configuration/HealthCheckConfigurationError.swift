// MARK: - HealthCheckConfigurationError

/// A health check configuration that cannot be used, naming the field and the bad value.
///
/// ```
/// rise must be >= 1, got 0
/// ```
public struct HealthCheckConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The configuration field (`rise`, `http.path`).
    public var field: String
    /// The offending value as the user wrote it.
    public var value: String
    /// What is wrong and what would be right.
    public var problem: String
    public init(field: String, value: String, problem: String) {
        self.field = field
        self.value = value
        self.problem = problem
    }

    public var description: String { "\(field) \(problem), got \(value)" }
}
