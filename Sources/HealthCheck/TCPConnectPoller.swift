import CEpoll
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

// MARK: - TCPConnectPoller

/// Runs TCP connect checks with a bare non-blocking socket each, watched by one epoll thread: no channel,
/// pipeline or handler per check, which is what a check through `ClientBootstrap` costs (about a dozen
/// allocations and as many system calls).
///
/// Two ways in. ``check(_:timeout:on:)`` opens a socket and calls `connect` on the caller's thread (an event
/// loop) and completes a future on that loop. ``schedule(_:after:)`` hands the poller a ``RepeatingCheck``
/// that its thread starts itself whenever it is due, which is how ``HealthChecker`` runs TCP checks. Either
/// way a connect that finishes (or fails) at once completes the check there; one in progress is added to the
/// epoll set with its deadline, and the poller thread completes it when the socket polls writable or failed (a
/// check passes only when `TCP_INFO` says the handshake completed) or when the deadline passes. Every socket is
/// closed with a reset (`SO_LINGER` 0), as HAProxy closes its health checks, so neither side keeps a `TIME_WAIT`
/// entry per check.
///
/// Two things keep the kernel's work per repeating check low, which is most of a check's cost:
/// - **Sockets are reused.** A repeating check's socket is not closed after its verdict but disconnected
///   (`connect` to `AF_UNSPEC`, which resets an established connection just as `SO_LINGER` 0 does) and kept,
///   still in the epoll set, for the next check to connect again: no socket, file and epoll entry made and
///   freed per check. A socket whose check failed (timed out, refused, unreachable) is closed, never reused.
/// - **Wake-ups are coalesced.** With connects in flight the thread sleeps `coalescing` (2 ms by default)
///   before it collects what finished, so at thousands of checks a second it wakes about 500 times a second
///   instead of once per finished connect (each wake-up a context switch, and in a VM an interrupt and a
///   timer reprogrammed). Checks start and time out up to that much late; the latency a successful check
///   reports is the handshake's round trip as the kernel measured it (`tcpi_rtt`), so it is not inflated.
///
/// A successful repeating check then costs four system calls: its `connect`, re-arming its socket
/// (`epoll_ctl`), the TCP state and round trip (`TCP_INFO`) and the disconnect. `SO_ERROR` is read only for a
/// connect that polls as failed, and never after a disconnect (see ``SocketPool/disconnect(_:)``).
///
/// The thread starts with the first connect in progress or scheduled check, and ends with ``shutdown()``.
final class TCPConnectPoller: @unchecked Sendable {
    // @unchecked: `epoll` and `wakeup` are immutable after init; everything else is behind `state`.
    private let epoll: CInt
    private let wakeup: CInt
    private let coalescing: TimeAmount
    private let state = NIOLockedValueBox(State())
    /// Sockets opened so far (tests read it to see that repeating checks reuse theirs).
    private static let opened = Atomic(0)
    static var socketsOpened: Int { opened.load(ordering: .relaxed) }

    private struct Pending {
        var id: UInt64
        var timeout: TimeAmount
        var completion: Completion
        /// The target's port is one a connect can take as its own source port (see ``connectedToItself(_:)``).
        var mayConnectToItself = false
    }

    /// Who hears a check's outcome: a caller's promise, or a repeating check (on the poller thread).
    private enum Completion {
        case promise(EventLoopPromise<CheckOutcome>)
        case repeating(RepeatingCheck, started: NIODeadline)
    }

    /// A TCP check that repeats on the poller thread itself, with no event loop, task or promise per check:
    /// the thread starts it when it is due, completes it, reports the outcome and schedules the next one.
    /// At 10,000 checks a second this saves two thread hops and an event loop timer per check, and checks
    /// due within the same millisecond start in one wake-up.
    final class RepeatingCheck: Sendable {
        /// The target, in the check itself: `SocketAddress` keeps it in a box of its own, one more cache miss
        /// per check when thousands of backends take turns.
        let address: ConnectAddress
        let timeout: TimeAmount
        let interval: Duration
        let jitter: Double
        /// Called on the poller thread with each outcome and its latency in nanoseconds.
        let report: @Sendable (CheckOutcome, Int64) -> Void
        /// Read by the poller before every check: an atomic, not a lock.
        private let cancelled = Atomic(false)

        init(address: SocketAddress, timeout: TimeAmount, interval: Duration, jitter: Double,
             report: @escaping @Sendable (CheckOutcome, Int64) -> Void) {
            self.address = ConnectAddress(address)
            self.timeout = timeout
            self.interval = interval
            self.jitter = jitter
            self.report = report
        }

        /// No further checks; an outcome in flight is still reported (the runner drops it).
        func cancel() { cancelled.store(true, ordering: .releasing) }
        var isCancelled: Bool { cancelled.load(ordering: .acquiring) }
    }

    private struct State {
        var pending: [CInt: Pending] = [:]
        /// The deadline of each connect in progress: its descriptor and the `id` of its ``Pending``.
        var deadlines = DeadlineHeap<(fd: CInt, id: UInt64)>()
        /// When each repeating check is due next.
        var due = DeadlineHeap<RepeatingCheck>()
        var nextID: UInt64 = 0
        /// The deadline the poller sleeps until (`.distantFuture`: no deadline); `nil` while it is awake.
        var sleepingUntil: NIODeadline?
        var threadStarted = false
        var stopped = false

        /// Watches `fd`, a connect in progress, until it is writable or `deadline` passes. Called under the
        /// lock, so the poller cannot expire the entry and reuse the descriptor first. A reused socket is in the
        /// epoll set already (disarmed since its last event) and is armed again.
        mutating func watch(_ fd: CInt, timeout: TimeAmount, deadline: NIODeadline, completion: Completion,
                            mayConnectToItself: Bool, epoll: CInt, inEpollSet: Bool = false) {
            nextID &+= 1
            pending[fd] = Pending(id: nextID, timeout: timeout, completion: completion, mayConnectToItself: mayConnectToItself)
            deadlines.push(deadline, (fd, nextID))
            var event = epoll_event()
            event.events = EPOLLOUT.rawValue | EPOLLONESHOT.rawValue
            event.data.fd = fd
            if !inEpollSet || epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) != 0 {
                _ = epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
            }
        }

        /// Queues `check` to start at `due`.
        mutating func queue(_ check: RepeatingCheck, at due: NIODeadline) {
            self.due.push(due, check)
        }
    }

    /// - Parameter coalescing: how long the thread lets finished connects gather before it collects them,
    ///   while any is in flight (zero: it wakes for each).
    init(coalescing: TimeAmount = .milliseconds(2)) {
        self.coalescing = coalescing
        epoll = epoll_create1(CInt(EPOLL_CLOEXEC))
        wakeup = eventfd(0, CInt(EFD_CLOEXEC | EFD_NONBLOCK))
        if epoll >= 0, wakeup >= 0 {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = wakeup
            _ = epoll_ctl(epoll, EPOLL_CTL_ADD, wakeup, &event)
        }
    }

    deinit {
        if epoll >= 0 { close(epoll) }
        if wakeup >= 0 { close(wakeup) }
    }

    // MARK: - Checks

    /// Connects to `address` and closes at once; the future completes on `eventLoop` within about `timeout`
    /// and never fails.
    func check(_ address: SocketAddress, timeout: TimeAmount, on eventLoop: any EventLoop) -> EventLoopFuture<CheckOutcome> {
        let target = ConnectAddress(address)
        let (fd, immediate) = Self.connect(target)
        if let immediate { return eventLoop.makeSucceededFuture(immediate) }
        guard epoll >= 0, wakeup >= 0 else {
            Self.closeWithReset(fd)
            return eventLoop.makeSucceededFuture(.failure(reason: "connect: no epoll instance for the health checks"))
        }
        let promise = eventLoop.makePromise(of: CheckOutcome.self)
        let deadline = NIODeadline.now() + timeout
        let (registered, wake, startThread) = state.withLockedValue { state -> (Bool, Bool, Bool) in
            guard !state.stopped else { return (false, false, false) }
            state.watch(fd, timeout: timeout, deadline: deadline, completion: .promise(promise),
                        mayConnectToItself: target.mayConnectToItself, epoll: epoll)
            let startThread = !state.threadStarted
            state.threadStarted = true
            return (true, state.sleepingUntil.map { deadline < $0 } ?? false, startThread)
        }
        guard registered else {
            Self.closeWithReset(fd)
            promise.succeed(.failure(reason: "health checker stopped"))
            return promise.futureResult
        }
        if startThread {
            startThreadNow()
        } else if wake {
            signal()
        }
        return promise.futureResult
    }

    /// Runs `check` on the poller thread, first after `delay`, then every (jittered) interval until it is
    /// cancelled or the poller shuts down. Returns false, scheduling nothing, after shutdown.
    @discardableResult
    func schedule(_ check: RepeatingCheck, after delay: TimeAmount) -> Bool {
        guard epoll >= 0, wakeup >= 0 else { return false }
        let due = NIODeadline.now() + delay
        let (scheduled, wake, startThread) = state.withLockedValue { state -> (Bool, Bool, Bool) in
            guard !state.stopped else { return (false, false, false) }
            state.queue(check, at: due)
            let startThread = !state.threadStarted
            state.threadStarted = true
            return (true, state.sleepingUntil.map { due < $0 } ?? false, startThread)
        }
        if startThread { startThreadNow() } else if wake { signal() }
        return scheduled
    }

    private func startThreadNow() {
        let thread = Thread { [self] in self.run() }
        thread.name = "health-tcp-poller"
        thread.start()
    }

    /// Stops the poller thread; checks in progress complete as failed, later ones fail at once.
    func shutdown() {
        let (running, dropped) = state.withLockedValue { state -> (Bool, [CInt: Pending]) in
            state.stopped = true
            guard !state.threadStarted else { return (true, [:]) }
            defer { state.pending = [:] }
            return (false, state.pending)
        }
        if running { signal() }
        for (fd, check) in dropped {
            Self.closeWithReset(fd)
            // A repeating check is not told: its checker is stopping too.
            if case .promise(let promise) = check.completion { promise.succeed(.failure(reason: "health checker stopped")) }
        }
    }

    // MARK: - The poller thread

    private func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        // Jitter needs no cryptographic randomness; the system generator costs a system call per draw.
        var random = SplitMix(seed: UInt64(truncatingIfNeeded: NIODeadline.now().uptimeNanoseconds))
        var reschedule: [(RepeatingCheck, NIODeadline)] = []
        var completed: [(CInt, Pending, UInt32)] = []
        var started: [(CInt, RepeatingCheck, NIODeadline, Bool)] = []
        var sockets = SocketPool()
        var inFlight = false
        while true {
            let sleep = state.withLockedValue { state -> Int32? in
                guard !state.stopped else { return nil }
                for (check, due) in reschedule { state.queue(check, at: due) }
                // Entries of checks that completed stay in the heap; never wake up for one of them.
                while let first = state.deadlines.first, state.pending[first.value.fd]?.id != first.value.id {
                    state.deadlines.pop()
                }
                guard let next = Self.earliest(state.deadlines.firstDeadline, state.due.firstDeadline) else {
                    state.sleepingUntil = .distantFuture
                    return -1
                }
                state.sleepingUntil = next
                inFlight = !state.pending.isEmpty
                let nanoseconds = (next - .now()).nanoseconds
                return nanoseconds <= 0 ? 0 : Int32(clamping: (nanoseconds + 999_999) / 1_000_000)
            }
            reschedule.removeAll(keepingCapacity: true)
            guard let sleep else { break }
            if inFlight, sleep != 0, coalescing.nanoseconds > 0 {
                // Let the connects in flight finish together: one wake-up collects them all.
                var pause = timespec(tv_sec: Int(coalescing.nanoseconds / 1_000_000_000),
                                     tv_nsec: Int(coalescing.nanoseconds % 1_000_000_000))
                var left = timespec()
                while nanosleep(&pause, &left) != 0, errno == EINTR { pause = left }
            }
            let count = max(0, Int(epoll_wait(epoll, events, CInt(capacity), sleep)))
            // One lock for the whole batch of writable sockets, not one per check.
            completed.removeAll(keepingCapacity: true)
            state.withLockedValue { state in
                state.sleepingUntil = nil
                for index in 0..<count where events[index].data.fd != wakeup {
                    let fd = events[index].data.fd
                    if let check = state.pending.removeValue(forKey: fd) { completed.append((fd, check, events[index].events)) }
                }
            }
            if (0..<count).contains(where: { events[$0].data.fd == wakeup }) {
                var value: UInt64 = 0
                _ = read(wakeup, &value, MemoryLayout<UInt64>.size)
            }
            for (fd, check, ready) in completed {
                let finished = Self.finished(fd, events: ready, mayConnectToItself: check.mayConnectToItself)
                if case .repeating(let repeating, _) = check.completion, finished.outcome.isSuccess {
                    // Its epoll event fired, so the socket is disarmed, and it connected: safe to keep for the next
                    // check. One that failed is closed (see ``finished(_:events:mayConnectToItself:)``).
                    sockets.release(fd, family: repeating.address.family)
                } else {
                    Self.closeWithReset(fd)
                }
                if let next = Self.complete(check, finished.outcome, roundTrip: finished.roundTrip, random: &random) {
                    reschedule.append(next)
                }
            }
            expire(reschedule: &reschedule, random: &random)
            startDue(reschedule: &reschedule, started: &started, sockets: &sockets, random: &random)
        }
        sockets.closeAll()
        let dropped = state.withLockedValue { state in
            defer {
                state.pending = [:]
                state.deadlines = DeadlineHeap()
                state.due = DeadlineHeap()
            }
            return state.pending
        }
        for (fd, check) in dropped {
            Self.closeWithReset(fd)
            // A repeating check is not told: its checker is stopping too.
            if case .promise(let promise) = check.completion { promise.succeed(.failure(reason: "health checker stopped")) }
        }
    }

    /// Fails the checks whose deadline has passed.
    private func expire(reschedule: inout [(RepeatingCheck, NIODeadline)], random: inout SplitMix) {
        let now = NIODeadline.now()
        let expired = state.withLockedValue { state -> [(CInt, Pending)] in
            var expired: [(CInt, Pending)] = []
            while let first = state.deadlines.pop(dueBy: now) {
                // A completed check left its entry behind; its descriptor may belong to a newer check.
                let (fd, id) = first.value
                guard let check = state.pending[fd], check.id == id else { continue }
                state.pending[fd] = nil
                expired.append((fd, check))
            }
            return expired
        }
        for (fd, check) in expired {
            Self.closeWithReset(fd)
            if let next = Self.complete(check, .failure(reason: ProbeFailure.timeout(check.timeout)), random: &random) {
                reschedule.append(next)
            }
        }
    }

    /// Starts the repeating checks that are due: a connect that finishes at once is reported here, one in
    /// progress joins the epoll set.
    /// `started` is scratch space kept by the caller: the connects in progress, watched under one lock.
    private func startDue(
        reschedule: inout [(RepeatingCheck, NIODeadline)], started: inout [(CInt, RepeatingCheck, NIODeadline, Bool)],
        sockets: inout SocketPool, random: inout SplitMix
    ) {
        let now = NIODeadline.now()
        let due = state.withLockedValue { state -> [RepeatingCheck] in
            var due: [RepeatingCheck] = []
            while let first = state.due.pop(dueBy: now) {
                if !first.value.isCancelled { due.append(first.value) }
            }
            return due
        }
        started.removeAll(keepingCapacity: true)
        for check in due {
            let start = NIODeadline.now()
            let reused = sockets.take(family: check.address.family)
            let (fd, immediate) = Self.connect(check.address, reusing: reused)
            if let immediate {
                let pending = Pending(id: 0, timeout: check.timeout, completion: .repeating(check, started: start))
                if let next = Self.complete(pending, immediate, random: &random) { reschedule.append(next) }
                continue
            }
            started.append((fd, check, start, fd == reused))
        }
        guard !started.isEmpty else { return }
        // Only this thread completes repeating checks, and their descriptors stay open until then: watching
        // them all under one lock after the connects is as safe as one lock each.
        state.withLockedValue { state in
            for (fd, check, start, reused) in started {
                state.watch(fd, timeout: check.timeout, deadline: start + check.timeout,
                            completion: .repeating(check, started: start),
                            mayConnectToItself: check.address.mayConnectToItself, epoll: epoll, inEpollSet: reused)
            }
        }
    }

    /// Hands `outcome` to whoever waits for `check`; for a repeating check that is not cancelled, returns
    /// it with its next due time. A repeating check reports `roundTrip` (the handshake's, in nanoseconds) as
    /// its latency when the kernel measured one, else the time since it started.
    @discardableResult
    private static func complete(_ check: Pending, _ outcome: CheckOutcome, roundTrip: Int64? = nil,
                                 random: inout SplitMix) -> (RepeatingCheck, NIODeadline)? {
        switch check.completion {
        case .promise(let promise):
            promise.succeed(outcome)
            return nil
        case .repeating(let repeating, let started):
            let now = NIODeadline.now()
            let elapsed = now - started
            repeating.report(outcome, min(roundTrip ?? .max, elapsed.nanoseconds))
            guard !repeating.isCancelled else { return nil }
            let delay = CheckSchedule.nextDelay(interval: repeating.interval, jitter: repeating.jitter, elapsed: elapsed,
                                                random: random.nextUnit())
            return (repeating, now + delay)
        }
    }

    /// The earlier of two optional deadlines; `nil` when neither is set.
    static func earliest(_ a: NIODeadline?, _ b: NIODeadline?) -> NIODeadline? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeup, &one, MemoryLayout<UInt64>.size)
    }

    // MARK: - Sockets

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
    private static func connect(_ address: ConnectAddress, reusing reused: CInt? = nil) -> (CInt, CheckOutcome?) {
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

// MARK: - ConnectAddress

/// A check target's address as `connect` takes it, held inline (`SocketAddress` boxes it), with what the poller
/// needs to know of it worked out once.
struct ConnectAddress {
    /// Room for an address of either family (a `sockaddr_in` is the shorter).
    private let storage: sockaddr_in6
    private let length: socklen_t
    /// ``TCPConnectPoller/family(of:)``.
    let family: CInt
    /// ``TCPConnectPoller/mayConnectToItself(_:)``.
    let mayConnectToItself: Bool

    init(_ address: SocketAddress) {
        family = TCPConnectPoller.family(of: address)
        mayConnectToItself = TCPConnectPoller.mayConnectToItself(address)
        var storage = sockaddr_in6()
        var length = 0
        if family != AF_UNSPEC {
            address.withSockAddr { pointer, size in
                length = min(size, MemoryLayout<sockaddr_in6>.size)
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: length)) }
            }
        }
        self.storage = storage
        self.length = socklen_t(length)
    }

    func withSockAddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }
}

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
            TCPConnectPoller.closeWithReset(fd)
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

// MARK: - SplitMix

/// SplitMix64: a fast generator for schedule jitter (not for anything secret).
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<1.
    mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

// MARK: - DeadlineHeap

/// A binary min-heap of deadlines, each with its value: connects in progress (completed checks leave their
/// entry until it comes up: cheaper than finding and removing it, and bounded by the checks started within
/// one timeout) and repeating checks due.
struct DeadlineHeap<Value> {
    struct Entry {
        var deadline: NIODeadline
        var value: Value
    }

    private var entries: [Entry] = []

    var first: Entry? { entries.first }
    var firstDeadline: NIODeadline? { entries.first?.deadline }
    var count: Int { entries.count }

    // Entries move through a hole, each once, in place: `swapAt` on the array copies them, which for a class
    // reference is a retain and a release per move, and the sift of a heap of 10,000 repeating checks makes
    // fourteen.

    mutating func push(_ deadline: NIODeadline, _ value: Value) {
        entries.append(Entry(deadline: deadline, value: value))
        entries.withUnsafeMutableBufferPointer { heap in
            let base = heap.baseAddress!
            var hole = heap.count - 1
            let entry = (base + hole).move()
            while hole > 0 {
                let parent = (hole - 1) / 2
                guard deadline < base[parent].deadline else { break }
                (base + hole).moveInitialize(from: base + parent, count: 1)
                hole = parent
            }
            (base + hole).initialize(to: entry)
        }
    }

    @discardableResult
    mutating func pop() -> Entry? {
        guard let last = entries.popLast() else { return nil }
        guard !entries.isEmpty else { return last }
        return entries.withUnsafeMutableBufferPointer { heap in
            let base = heap.baseAddress!
            let top = base.move()
            var hole = 0
            while true {
                var child = 2 * hole + 1
                guard child < heap.count else { break }
                if child + 1 < heap.count, base[child + 1].deadline < base[child].deadline { child += 1 }
                guard base[child].deadline < last.deadline else { break }
                (base + hole).moveInitialize(from: base + child, count: 1)
                hole = child
            }
            (base + hole).initialize(to: last)
            return top
        }
    }

    /// Pops the first entry if its deadline is `deadline` or earlier.
    mutating func pop(dueBy deadline: NIODeadline) -> Entry? {
        guard let first = firstDeadline, first <= deadline else { return nil }
        return pop()
    }
}
