#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process's limit on open files (`RLIMIT_NOFILE`).
///
/// Every TCP health check in flight holds a socket, and a backend that stops answering holds its socket until
/// the check's timeout: with thousands of backends a fraction of them going silent takes more descriptors than
/// the usual soft limit of 1,024, and every check after that would fail with "too many open files", live
/// backends included. So the agent raises its soft limit to the hard one at start, as Go programs do; the hard
/// limit stays what the administrator set (`LimitNOFILE=` in a systemd unit).
enum OpenFileLimit {
    /// Raises the soft limit to the hard limit. Returns the limits before and after when it raised it, `nil`
    /// when it was already there or could not be read or set.
    @discardableResult
    static func raiseToHardLimit() -> (from: UInt64, to: UInt64)? {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return nil }
        let from = UInt64(limit.rlim_cur)
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else { return nil }
        return (from, UInt64(limit.rlim_max))
    }

    /// The soft limit now.
    static var current: UInt64? {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else { return nil }
        return UInt64(limit.rlim_cur)
    }

    /// Glibc imports `RLIMIT_NOFILE` as an enum case of `__rlimit_resource`; Musl as an integer.
    #if canImport(Glibc)
    private static let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let RLIMIT_NOFILE_VALUE = RLIMIT_NOFILE
    #endif
}
