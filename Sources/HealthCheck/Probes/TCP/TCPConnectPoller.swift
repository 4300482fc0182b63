import CEpoll
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

// MARK: - TCPConnectPoller

/// Runs TCP connect checks with a bare non-blocking socket each, watched by one epoll thread: no channel,
/// pipeline or handler per check, which is what a check through `ClientBootstrap` costs.
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
///   before it collects what finished, so it wakes at most once per `coalescing` instead of once per finished
///   connect (each wake-up a context switch, and in a VM an interrupt and a timer reprogrammed). Checks start and time out up to that much late; the latency a successful check
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
    /// This saves two thread hops and an event loop timer per check, and checks due within the same
    /// millisecond start in one wake-up.
    final class RepeatingCheck: Sendable {
        /// The target, in the check itself: `SocketAddress` keeps it in a box of its own, one more cache miss
        /// per check when many backends take turns.
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
        let (fd, immediate) = TCPSocket.connect(target)
        if let immediate { return eventLoop.makeSucceededFuture(immediate) }
        guard epoll >= 0, wakeup >= 0 else {
            TCPSocket.closeWithReset(fd)
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
            TCPSocket.closeWithReset(fd)
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
            TCPSocket.closeWithReset(fd)
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
                let finished = TCPSocket.finished(fd, events: ready, mayConnectToItself: check.mayConnectToItself)
                if case .repeating(let repeating, _) = check.completion, finished.outcome.isSuccess {
                    // Its epoll event fired, so the socket is disarmed, and it connected: safe to keep for the next
                    // check. One that failed is closed (see ``finished(_:events:mayConnectToItself:)``).
                    sockets.release(fd, family: repeating.address.family)
                } else {
                    TCPSocket.closeWithReset(fd)
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
            TCPSocket.closeWithReset(fd)
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
            TCPSocket.closeWithReset(fd)
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
            let (fd, immediate) = TCPSocket.connect(check.address, reusing: reused)
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
}
