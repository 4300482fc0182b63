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
/// epoll set with its deadline, and the poller thread completes it when the socket becomes writable
/// (`SO_ERROR` says whether it connected) or when the deadline passes. Every socket is closed with a reset
/// (`SO_LINGER` 0), as HAProxy closes its health checks, so neither side keeps a `TIME_WAIT` entry per check.
///
/// The thread starts with the first connect in progress or scheduled check, and ends with ``shutdown()``.
final class TCPConnectPoller: @unchecked Sendable {
    // @unchecked: `epoll` and `wakeup` are immutable after init; everything else is behind `state`.
    private let epoll: CInt
    private let wakeup: CInt
    private let state = NIOLockedValueBox(State())

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
        let address: SocketAddress
        let timeout: TimeAmount
        let interval: Duration
        let jitter: Double
        /// Called on the poller thread with each outcome and its latency in nanoseconds.
        let report: @Sendable (CheckOutcome, Int64) -> Void
        /// Read by the poller before every check: an atomic, not a lock.
        private let cancelled = Atomic(false)
        /// ``TCPConnectPoller/mayConnectToItself(_:)`` of `address`, worked out once.
        let mayConnectToItself: Bool

        init(address: SocketAddress, timeout: TimeAmount, interval: Duration, jitter: Double,
             report: @escaping @Sendable (CheckOutcome, Int64) -> Void) {
            self.address = address
            self.timeout = timeout
            self.interval = interval
            self.jitter = jitter
            self.report = report
            self.mayConnectToItself = TCPConnectPoller.mayConnectToItself(address)
        }

        /// No further checks; an outcome in flight is still reported (the runner drops it).
        func cancel() { cancelled.store(true, ordering: .releasing) }
        var isCancelled: Bool { cancelled.load(ordering: .acquiring) }
    }

    private struct State {
        var pending: [CInt: Pending] = [:]
        var deadlines = DeadlineHeap()
        /// When each repeating check is due next (`fd` unused; `id` indexes `repeating`).
        var due = DeadlineHeap()
        var repeating: [UInt64: RepeatingCheck] = [:]
        var nextID: UInt64 = 0
        /// The deadline the poller sleeps until (`.distantFuture`: no deadline); `nil` while it is awake.
        var sleepingUntil: NIODeadline?
        var threadStarted = false
        var stopped = false

        /// Watches `fd`, a connect in progress, until it is writable or `deadline` passes. Called under the
        /// lock, so the poller cannot expire the entry and reuse the descriptor first.
        mutating func watch(_ fd: CInt, timeout: TimeAmount, deadline: NIODeadline, completion: Completion,
                            mayConnectToItself: Bool, epoll: CInt) {
            nextID &+= 1
            pending[fd] = Pending(id: nextID, timeout: timeout, completion: completion, mayConnectToItself: mayConnectToItself)
            deadlines.push(DeadlineHeap.Entry(deadline: deadline, fd: fd, id: nextID))
            var event = epoll_event()
            event.events = EPOLLOUT.rawValue | EPOLLONESHOT.rawValue
            event.data.fd = fd
            _ = epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
        }

        /// Queues `check` to start at `due`.
        mutating func queue(_ check: RepeatingCheck, at due: NIODeadline) {
            nextID &+= 1
            repeating[nextID] = check
            self.due.push(DeadlineHeap.Entry(deadline: due, fd: -1, id: nextID))
        }
    }

    init() {
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
        let (fd, immediate) = Self.connect(address)
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
                        mayConnectToItself: Self.mayConnectToItself(address), epoll: epoll)
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
        var completed: [(CInt, Pending)] = []
        var started: [(CInt, RepeatingCheck, NIODeadline)] = []
        while true {
            let sleep = state.withLockedValue { state -> Int32? in
                guard !state.stopped else { return nil }
                for (check, due) in reschedule { state.queue(check, at: due) }
                // Entries of checks that completed stay in the heap; never wake up for one of them.
                while let first = state.deadlines.first, state.pending[first.fd]?.id != first.id {
                    state.deadlines.pop()
                }
                guard let next = Self.earliest(state.deadlines.first?.deadline, state.due.first?.deadline) else {
                    state.sleepingUntil = .distantFuture
                    return -1
                }
                state.sleepingUntil = next
                let nanoseconds = (next - .now()).nanoseconds
                return nanoseconds <= 0 ? 0 : Int32(clamping: (nanoseconds + 999_999) / 1_000_000)
            }
            reschedule.removeAll(keepingCapacity: true)
            guard let sleep else { break }
            let count = max(0, Int(epoll_wait(epoll, events, CInt(capacity), sleep)))
            // One lock for the whole batch of writable sockets, not one per check.
            completed.removeAll(keepingCapacity: true)
            state.withLockedValue { state in
                state.sleepingUntil = nil
                for index in 0..<count where events[index].data.fd != wakeup {
                    let fd = events[index].data.fd
                    if let check = state.pending.removeValue(forKey: fd) { completed.append((fd, check)) }
                }
            }
            if (0..<count).contains(where: { events[$0].data.fd == wakeup }) {
                var value: UInt64 = 0
                _ = read(wakeup, &value, MemoryLayout<UInt64>.size)
            }
            for (fd, check) in completed {
                var error: CInt = 0
                var length = socklen_t(MemoryLayout<CInt>.size)
                if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
                let outcome = Self.outcome(error, fd: fd, mayConnectToItself: check.mayConnectToItself)
                Self.closeWithReset(fd)
                if let next = Self.complete(check, outcome, random: &random) { reschedule.append(next) }
            }
            expire(reschedule: &reschedule, random: &random)
            startDue(reschedule: &reschedule, started: &started, random: &random)
        }
        let dropped = state.withLockedValue { state in
            defer {
                state.pending = [:]
                state.deadlines = DeadlineHeap()
                state.due = DeadlineHeap()
                state.repeating = [:]
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
            while let first = state.deadlines.first, first.deadline <= now {
                state.deadlines.pop()
                // A completed check left its entry behind; its descriptor may belong to a newer check.
                guard let check = state.pending[first.fd], check.id == first.id else { continue }
                state.pending[first.fd] = nil
                expired.append((first.fd, check))
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
        reschedule: inout [(RepeatingCheck, NIODeadline)], started: inout [(CInt, RepeatingCheck, NIODeadline)],
        random: inout SplitMix
    ) {
        let now = NIODeadline.now()
        let due = state.withLockedValue { state -> [RepeatingCheck] in
            var due: [RepeatingCheck] = []
            while let first = state.due.first, first.deadline <= now {
                state.due.pop()
                if let check = state.repeating.removeValue(forKey: first.id), !check.isCancelled { due.append(check) }
            }
            return due
        }
        started.removeAll(keepingCapacity: true)
        for check in due {
            let start = NIODeadline.now()
            let (fd, immediate) = Self.connect(check.address)
            if let immediate {
                let pending = Pending(id: 0, timeout: check.timeout, completion: .repeating(check, started: start))
                if let next = Self.complete(pending, immediate, random: &random) { reschedule.append(next) }
                continue
            }
            started.append((fd, check, start))
        }
        guard !started.isEmpty else { return }
        // Only this thread completes repeating checks, and their descriptors stay open until then: watching
        // them all under one lock after the connects is as safe as one lock each.
        state.withLockedValue { state in
            for (fd, check, start) in started {
                state.watch(fd, timeout: check.timeout, deadline: start + check.timeout,
                            completion: .repeating(check, started: start),
                            mayConnectToItself: check.mayConnectToItself, epoll: epoll)
            }
        }
    }

    /// Hands `outcome` to whoever waits for `check`; for a repeating check that is not cancelled, returns
    /// it with its next due time.
    @discardableResult
    private static func complete(_ check: Pending, _ outcome: CheckOutcome, random: inout SplitMix) -> (RepeatingCheck, NIODeadline)? {
        switch check.completion {
        case .promise(let promise):
            promise.succeed(outcome)
            return nil
        case .repeating(let repeating, let started):
            let now = NIODeadline.now()
            let elapsed = now - started
            repeating.report(outcome, elapsed.nanoseconds)
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

    /// Opens a non-blocking socket and connects it to `address`: the descriptor of a connect in progress,
    /// or the outcome of one that finished (or failed) at once, its socket already closed.
    private static func connect(_ address: SocketAddress) -> (CInt, CheckOutcome?) {
        let family: CInt
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        case .unixDomainSocket: return (-1, .failure(reason: "connect: not an IP address"))
        }
        let fd = socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return (-1, .failure(reason: "socket: \(ProbeFailure.errnoText(errno))")) }
        let result = address.withSockAddr { pointer, length in Glibc.connect(fd, pointer, socklen_t(length)) }
        let error = result == 0 ? 0 : errno
        guard error == EINPROGRESS else {
            let immediate = outcome(error, fd: fd, mayConnectToItself: mayConnectToItself(address))
            closeWithReset(fd)
            return (-1, immediate)
        }
        return (fd, nil)
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
    private static func closeWithReset(_ fd: CInt) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(fd)
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

/// A binary min-heap of check deadlines. Completed checks leave their entry until it comes up: cheaper than
/// finding and removing it, and bounded by the checks started within one timeout.
struct DeadlineHeap {
    struct Entry {
        var deadline: NIODeadline
        var fd: CInt
        var id: UInt64
    }

    private var entries: [Entry] = []

    var first: Entry? { entries.first }
    var count: Int { entries.count }

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> Entry? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let top = entries.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < entries.count, entries[left].deadline < entries[smallest].deadline { smallest = left }
            if right < entries.count, entries[right].deadline < entries[smallest].deadline { smallest = right }
            guard smallest != parent else { return top }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
