import IPVS

// MARK: - BackendID

/// What identifies a checked backend: the virtual service it serves and its real server address and port.
///
/// The same pod behind two services (or two ports of one service) is two backends, checked separately, because
/// each service may configure a different check.
public struct BackendID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The IPVS virtual service the backend belongs to.
    public var service: ServiceKey
    /// The real server: the pod address and the port traffic is forwarded to.
    public var server: RealServerID

    public init(service: ServiceKey, server: RealServerID) {
        self.service = service
        self.server = server
    }

    /// `TCP 10.96.0.10:80 -> 10.244.1.7:8080`.
    public var description: String { "\(service) -> \(server)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.service != rhs.service ? lhs.service < rhs.service : lhs.server < rhs.server
    }
}

// MARK: - HealthTarget

/// One backend to check, as the agent hands it to ``HealthChecker/update(targets:)``.
public struct HealthTarget: Hashable, Sendable {
    /// The backend's identity; the check connects to `id.server.address`.
    public var id: BackendID
    /// A human name of the service for logs, metrics and status, such as `default/web:http`.
    public var serviceName: String
    /// How to check the backend. A target whose kind is ``HealthCheckKind/disabled`` is not checked.
    public var configuration: HealthCheckConfiguration

    /// - Parameters:
    ///   - id: The backend.
    ///   - serviceName: A human name for the service; defaults to the IPVS service key (`TCP 10.96.0.10:80`).
    ///   - configuration: The check; validate it first with ``HealthCheckConfiguration/validate()``.
    public init(id: BackendID, serviceName: String? = nil, configuration: HealthCheckConfiguration) {
        self.id = id
        self.serviceName = serviceName ?? id.service.description
        self.configuration = configuration
    }

    /// The port the check connects to: the configured health port, else the real server's port.
    public var checkPort: UInt16 { configuration.port ?? id.server.port }
}
