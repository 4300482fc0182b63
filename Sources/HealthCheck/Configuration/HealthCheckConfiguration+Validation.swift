// MARK: - Validation

extension HealthCheckConfiguration {
    /// Checks every field and throws for the first bad one, naming it: `rise must be >= 1, got 0`.
    public func validate() throws(HealthCheckConfigurationError) {
        func fail(_ field: String, _ value: String, _ problem: String) -> HealthCheckConfigurationError {
            HealthCheckConfigurationError(field: field, value: value, problem: problem)
        }
        if interval < .milliseconds(10) {
            throw fail("interval", DurationText.format(interval), "must be >= 10ms")
        }
        if timeout <= .zero {
            throw fail("timeout", DurationText.format(timeout), "must be > 0")
        }
        if rise < 1 { throw fail("rise", "\(rise)", "must be >= 1") }
        if fall < 1 { throw fail("fall", "\(fall)", "must be >= 1") }
        if initialDelay < .zero {
            throw fail("initialDelay", DurationText.format(initialDelay), "must be >= 0")
        }
        if !(jitter >= 0 && jitter <= 1) {
            throw fail("jitter", "\(jitter)", "must be between 0 and 1")
        }
        if port == 0 { throw fail("port", "0", "must be between 1 and 65535") }
        try kind.validate()
        if let quorum {
            if quorum.minimumHealthy < 1 {
                throw fail("quorum.minimumHealthy", "\(quorum.minimumHealthy)", "must be >= 1")
            }
            if case .fallback(let server) = quorum.policy {
                if server.port == 0 { throw fail("quorum.fallback.port", "0", "must be between 1 and 65535") }
                if !(1...65_535).contains(server.weight) {
                    throw fail("quorum.fallback.weight", "\(server.weight)", "must be between 1 and 65535")
                }
            }
        }
    }
}

extension HealthCheckKind {
    func validate() throws(HealthCheckConfigurationError) {
        func fail(_ field: String, _ value: String, _ problem: String) -> HealthCheckConfigurationError {
            HealthCheckConfigurationError(field: field, value: value, problem: problem)
        }
        switch self {
        case .disabled, .tcp, .udp:
            return
        case .http(let http):
            if !http.path.hasPrefix("/") || http.path.contains(where: { $0.isWhitespace || $0.isNewline }) {
                throw fail("http.path", "\"\(http.path)\"", "must start with / and contain no spaces")
            }
            if let host = http.host, host.isEmpty || host.contains(where: { $0.isWhitespace || $0.isNewline }) {
                throw fail("http.host", "\"\(host)\"", "must be a non-empty host name without spaces")
            }
            let status = http.expectedStatus
            if status.lowerBound < 100 || status.upperBound > 599 {
                throw fail("http.expectedStatus", "\(status.lowerBound)-\(status.upperBound)", "must lie within 100-599")
            }
            if let body = http.bodyContains, body.isEmpty {
                throw fail("http.bodyContains", "\"\"", "must not be empty (leave it unset to skip the body)")
            }
        case .exec(let exec):
            guard let program = exec.arguments.first else {
                throw fail("exec.arguments", "[]", "must name a program")
            }
            if !program.hasPrefix("/") {
                throw fail("exec.arguments[0]", "\"\(program)\"", "must be an absolute path (no shell, no PATH search)")
            }
            if exec.arguments.contains(where: { $0.utf8.contains(0) }) {
                throw fail("exec.arguments", "\(exec.arguments)", "must not contain NUL characters")
            }
        }
    }
}
