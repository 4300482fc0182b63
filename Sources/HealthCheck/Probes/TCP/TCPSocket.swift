import CEpoll
import Foundation
import NIOCore
import Synchronization

// MARK: - TCPSocket

/// The raw system calls of ``TCPConnectPoller``'s checks on one non-blocking TCP socket: connect, the verdict of
/// a finished connect, the self-connect test and the closing reset. Everything here is a plain call on a
/// descriptor; the epoll set and the schedule are the poller's.
enum TCPSocket {
    /// Sockets opened so far (tests read it to see that repeating checks reuse theirs).
    private static let opened = Atomic(0)
    static var socketsOpened: Int { opened.load(ordering: .relaxed) }

    /// The socket family of `address` (`AF_UNSPEC` for a Unix domain socket, which is no check target).
    static func family(of address: SocketAddress) -> CInt {
        switch address {
        case .v4: AF_INET
        case .v6: AF_INET6
        case .unixDomainSocket: AF_UNSPEC
        }
    }

    /// Connects a non-blocking socket to `address`: `reusing`, a disconnected socket of the same family, or a
    /// new one: the descriptor of a connect in progress, or the outcome of one that finished (or failed) at
    /// once, its socket already closed. A reused socket that refuses to connect again is closed and a new one
    /// tried, so its state can never be a check's verdict.
    static func connect(_ address: ConnectAddress, reusing reused: CInt? = nil) -> (CInt, CheckOutcome?) {
        let family = address.family
        guard family != AF_UNSPEC else {
            if let reused { closeWithReset(reused) }
            return (-1, .failure(reason: "connect: not an IP address"))
        }
        if let reused {
            let result = address.withSockAddr { pointer, length in Glibc.connect(reused, pointer, length) }
            if result != 0, errno == EINPROGRESS { return (reused, nil) }
            closeWithReset(reused)
        }
        let fd = socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return (-1, .failure(reason: "socket: \(ProbeFailure.errnoText(errno))")) }
        opened.add(1, ordering: .relaxed)
        let result = address.withSockAddr { pointer, length in Glibc.connect(fd, pointer, length) }
        let error = result == 0 ? 0 : errno
        guard error == EINPROGRESS else {
            let immediate = outcome(error, fd: fd, mayConnectToItself: address.mayConnectToItself)
            closeWithReset(fd)
            return (-1, immediate)
        }
        return (fd, nil)
    }

    /// The verdict of a watched connect on `fd` whose epoll event fired with `events`, and the handshake's round
    /// trip (`tcpi_rtt`, nanoseconds) when it connected. It succeeds only when the handshake completed: `TCP_INFO`,
    /// read once for the round trip, says `ESTABLISHED` (or `CLOSE_WAIT`: the backend accepted and already closed).
    ///
    /// A socket that polls as an error (or a hang-up) failed, whatever `SO_ERROR` says. Linux queues the ICMP
    /// error of a connect in `SYN_SENT` (host unreachable once ARP gives up) on the socket's error queue even
    /// without `IP_RECVERR`, and 6.1 keeps it there through a disconnect and the next `connect`: that socket then
    /// polls `EPOLLERR` right after every later connect, still in `SYN_SENT`, with `SO_ERROR` 0. So a socket
    /// whose check failed is never reused, and one that polls as an error is never taken as connected.
    static func finished(_ fd: CInt, events: UInt32, mayConnectToItself: Bool) -> (outcome: CheckOutcome, roundTrip: Int64?) {
        let failed = events & (EPOLLERR.rawValue | EPOLLHUP.rawValue)
        if failed != 0 {
            var error: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
            if error != 0 { return (.failure(reason: "connect: \(ProbeFailure.errnoText(error))"), nil) }
            let seen = failed == EPOLLERR.rawValue ? "EPOLLERR"
                : failed == EPOLLHUP.rawValue ? "EPOLLHUP" : "EPOLLERR and EPOLLHUP"
            let state = tcpStateName(fd)
            return (.failure(reason: "connect: not connected (the socket polled \(seen) with no error code, TCP state \(state))"), nil)
        }
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, CInt(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else {
            return (.failure(reason: "connect: TCP_INFO: \(ProbeFailure.errnoText(errno))"), nil)
        }
        guard Int(info.tcpi_state) == TCP_ESTABLISHED || Int(info.tcpi_state) == TCP_CLOSE_WAIT else {
            let state = tcpStateName(info.tcpi_state)
            return (.failure(reason: "connect: not connected (the socket is writable in TCP state \(state))"), nil)
        }
        let outcome = outcome(0, fd: fd, mayConnectToItself: mayConnectToItself)
        return (outcome, outcome.isSuccess && info.tcpi_rtt > 0 ? Int64(info.tcpi_rtt) * 1000 : nil)
    }

    /// The kernel's name of a TCP state (`tcpi_state`), as `ss` prints it.
    static func tcpStateName(_ state: UInt8) -> String {
        let names = ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT",
                     "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"]
        let index = Int(state) - TCP_ESTABLISHED
        return names.indices.contains(index) ? names[index] : "\(state)"
    }

    /// The TCP state of `fd` by name, read with `TCP_INFO` (only for a failure's reason).
    static func tcpStateName(_ fd: CInt) -> String {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, CInt(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return "unknown" }
        return tcpStateName(info.tcpi_state)
    }

    /// The verdict of a finished connect on `fd`: `error` is its `SO_ERROR`.
    private static func outcome(_ error: CInt, fd: CInt, mayConnectToItself: Bool) -> CheckOutcome {
        guard error == 0 else { return .failure(reason: "connect: \(ProbeFailure.errnoText(error))") }
        if mayConnectToItself, connectedToItself(fd) {
            return .failure(reason: "connect: connected to itself (nothing listens on the port)")
        }
        return .success(reason: "connected")
    }

    /// Linux takes a connect's source port from `net.ipv4.ip_local_port_range`. When the target is an
    /// address of this host, with a port in that range and nothing listening on it, the connect can pick the
    /// target's own port as its source and connect to itself (TCP simultaneous open): a dead backend would
    /// look up. Only ports in that range can do it, so only their checks pay the two extra system calls of
    /// ``connectedToItself(_:)``; service ports (80, 443, 8080) never do.
    static let ephemeralPorts: ClosedRange<Int> = {
        let widest = 1...65535
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else {
            return widest
        }
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] >= 1, bounds[0] <= bounds[1], bounds[1] <= 65535 else { return widest }
        return bounds[0]...bounds[1]
    }()

    static func mayConnectToItself(_ address: SocketAddress) -> Bool {
        address.port.map { ephemeralPorts.contains($0) } ?? false
    }

    /// Whether the connected socket `fd` has the same address and port at both ends.
    static func connectedToItself(_ fd: CInt) -> Bool {
        var local = sockaddr_storage()
        var peer = sockaddr_storage()
        var localLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var peerLength = localLength
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &localLength) }
        }
        let peered = withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &peerLength) }
        }
        guard named == 0, peered == 0, local.ss_family == peer.ss_family else { return false }
        switch CInt(local.ss_family) {
        case AF_INET:
            let (mine, theirs) = (rebound(local, as: sockaddr_in.self), rebound(peer, as: sockaddr_in.self))
            return mine.sin_port == theirs.sin_port && mine.sin_addr.s_addr == theirs.sin_addr.s_addr
        case AF_INET6:
            let (mine, theirs) = (rebound(local, as: sockaddr_in6.self), rebound(peer, as: sockaddr_in6.self))
            return mine.sin6_port == theirs.sin6_port
                && withUnsafeBytes(of: mine.sin6_addr) { a in withUnsafeBytes(of: theirs.sin6_addr) { b in a.elementsEqual(b) } }
        default:
            return false
        }
    }

    private static func rebound<T>(_ storage: sockaddr_storage, as type: T.Type) -> T {
        withUnsafeBytes(of: storage) { $0.load(as: T.self) }
    }

    /// Closes with a reset (`SO_LINGER` 0): no `TIME_WAIT` left on either side.
    static func closeWithReset(_ fd: CInt) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }
}
