#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CEpoll
import Foundation
import IPVS
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

@testable import HealthCheck

/// The bare-socket TCP checks, against listeners on 127.0.0.1 (ephemeral ports); no other address is ever targeted.
final class TCPConnectPollerTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!
    var poller: TCPConnectPoller!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        poller = TCPConnectPoller()
    }

    override func tearDown() async throws {
        poller.shutdown()
        try await group.shutdownGracefully()
    }

    func check(port: Int, timeout: TimeAmount = .seconds(2)) async throws -> CheckOutcome {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        return try await poller.check(address, timeout: timeout, on: group.next()).get()
    }

    // MARK: - Verdicts

    func testAListeningPortIsUp() async throws {
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let outcome = try await check(port: server.localAddress!.port!)
        XCTAssertEqual(outcome, .success(reason: "connected"))
    }

    func testARefusedConnectionIsDown() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let outcome = try await check(port: refusing.port)
        XCTAssertEqual(outcome, .failure(reason: "connect: connection refused"))
    }

    func testAConnectThatHangsTimesOutAsDown() async throws {
        let listener = try FullBacklogListener()
        defer { listener.closeAll() }
        let started = ContinuousClock.now
        let outcome = try await check(port: listener.port, timeout: .milliseconds(200))
        XCTAssertEqual(outcome, .failure(reason: "timeout after 200ms"))
        let elapsed = ContinuousClock.now - started
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(200), "never before the timeout")
        XCTAssertLessThan(elapsed, .seconds(1), "not at the SYN retransmission (1 s) either")
    }

    /// Only a completed handshake is up, whatever epoll said. Linux queues the ICMP error of a connect in SYN_SENT
    /// on the socket's error queue, and 6.1 keeps it through a disconnect and the next connect: a reused socket
    /// then polls EPOLLERR right after connecting, still in SYN_SENT, with SO_ERROR 0 (issue 23), which was read
    /// as connected. A socket that is writable but not connected is no backend either.
    func testOnlyACompletedHandshakeIsUp() async throws {
        let listener = try FullBacklogListener()
        defer { listener.closeAll() }
        let connecting = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue), 0)
        defer { close(connecting) }
        XCTAssertEqual(LoopbackSocket.connect(connecting, to: LoopbackSocket.address(port: listener.port)), -1)
        XCTAssertEqual(errno, EINPROGRESS, "the listener's full backlog holds the connect in SYN_SENT")
        let polled: [(UInt32, String)] = [
            (EPOLLERR.rawValue, "EPOLLERR"), (EPOLLERR.rawValue | EPOLLOUT.rawValue, "EPOLLERR"),
            (EPOLLHUP.rawValue, "EPOLLHUP"), (EPOLLERR.rawValue | EPOLLHUP.rawValue, "EPOLLERR and EPOLLHUP"),
        ]
        for (events, seen) in polled {
            let finished = TCPSocket.finished(connecting, events: events, mayConnectToItself: false)
            XCTAssertEqual(finished.outcome,
                           .failure(reason: "connect: not connected (the socket polled \(seen) with no error code, TCP state SYN_SENT)"))
            XCTAssertNil(finished.roundTrip)
        }
        XCTAssertEqual(TCPSocket.finished(connecting, events: EPOLLOUT.rawValue, mayConnectToItself: false).outcome,
                       .failure(reason: "connect: not connected (the socket is writable in TCP state SYN_SENT)"))

        // A completed handshake is up, with the kernel's round trip.
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let connected = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        defer { close(connected) }
        XCTAssertEqual(LoopbackSocket.connect(connected, to: LoopbackSocket.address(port: server.localAddress!.port!)), 0)
        let finished = TCPSocket.finished(connected, events: EPOLLOUT.rawValue, mayConnectToItself: false)
        XCTAssertEqual(finished.outcome, .success(reason: "connected"))
        XCTAssertGreaterThan(try XCTUnwrap(finished.roundTrip), 0)
        XCTAssertEqual(TCPSocket.tcpStateName(UInt8(TCP_CLOSE_WAIT)), "CLOSE_WAIT")
        XCTAssertEqual(TCPSocket.tcpStateName(UInt8(200)), "200")
    }

    func testEarlierDeadlinesWakeThePollerFromALongerOne() async throws {
        // The poller sleeps until the 5 s deadline of the first check; the 100 ms one must still fire on time.
        let listener = try FullBacklogListener()
        defer { listener.closeAll() }
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: listener.port)
        let long = poller.check(address, timeout: .seconds(5), on: group.next())
        try await Task.sleep(for: .milliseconds(50))
        let started = ContinuousClock.now
        let short = try await check(port: listener.port, timeout: .milliseconds(100))
        XCTAssertEqual(short, .failure(reason: "timeout after 100ms"))
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
        poller.shutdown()
        let stopped = try await long.get()
        XCTAssertEqual(stopped, .failure(reason: "health checker stopped"), "shutdown completes a check in progress")
    }

    func testManyChecksAtOnceEachGetTheirOwnVerdict() async throws {
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let open = try SocketAddress(ipAddress: "127.0.0.1", port: server.localAddress!.port!)
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let closed = try SocketAddress(ipAddress: "127.0.0.1", port: refusing.port)
        // Descriptors are reused between checks; a verdict must never go to the wrong check.
        let futures = (0..<120).map { index in
            poller.check(index.isMultiple(of: 3) ? closed : open, timeout: .seconds(5), on: group.next())
        }
        for (index, future) in futures.enumerated() {
            let outcome = try await future.get()
            XCTAssertEqual(outcome.isSuccess, !index.isMultiple(of: 3), "check \(index): \(outcome)")
        }
    }

    func testASocketConnectedToItselfIsNoBackend() async throws {
        // A socket bound to a port of the ephemeral range and connected to its own address and port connects
        // (TCP simultaneous open), as a check's connect can when it picks the target's port as its source.
        let own = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        defer { close(own) }
        let address = try XCTUnwrap(LoopbackSocket.bind(own), "errno \(errno)")
        XCTAssertEqual(LoopbackSocket.connect(own, to: address), 0, "errno \(errno)")
        let port = LoopbackSocket.port(of: address)
        XCTAssertTrue(TCPSocket.mayConnectToItself(try SocketAddress(ipAddress: "127.0.0.1", port: port)))
        XCTAssertTrue(TCPSocket.connectedToItself(own))

        // An ordinary connection is not mistaken for one.
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let client = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        XCTAssertEqual(LoopbackSocket.connect(client, to: LoopbackSocket.address(port: server.localAddress!.port!)), 0)
        XCTAssertFalse(TCPSocket.connectedToItself(client))

        // Ports below the ephemeral range cannot be a connect's own source port: no extra system calls.
        XCTAssertFalse(TCPSocket.mayConnectToItself(try SocketAddress(ipAddress: "10.244.1.5", port: 80)))
    }

    func testAfterShutdownChecksFail() async throws {
        poller.shutdown()
        let listener = try FullBacklogListener()
        defer { listener.closeAll() }
        let outcome = try await check(port: listener.port)
        XCTAssertEqual(outcome, .failure(reason: "health checker stopped"))
    }

    func testTheProbeOfATCPTargetUsesThePoller() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        let context = ProbeContext(threadPool: pool)
        let target = HealthTarget(
            id: BackendID(
                service: .address(.tcp, IPAddress("10.96.0.10")!, port: 80),
                server: RealServerID(address: IPAddress("127.0.0.1")!, port: 1)),
            configuration: HealthCheckConfiguration(kind: .tcp))
        let probe = try XCTUnwrap(try context.makeProbe(for: target) as? TCPProbe)
        XCTAssertTrue(probe.poller === context.tcpPoller)
        context.shutdown()
        try await pool.shutdownGracefully()
    }

    // MARK: - Repeating checks

    /// Collects a repeating check's outcomes (reported on the poller thread).
    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private var outcomes: [CheckOutcome] = []
        func add(_ outcome: CheckOutcome) { lock.withLock { outcomes.append(outcome) } }
        var all: [CheckOutcome] { lock.withLock { outcomes } }
    }

    func repeating(_ port: Int, every interval: Duration, timeout: TimeAmount = .seconds(2), _ outcomes: Outcomes) throws
        -> TCPConnectPoller.RepeatingCheck {
        TCPConnectPoller.RepeatingCheck(
            address: try SocketAddress(ipAddress: "127.0.0.1", port: port), timeout: timeout, interval: interval, jitter: 0,
            report: { outcome, _ in outcomes.add(outcome) })
    }

    func testARepeatingCheckRunsEveryIntervalOnThePollerUntilCancelled() async throws {
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let refused = refusing.port
        let up = Outcomes(), down = Outcomes()
        let upCheck = try repeating(server.localAddress!.port!, every: .milliseconds(50), up)
        let downCheck = try repeating(refused, every: .milliseconds(50), down)
        XCTAssertTrue(poller.schedule(upCheck, after: .zero))
        XCTAssertTrue(poller.schedule(downCheck, after: .milliseconds(10)))
        try await waitFor { up.all.count >= 4 && down.all.count >= 4 }
        XCTAssertEqual(Set(up.all), [.success(reason: "connected")])
        XCTAssertEqual(Set(down.all), [.failure(reason: "connect: connection refused")])

        upCheck.cancel()
        let stopped = up.all.count
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertLessThanOrEqual(up.all.count, stopped + 1, "at most the check in flight reports after cancel")
        XCTAssertGreaterThanOrEqual(down.all.count, 8, "the other check keeps its schedule")
        // About one check per 50 ms: not a busy loop either.
        XCTAssertLessThan(down.all.count, 40, "checks run every interval, not back to back")
    }

    func testARepeatingCheckThatHangsTimesOutAndRepeats() async throws {
        let listener = try FullBacklogListener()
        defer { listener.closeAll() }
        let outcomes = Outcomes()
        XCTAssertTrue(poller.schedule(try repeating(listener.port, every: .milliseconds(100), timeout: .milliseconds(100), outcomes),
                                      after: .zero))
        try await waitFor { outcomes.all.count >= 2 }
        XCTAssertEqual(Set(outcomes.all), [.failure(reason: "timeout after 100ms")])
    }

    /// Checks due in the same wake-up start together and are watched under one lock, and their completions are
    /// taken from one epoll batch: each still gets its own verdict, every interval.
    func testManyRepeatingChecksDueAtOnceEachGetTheirOwnVerdicts() async throws {
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let refused = refusing.port
        let ups = (0..<40).map { _ in Outcomes() }, downs = (0..<10).map { _ in Outcomes() }
        var checks: [TCPConnectPoller.RepeatingCheck] = []
        for outcomes in ups { checks.append(try repeating(server.localAddress!.port!, every: .milliseconds(100), outcomes)) }
        for outcomes in downs { checks.append(try repeating(refused, every: .milliseconds(100), outcomes)) }
        for check in checks { XCTAssertTrue(poller.schedule(check, after: .milliseconds(20))) }
        try await waitFor { (ups + downs).allSatisfy { $0.all.count >= 3 } }
        checks.forEach { $0.cancel() }
        for outcomes in ups { XCTAssertEqual(Set(outcomes.all), [.success(reason: "connected")]) }
        for outcomes in downs { XCTAssertEqual(Set(outcomes.all), [.failure(reason: "connect: connection refused")]) }
    }

    /// Repeating checks that connect reuse their sockets (disconnected, not closed), and a reused socket carries
    /// nothing of its last check: checks of a listening port and of a refused one take turns, and every verdict is
    /// still the port's own (a reset left over from the last connection would read "connection reset by peer").
    /// A socket whose check failed is closed, never reused: what a failed connect leaves on it (an ICMP error on
    /// its error queue) could otherwise become a later check's verdict.
    func testRepeatingChecksReuseTheirSocketsWithoutCarryingVerdictsOver() async throws {
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let ups = (0..<10).map { _ in Outcomes() }, downs = (0..<10).map { _ in Outcomes() }
        var checks: [TCPConnectPoller.RepeatingCheck] = []
        for outcomes in ups { checks.append(try repeating(server.localAddress!.port!, every: .milliseconds(30), outcomes)) }
        for outcomes in downs { checks.append(try repeating(refusing.port, every: .milliseconds(30), outcomes)) }
        let openedBefore = TCPSocket.socketsOpened
        for (index, check) in checks.enumerated() { XCTAssertTrue(poller.schedule(check, after: .milliseconds(Int64(index % 3)))) }
        try await waitFor { (ups + downs).allSatisfy { $0.all.count >= 10 } }
        checks.forEach { $0.cancel() }
        let done = (ups + downs).reduce(0) { $0 + $1.all.count }
        for outcomes in ups { XCTAssertEqual(Set(outcomes.all), [.success(reason: "connected")]) }
        for outcomes in downs { XCTAssertEqual(Set(outcomes.all), [.failure(reason: "connect: connection refused")]) }
        // Other tests' pollers may open sockets meanwhile, so these are bounds, not exact counts.
        let opened = TCPSocket.socketsOpened - openedBefore
        let refused = downs.reduce(0) { $0 + $1.all.count }
        XCTAssertGreaterThanOrEqual(opened, refused, "\(refused) refused checks opened \(opened) sockets: failed sockets are reused")
        XCTAssertLessThan(opened, refused + (done - refused) / 2, "\(done) checks opened \(opened) sockets: they are not reused")
    }

    /// Pods made unreachable again and again, a few at a time, the way a dead node's pods are: their link goes
    /// down (SYNs dropped, then `EHOSTUNREACH` once ARP gives up), then up. Every check of a pod while its link is
    /// down fails, and it connects again once the link is back; the other pods stay up throughout. Before the
    /// fix of issue 23, on Linux 6.1 the first `EHOSTUNREACH` left a socket that every later check (reused
    /// sockets) took as connected. Linux 6.18 empties the error queue at connect, so there only the checks of
    /// verdicts and reuse above fail without the fix.
    func testRepeatedOutagesOfUnreachablePodsAreEachDown() throws {
        try VethPods.requireRoot()
        let pods = try VethPods(count: 3)
        try pods.waitUntilListening()
        let poller = TCPConnectPoller()
        defer { poller.shutdown() }
        let log = NIOLockedValueBox<[(pod: Int, at: ContinuousClock.Instant, outcome: CheckOutcome)]>([])
        func outcomes(of pod: Int, from start: ContinuousClock.Instant, to end: ContinuousClock.Instant = .now) -> [CheckOutcome] {
            log.withLockedValue { $0 }.filter { $0.pod == pod && $0.at > start && $0.at < end }.map(\.outcome)
        }
        let checks = try (1...3).map { pod in
            TCPConnectPoller.RepeatingCheck(
                address: try SocketAddress(ipAddress: pods.address(pod), port: 8080), timeout: .milliseconds(500),
                interval: .milliseconds(50), jitter: 0,
                report: { outcome, _ in log.withLockedValue { $0.append((pod, .now, outcome)) } })
        }
        defer { checks.forEach { $0.cancel() } }
        // The poller's thread starts with the first check, in the node's namespace, and makes its sockets there.
        try pods.inNode { for check in checks { XCTAssertTrue(poller.schedule(check, after: .zero)) } }
        let start = ContinuousClock.now
        try waitUntil("every pod is up") { (1...3).allSatisfy { outcomes(of: $0, from: start).contains(.success(reason: "connected")) } }

        /// When each pod's link began to go down (`downing`), was down, began to come back, and its first check
        /// connected again.
        var outages: [(pod: Int, downing: ContinuousClock.Instant, down: ContinuousClock.Instant, up: ContinuousClock.Instant,
                       connected: ContinuousClock.Instant)] = []
        for episode in 0..<6 {
            let downed = episode.isMultiple(of: 2) ? [episode % 3 + 1, (episode + 1) % 3 + 1] : [episode % 3 + 1]
            let downing = ContinuousClock.now
            for pod in downed { try pods.setLink(pod, up: false) }
            let down = ContinuousClock.now
            // ARP gives up after about 300 ms: each outage sees several unreachable verdicts.
            Thread.sleep(forTimeInterval: 1.2)
            let up = ContinuousClock.now
            for pod in downed { try pods.setLink(pod, up: true) }
            for pod in downed {
                try waitUntil("pod \(pod) is up again after outage \(episode)") {
                    outcomes(of: pod, from: up).contains(.success(reason: "connected"))
                }
                let connected = log.withLockedValue { $0 }.first { $0.pod == pod && $0.at > up && $0.outcome.isSuccess }!.at
                outages.append((pod, downing, down, up, connected))
            }
        }
        let end = ContinuousClock.now
        checks.forEach { $0.cancel() }

        for (index, outage) in outages.enumerated() {
            // A check that connected just before the link went down may be collected a coalescing window later.
            let during = outcomes(of: outage.pod, from: outage.down + .milliseconds(100), to: outage.up)
            XCTAssertFalse(during.isEmpty, "outage \(index) of pod \(outage.pod) was checked")
            XCTAssertEqual(during.filter(\.isSuccess).count, 0, "pod \(outage.pod) was up while its link was down (outage \(index))")
        }
        // ARP gives up in most outages (the checks' connects fail with EHOSTUNREACH, which left the error behind),
        // though on a busy machine an outage may see only timeouts.
        let unreachable = outages.filter { outage in
            outcomes(of: outage.pod, from: outage.down, to: outage.up).contains(.failure(reason: "connect: no route to host"))
        }
        XCTAssertGreaterThanOrEqual(unreachable.count * 2, outages.count,
                                    "ARP gave up in only \(unreachable.count) of \(outages.count) outages")
        for pod in 1...3 {
            // Outside its own outages (until it connected again: checks started before may still fail), a pod is
            // up at every check.
            let own = outages.filter { $0.pod == pod }
            let failures = log.withLockedValue { $0 }.filter { entry in
                entry.pod == pod && entry.at > start && entry.at < end && !entry.outcome.isSuccess
                    && !own.contains { entry.at >= $0.downing && entry.at <= $0.connected }
            }
            XCTAssertEqual(failures.count, 0, "pod \(pod) failed while its link was up: \(Set(failures.map(\.outcome.reason)))")
        }
    }

    /// With connects in flight the thread waits `coalescing` before collecting them, and a successful check
    /// reports the handshake's round trip as measured by the kernel, not that wait.
    func testACheckWaitsForTheCoalescingWindowAndReportsItsRoundTrip() async throws {
        poller.shutdown()
        poller = TCPConnectPoller(coalescing: .milliseconds(300))
        let server = try await TestServers.tcp(group: group)
        defer { server.close(promise: nil) }
        let latencies = NIOLockedValueBox<[Int64]>([])
        let started = ContinuousClock.now
        let arrived = NIOLockedValueBox<[Duration]>([])
        let check = TCPConnectPoller.RepeatingCheck(
            address: try SocketAddress(ipAddress: "127.0.0.1", port: server.localAddress!.port!), timeout: .seconds(5),
            interval: .seconds(10), jitter: 0,
            report: { outcome, nanoseconds in
                XCTAssertEqual(outcome, .success(reason: "connected"))
                latencies.withLockedValue { $0.append(nanoseconds) }
                arrived.withLockedValue { $0.append(ContinuousClock.now - started) }
            })
        XCTAssertTrue(poller.schedule(check, after: .zero))
        try await waitFor { !latencies.withLockedValue { $0 }.isEmpty }
        check.cancel()
        let latency = try XCTUnwrap(latencies.withLockedValue { $0.first })
        let arrival = try XCTUnwrap(arrived.withLockedValue { $0.first })
        XCTAssertGreaterThanOrEqual(arrival, .milliseconds(300), "the verdict waited for the coalescing window")
        XCTAssertGreaterThan(latency, 0)
        XCTAssertLessThan(latency, 300_000_000, "the reported latency is the handshake's, not the wait")
    }

    func testTheEarliestOfTwoOptionalDeadlines() {
        let now = NIODeadline.now(), later = now + .milliseconds(5)
        XCTAssertEqual(TCPConnectPoller.earliest(now, later), now)
        XCTAssertEqual(TCPConnectPoller.earliest(later, now), now)
        XCTAssertEqual(TCPConnectPoller.earliest(nil, later), later)
        XCTAssertEqual(TCPConnectPoller.earliest(later, nil), later)
        XCTAssertNil(TCPConnectPoller.earliest(nil, nil))
    }

    func testNothingIsScheduledAfterShutdown() throws {
        poller.shutdown()
        XCTAssertFalse(poller.schedule(try repeating(1, every: .milliseconds(10), Outcomes()), after: .zero))
    }

    /// Waits (blocking) until `condition` holds, for up to 10 s.
    func waitUntil(_ what: String, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                throw NSError(domain: "TCPConnectPollerTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "not within 10 s: \(what)"])
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// Polls `condition` every 10 ms for up to 10 s.
    func waitFor(_ condition: () -> Bool, file: StaticString = #filePath, line: UInt = #line) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { return XCTFail("condition not met within 10 s", file: file, line: line) }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

// MARK: - FullBacklogListener

/// A loopback listener with a backlog of 0 whose accept queue is filled and never drained: the kernel drops
/// further SYNs, so a connect to it hangs until the client gives up. The way to test a timeout on loopback.
struct FullBacklogListener {
    let fd: CInt
    let port: Int
    private let fillers: [CInt]

    init() throws {
        let listener = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        guard listener >= 0, let address = LoopbackSocket.bind(listener), listen(listener, 0) == 0 else {
            throw POSIXError(.EADDRNOTAVAIL)
        }
        // One connection fills a backlog of 0; a second makes sure.
        var fillers: [CInt] = []
        for _ in 0..<2 {
            let filler = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue), 0)
            _ = LoopbackSocket.connect(filler, to: address)
            fillers.append(filler)
        }
        usleep(50_000)
        self.fd = listener
        self.port = LoopbackSocket.port(of: address)
        self.fillers = fillers
    }

    func closeAll() {
        for filler in fillers { close(filler) }
        close(fd)
    }
}
