import Foundation

// MARK: - SocketPool

/// The disconnected sockets of repeating checks, kept for the next checks; the poller thread's alone.
///
/// Each is still in the poller's epoll set, disarmed (its one-shot event fired), and is armed again when a
/// check connects it. A socket is only put back after its event fired and it connected, never after a failure
/// or a timeout, so no stale event or queued error can reach the check that reuses it.
struct SocketPool {
    /// Idle sockets kept per family: about the connects that finish within one wake-up; more are closed.
    static let capacity = 1024

    private var idle: [CInt: [CInt]] = [:]

    /// An idle socket of `family`, if any.
    mutating func take(family: CInt) -> CInt? {
        idle[family]?.popLast()
    }

    /// Disconnects `fd` (`connect` to `AF_UNSPEC`: an established connection is reset, as `SO_LINGER` 0 would)
    /// and keeps it; closes it instead when the pool is full or it cannot be disconnected.
    mutating func release(_ fd: CInt, family: CInt) {
        guard idle[family, default: []].count < Self.capacity, Self.disconnect(fd) else {
            TCPSocket.closeWithReset(fd)
            return
        }
        idle[family, default: []].append(fd)
    }

    /// Closes every idle socket (the poller is stopping).
    mutating func closeAll() {
        for fd in idle.values.joined() { close(fd) }
        idle = [:]
    }

    /// Dissolves `fd`'s connection so that it can connect again. The reset leaves an error on the socket
    /// (`ECONNRESET`) that nothing reads: the next `connect` clears it (Linux's `tcp_connect_init`) before the
    /// socket is watched again, so it can never be the next check's verdict, and reading it (`SO_ERROR`) would
    /// be one more system call per check.
    static func disconnect(_ fd: CInt) -> Bool {
        var unspecified = sockaddr()
        unspecified.sa_family = sa_family_t(AF_UNSPEC)
        return Glibc.connect(fd, &unspecified, socklen_t(MemoryLayout<sockaddr>.size)) == 0
    }
}
