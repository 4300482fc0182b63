#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed interface, address or sysctl operation: what was attempted, on which object, what
/// the kernel (or libnl) answered, and what to do about it.
///
/// Match on `kind`: `catch let error as NodeNetworkError where error.kind == .permissionDenied`.
public struct NodeNetworkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as far as a caller needs to act on it.
    public enum Kind: Hashable, Sendable {
        /// The interface name is not one the kernel accepts (empty, longer than 15 bytes, `.`,
        /// `..`, or containing `/`, `:` or white space).
        case invalidName
        /// The sysctl name or value is malformed.
        case invalidArgument
        /// The interface or sysctl does not exist.
        case notFound
        /// An interface of that name exists but is not a dummy interface.
        case notDummy
        /// The caller lacks `CAP_NET_ADMIN` (interfaces, addresses) or root (sysctls), or /proc/sys
        /// is read-only (an unprivileged container).
        case permissionDenied
        /// The kernel lacks the feature (no dummy interface support, no IPv6 on the interface).
        case unsupported
        /// Any other kernel or transport error; see `errno`.
        case other
    }

    public var kind: Kind
    /// The attempted operation, in words that read on into `object`: `add address 10.96.0.1/32 to`.
    public var operation: String
    /// The object operated on: `interface kube-ipvs0`, `sysctl net.ipv4.vs.conntrack`.
    public var object: String
    /// The kernel's error number, or 0.
    public var errno: Int32
    /// The kernel's extended-acknowledgement text or libnl's text, when there is one.
    public var detail: String?
    /// What the user can do about it.
    public var hint: String?

    public init(kind: Kind, operation: String, object: String, errno: Int32 = 0,
                detail: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.operation = operation
        self.object = object
        self.errno = errno
        self.detail = detail
        self.hint = hint
    }

    /// A sentence a user can act on:
    /// `cannot add address fd00::1/128 to interface kube-ipvs0: No such device; create the interface first`.
    public var description: String {
        var text = "cannot \(operation) \(object): \(reason)"
        if let detail, !detail.isEmpty, detail != reason { text += " (\(detail))" }
        if let hint, !hint.isEmpty { text += "; \(hint)" }
        return text
    }

    /// The C library's text for `errno`, or the detail when there is no errno.
    private var reason: String {
        if errno != 0, let text = strerror(errno) { return String(cString: text) }
        return detail ?? "failed"
    }

    /// The kind for a kernel error number.
    static func kind(errno code: Int32) -> Kind {
        switch code {
        case EPERM, EACCES, EROFS: .permissionDenied
        case ENOENT, ENODEV: .notFound
        case EOPNOTSUPP, EAFNOSUPPORT, EPROTONOSUPPORT: .unsupported
        case EINVAL, ERANGE: .invalidArgument
        default: .other
        }
    }

    /// The usual advice for a kernel error number, when there is one that does not depend on the
    /// operation.
    static func commonHint(errno code: Int32) -> String? {
        switch code {
        case EPERM, EACCES: "this needs CAP_NET_ADMIN; run as root or grant the capability"
        default: nil
        }
    }

    init(_ failure: SystemFailure, operation: String, object: String, hint: String? = nil) {
        self.init(kind: Self.kind(errno: failure.errno), operation: operation, object: object,
                  errno: failure.errno, detail: failure.kernelMessage ?? (failure.errno == 0 ? failure.library : nil),
                  hint: hint ?? Self.commonHint(errno: failure.errno))
    }
}
