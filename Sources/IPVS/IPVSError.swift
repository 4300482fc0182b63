#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Netlink

/// An IPVS operation that failed, with what was attempted and what the kernel answered.
///
/// Match on `kind`: `catch let error as IPVSError where error.kind == .serviceExists`.
public struct IPVSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as far as a caller needs to act on it.
    public enum Kind: Hashable, Sendable {
        /// The kernel has no IPVS (the `ip_vs` module is not loaded or not built).
        case ipvsUnavailable
        /// The caller lacks `CAP_NET_ADMIN` (run as root or grant the capability).
        case permissionDenied
        /// The service to add already exists.
        case serviceExists
        /// The service to edit, delete or read does not exist.
        case serviceNotFound
        /// The real server to add already exists in the service.
        case realServerExists
        /// The real server to edit or delete does not exist in the service.
        case realServerNotFound
        /// The kernel has no module for the requested scheduler.
        case schedulerUnavailable
        /// The kernel has no module for the requested persistence engine.
        case persistenceEngineUnavailable
        /// The kernel rejected a value (an address that is not unicast, a bad flag, …).
        case invalidArgument
        /// The kernel's answer could not be decoded.
        case malformedReply
        /// Any other kernel or transport error; see `errno`.
        case other
    }

    public var kind: Kind
    /// The attempted operation, in words: `add service TCP 10.0.0.1:80`.
    public var operation: String
    /// The kernel's error number, or 0.
    public var errno: Int32
    /// The kernel's own message, when it sent one, or decoding details.
    public var detail: String?

    public init(kind: Kind, operation: String, errno: Int32 = 0, detail: String? = nil) {
        self.kind = kind
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// A sentence a user can act on.
    public var description: String {
        var text = "cannot \(operation): \(explanation)"
        if let detail, !detail.isEmpty { text += " (\(detail))" }
        return text
    }

    private var explanation: String {
        switch kind {
        case .ipvsUnavailable:
            "the kernel has no IPVS; load the ip_vs module (modprobe ip_vs) or use a kernel built with CONFIG_IP_VS"
        case .permissionDenied:
            "permission denied; IPVS needs CAP_NET_ADMIN (run as root)"
        case .serviceExists: "the service already exists"
        case .serviceNotFound: "no such service"
        case .realServerExists: "the real server already exists in this service"
        case .realServerNotFound: "no such real server in this service"
        case .schedulerUnavailable:
            "the kernel has no such scheduler; load its module (modprobe ip_vs_<name>) or choose one of "
                + Scheduler.knownNames
        case .persistenceEngineUnavailable:
            "the kernel has no such persistence engine; load its module (modprobe ip_vs_pe_<name>)"
        case .invalidArgument:
            "the kernel rejected an argument (\(reason))"
        case .malformedReply: "the kernel's answer could not be decoded"
        case .other: reason
        }
    }

    private var reason: String {
        guard errno != 0, let text = strerror(errno) else { return "unknown error" }
        return String(cString: text)
    }

    /// Maps a kernel error number to a kind, using the operation to tell apart the kernel's
    /// reuse of `ENOENT` (missing scheduler on add, missing real server on delete).
    static func classify(errno code: Int32, operation: IPVSOperation?) -> Kind {
        switch code {
        case EPERM, EACCES: return .permissionDenied
        case ESRCH: return .serviceNotFound
        case EEXIST:
            switch operation {
            case .addRealServer: return .realServerExists
            default: return .serviceExists
            }
        case ENOENT:
            switch operation {
            case .addService(let service), .updateService(let service):
                return service.persistenceEngine != nil && service.scheduler.isKnown
                    ? .persistenceEngineUnavailable : .schedulerUnavailable
            case .addRealServer, .updateRealServer, .deleteRealServer: return .realServerNotFound
            default: return .serviceNotFound
            }
        case EINVAL, EAFNOSUPPORT, EOPNOTSUPP, ERANGE: return .invalidArgument
        default: return .other
        }
    }

    init(_ error: NetlinkError, operation: IPVSOperation) {
        self.init(kind: Self.classify(errno: error.errno, operation: operation),
                  operation: operation.description, errno: error.errno, detail: error.kernelMessage)
    }

    init(_ error: NetlinkError, reading what: String) {
        let kind: Kind = switch error.errno {
        case EPERM, EACCES: .permissionDenied
        case ESRCH: .serviceNotFound
        case ENOENT: .realServerNotFound
        default: .other
        }
        self.init(kind: kind, operation: what, errno: error.errno, detail: error.kernelMessage ?? error.libraryMessage)
    }

    init(_ error: NetlinkDecodingError, reading what: String) {
        self.init(kind: .malformedReply, operation: what, detail: error.reason)
    }
}
