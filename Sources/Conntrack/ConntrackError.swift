#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A refusal by the kernel's connection tracking (ctnetlink), with what was attempted.
public struct ConntrackError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was attempted: `list the IPv4 connection tracking entries`.
    public var operation: String
    /// The kernel's error number.
    public var errno: Int32

    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "conntrack: cannot \(operation): \(String(cString: strerror(errno))) (it needs CAP_NET_ADMIN and "
            + "the nf_conntrack_netlink kernel module)"
    }
}
