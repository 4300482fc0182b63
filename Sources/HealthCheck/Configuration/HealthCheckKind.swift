import Foundation

// MARK: - HealthCheckKind

/// How a backend is probed.
public enum HealthCheckKind: Hashable, Sendable {
    /// No check: the backend is always considered healthy and the checker does not track it.
    case disabled
    /// A TCP connect to the backend, closed as soon as it succeeds. Connection refused or no answer within the
    /// timeout is a failure.
    case tcp
    /// An HTTP or HTTPS `GET`; see ``HTTPHealthCheck``.
    case http(HTTPHealthCheck)
    /// A UDP datagram that must be answered; see ``UDPHealthCheck``.
    case udp(UDPHealthCheck)
    /// A program run on the node; see ``ExecHealthCheck``.
    case exec(ExecHealthCheck)

    /// `disabled`, `tcp`, `http`, `https`, `udp` or `exec`: the name used in settings, logs and metrics.
    public var name: String {
        switch self {
        case .disabled: "disabled"
        case .tcp: "tcp"
        case .http(let check): check.tls ? "https" : "http"
        case .udp: "udp"
        case .exec: "exec"
        }
    }
}

// MARK: - HTTPHealthCheck

/// An HTTP(S) `GET` whose response status must fall in a range and whose body may have to contain a string.
///
/// The request is HTTP/1.1 with `Connection: close`; the connection is closed once the verdict is known.
public struct HTTPHealthCheck: Hashable, Sendable {
    /// Speak TLS (HTTPS).
    public var tls: Bool
    /// The request path and query, starting with `/`.
    public var path: String
    /// The `Host` header (and the TLS server name when it is not an IP address); defaults to the backend
    /// address and port.
    public var host: String?
    /// The response statuses that count as healthy, such as `200...399`.
    public var expectedStatus: ClosedRange<Int>
    /// When set, the first 64 KiB of the body must contain this text.
    public var bodyContains: String?
    /// Accept any server certificate (self-signed pods). Without it, the certificate must chain to the system
    /// trust roots and name the `host` (or, without one, the pod address).
    public var insecureSkipVerify: Bool

    public init(
        tls: Bool = false,
        path: String = "/",
        host: String? = nil,
        expectedStatus: ClosedRange<Int> = 200...399,
        bodyContains: String? = nil,
        insecureSkipVerify: Bool = false
    ) {
        self.tls = tls
        self.path = path
        self.host = host
        self.expectedStatus = expectedStatus
        self.bodyContains = bodyContains
        self.insecureSkipVerify = insecureSkipVerify
    }

    /// The largest body prefix searched for ``bodyContains``.
    public static let bodyLimit = 64 * 1024
}

// MARK: - UDPHealthCheck

/// A datagram sent on a connected UDP socket; any reply (or one containing ``expectedReply``) is healthy.
///
/// An ICMP port unreachable answer surfaces as "connection refused" on the socket and is a failure at once;
/// silence until the timeout is a failure too.
public struct UDPHealthCheck: Hashable, Sendable {
    /// The datagram to send (may be empty).
    public var payload: [UInt8]
    /// When set, a reply must contain these bytes; other replies are ignored until the timeout.
    public var expectedReply: [UInt8]?

    public init(payload: [UInt8] = [], expectedReply: [UInt8]? = nil) {
        self.payload = payload
        self.expectedReply = expectedReply
    }
}

// MARK: - ExecHealthCheck

/// A program run on the node, without a shell, for each check.
///
/// The program gets a small environment: `PATH=/usr/sbin:/usr/bin:/sbin:/bin`, `HEALTH_ADDRESS` (the pod
/// address), `HEALTH_PORT` (the check port) and `HEALTH_SERVICE` (the service name). Its standard input and
/// output go to `/dev/null`. It runs in its own process group; at the timeout the whole group gets `SIGKILL`.
///
/// Exit status 0 is healthy. Other statuses are failures, except with ``dynamicWeight``, which follows
/// keepalived's `misc_dynamic`: statuses 2 to 255 mean healthy with weight `status - 2` (0 to 253), and 1
/// stays a failure. (keepalived reads the weight from the exit status, not from the output; so do we.)
public struct ExecHealthCheck: Hashable, Sendable {
    /// The program (an absolute path) and its arguments.
    public var arguments: [String]
    /// Read a weight from exit statuses 2 to 255 (weight = status - 2), like keepalived's `misc_dynamic`.
    public var dynamicWeight: Bool
    /// The user the program runs as; `nil` runs it as this process's user.
    public var user: ProcessUser?

    public init(arguments: [String], dynamicWeight: Bool = false, user: ProcessUser? = nil) {
        self.arguments = arguments
        self.dynamicWeight = dynamicWeight
        self.user = user
    }
}
