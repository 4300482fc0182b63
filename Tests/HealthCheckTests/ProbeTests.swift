import Foundation
import IPVS
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import XCTest

@testable import HealthCheck

/// Real checks against servers on 127.0.0.1 (ephemeral ports); no other address is ever targeted.
final class ProbeTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!
    var pool: NIOThreadPool!
    var context: ProbeContext!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        context = ProbeContext(threadPool: pool)
    }

    override func tearDown() async throws {
        context.shutdown()
        try await pool.shutdownGracefully()
        try await group.shutdownGracefully()
    }

    // MARK: - Helpers

    func target(port: Int, _ kind: HealthCheckKind) -> HealthTarget {
        HealthTarget(
            id: BackendID(
                service: .address(.tcp, IPAddress("10.96.0.10")!, port: 80),
                server: RealServerID(address: IPAddress("127.0.0.1")!, port: UInt16(port))),
            serviceName: "test/web",
            configuration: HealthCheckConfiguration(kind: kind))
    }

    func check(port: Int, _ kind: HealthCheckKind, timeout: TimeAmount = .seconds(2)) async throws -> CheckOutcome {
        let probe = try context.makeProbe(for: target(port: port, kind))
        return try await probe.check(on: group.next(), timeout: timeout).get()
    }

    // MARK: - TCP

    func testTCPConnectsToAListeningPortAndFailsOnAClosedOne() async throws {
        let server = try await TestServers.tcp(group: group)
        let port = server.localAddress!.port!
        let up = try await check(port: port, .tcp)
        XCTAssertEqual(up, .success(reason: "connected"))
        try await server.close()
        let down = try await check(port: port, .tcp)
        XCTAssertEqual(down, .failure(reason: "connect: connection refused"))
    }

    // MARK: - HTTP

    func testHTTPStatusRangeAndBody() async throws {
        let answer = NIOLockedValueBox(HTTPAnswer(status: 200, body: "all systems go"))
        let server = try await TestServers.http(group: group, answer: answer)
        defer { server.close(promise: nil) }
        let port = server.localAddress!.port!

        let ok = try await check(port: port, .http(HTTPHealthCheck(path: "/healthz")))
        XCTAssertEqual(ok, .success(reason: "HTTP 200"))
        let body = try await check(port: port, .http(HTTPHealthCheck(bodyContains: "systems")))
        XCTAssertEqual(body, .success(reason: "HTTP 200, body matched"))
        let missing = try await check(port: port, .http(HTTPHealthCheck(bodyContains: "meltdown")))
        XCTAssertEqual(missing, .failure(reason: "HTTP 200 but the body lacks \"meltdown\""))

        answer.withLockedValue { $0 = HTTPAnswer(status: 503, body: "overloaded") }
        let unavailable = try await check(port: port, .http(HTTPHealthCheck()))
        XCTAssertEqual(unavailable, .failure(reason: "HTTP 503"))
        let accepted = try await check(port: port, .http(HTTPHealthCheck(expectedStatus: 500...503)))
        XCTAssertEqual(accepted, .success(reason: "HTTP 503"))
    }

    func testHTTPAsksForTheConfiguredPathAndHost() async throws {
        let answer = NIOLockedValueBox(HTTPAnswer(status: 200, body: "ok", path: "/healthz?deep=1", host: "www.example.com"))
        let server = try await TestServers.http(group: group, answer: answer)
        defer { server.close(promise: nil) }
        let port = server.localAddress!.port!

        let ok = try await check(port: port, .http(HTTPHealthCheck(path: "/healthz?deep=1", host: "www.example.com")))
        XCTAssertEqual(ok, .success(reason: "HTTP 200"))
        let wrongPath = try await check(port: port, .http(HTTPHealthCheck(path: "/", host: "www.example.com")))
        XCTAssertEqual(wrongPath, .failure(reason: "HTTP 404"))
        let wrongHost = try await check(port: port, .http(HTTPHealthCheck(path: "/healthz?deep=1", host: "api.example.com")))
        XCTAssertEqual(wrongHost, .failure(reason: "HTTP 400"))
        // Without health-host, the Host is the pod address and check port.
        answer.withLockedValue { $0.host = "127.0.0.1:\(port)" }
        let defaultHost = try await check(port: port, .http(HTTPHealthCheck(path: "/healthz?deep=1")))
        XCTAssertEqual(defaultHost, .success(reason: "HTTP 200"))
    }

    func testTheHealthPortIsWhereTheProbeConnects() async throws {
        // The real server's own port refuses; the health port (health-port) listens.
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let answer = NIOLockedValueBox(HTTPAnswer(status: 200, body: "ok"))
        let healthServer = try await TestServers.http(group: group, answer: answer)
        defer { healthServer.close(promise: nil) }
        let healthPort = healthServer.localAddress!.port!
        answer.withLockedValue { $0.host = "127.0.0.1:\(healthPort)" }

        for kind in [HealthCheckKind.tcp, .http(HTTPHealthCheck())] {
            var target = target(port: refusing.port, kind)
            let unset = try await context.makeProbe(for: target).check(on: group.next(), timeout: .seconds(2)).get()
            XCTAssertFalse(unset.isSuccess, "\(kind) without a health port checks the real server's port: \(unset)")
            target.configuration.port = UInt16(healthPort)
            let outcome = try await context.makeProbe(for: target).check(on: group.next(), timeout: .seconds(2)).get()
            XCTAssertTrue(outcome.isSuccess, "\(kind) must connect to the health port \(healthPort): \(outcome)")
        }
    }

    func testHTTPToAClosedPortFails() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let outcome = try await check(port: refusing.port, .http(HTTPHealthCheck()))
        XCTAssertEqual(outcome, .failure(reason: "connect: connection refused"))
    }

    func testHTTPTimesOutOnAServerThatNeverAnswers() async throws {
        let silent = try await TestServers.tcp(group: group)
        defer { silent.close(promise: nil) }
        let started = ContinuousClock.now
        let outcome = try await check(port: silent.localAddress!.port!, .http(HTTPHealthCheck()), timeout: .milliseconds(200))
        XCTAssertEqual(outcome, .failure(reason: "timeout after 200ms"))
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(200), "never before the timeout")
    }

    // MARK: - HTTPS

    func testHTTPSWithASelfSignedCertificateNeedsInsecureSkipVerify() async throws {
        let answer = NIOLockedValueBox(HTTPAnswer(status: 204, body: ""))
        let server = try await TestServers.http(group: group, answer: answer, tls: try TestServers.serverContext())
        defer { server.close(promise: nil) }
        let port = server.localAddress!.port!

        let insecure = try await check(port: port, .http(HTTPHealthCheck(tls: true, insecureSkipVerify: true)))
        XCTAssertEqual(insecure, .success(reason: "HTTP 204"))
        let verified = try await check(port: port, .http(HTTPHealthCheck(tls: true)))
        XCTAssertFalse(verified.isSuccess, "a self-signed certificate must not pass verification")
        XCTAssertTrue(verified.reason.contains("TLS"), verified.reason)
    }

    // MARK: - UDP

    func testUDPEchoIsUpAndAClosedPortIsRefused() async throws {
        let echo = try await TestServers.udpEcho(group: group, prefix: "pong:")
        defer { echo.close(promise: nil) }
        let port = echo.localAddress!.port!
        let any = try await check(port: port, .udp(UDPHealthCheck(payload: Array("ping".utf8))))
        XCTAssertEqual(any, .success(reason: "reply received"))
        let matching = try await check(port: port, .udp(UDPHealthCheck(payload: Array("ping".utf8), expectedReply: Array("pong:ping".utf8))))
        XCTAssertEqual(matching, .success(reason: "expected reply received"))
        let wrong = try await check(port: port, .udp(UDPHealthCheck(payload: Array("ping".utf8), expectedReply: Array("other".utf8))), timeout: .milliseconds(200))
        XCTAssertEqual(wrong, .failure(reason: "timeout after 200ms without a reply"))

        let closed = try await TestServers.closedUDPPort(group: group)
        let started = ContinuousClock.now
        let refused = try await check(port: closed, .udp(UDPHealthCheck(payload: Array("ping".utf8))), timeout: .seconds(5))
        XCTAssertEqual(refused, .failure(reason: "port unreachable (connection refused)"))
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(4), "ICMP unreachable fails before the timeout")
    }

    // MARK: - Exec

    func testAUDPDatagramFromTheSocketItselfIsNoReply() throws {
        // What a connected UDP socket receives when its source port is the target's, on this host.
        let own = try SocketAddress(ipAddress: "127.0.0.1", port: 40_000)
        let backend = try SocketAddress(ipAddress: "127.0.0.1", port: 5353)
        for (source, expected) in [(own, CheckOutcome.failure(reason: "connected to itself (nothing listens on the port)")),
                                   (backend, .success(reason: "reply received"))] {
            let channel = EmbeddedChannel()
            channel.localAddress = own
            let promise = channel.eventLoop.makePromise(of: CheckOutcome.self)
            try channel.pipeline.syncOperations.addHandler(UDPCheckHandler(expected: nil, promise: promise))
            try channel.writeInbound(AddressedEnvelope(remoteAddress: source, data: ByteBuffer(string: "ping")))
            XCTAssertEqual(try promise.futureResult.wait(), expected)
            _ = try channel.finish()
        }
    }

    func testExecExitStatus() async throws {
        let ok = try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/bin/true"])))
        XCTAssertEqual(ok, .success(reason: "exit status 0"))
        let failed = try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/bin/false"])))
        XCTAssertEqual(failed, .failure(reason: "exit status 1"))
        let missing = try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/nonexistent/check"])))
        XCTAssertEqual(missing, .failure(reason: "exec /nonexistent/check: no such file or directory"))
    }

    func testExecGetsTheBackendInItsEnvironment() async throws {
        let script = #"test "$HEALTH_ADDRESS" = 127.0.0.1 && test "$HEALTH_PORT" = 4321 && test "$HEALTH_SERVICE" = test/web"#
        let outcome = try await check(port: 4321, .exec(ExecHealthCheck(arguments: ["/bin/sh", "-c", script])))
        XCTAssertEqual(outcome, .success(reason: "exit status 0"))
    }

    /// keepalived's `script_user`: the program runs as the named user, no supplementary groups, a clean environment.
    func testExecRunsAsTheCheckUserWithACleanEnvironment() async throws {
        guard geteuid() == 0 else { throw XCTSkip("changing the user of a child needs root") }
        let nobody = try ProcessUser.named("nobody")
        let script = #"test "$(id -u)" = \#(nobody.uid) && test "$(id -g)" = \#(nobody.gid) && test "$(id -G)" = \#(nobody.gid) && test -z "$HOME$USER$LD_PRELOAD" && test "$(env | wc -l)" -le 6"#
        let outcome = try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/bin/sh", "-c", script], user: nobody)))
        XCTAssertEqual(outcome, .success(reason: "exit status 0"))
        let asRoot = try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/bin/sh", "-c", #"test "$(id -u)" = \#(nobody.uid)"#])))
        XCTAssertEqual(asRoot, .failure(reason: "exit status 1"), "without a user the check runs as this process")
    }

    func testExecUserMustExistAndNotBeRoot() {
        XCTAssertThrowsError(try ProcessUser.named("root")) { error in
            XCTAssertEqual("\(error)", #""root" is root (uid 0); exec checks run as an unprivileged user"#)
        }
        XCTAssertThrowsError(try ProcessUser.named("no-such-user-ipvs")) { error in
            XCTAssertTrue("\(error)".hasPrefix(#"there is no user "no-such-user-ipvs" on this node"#), "\(error)")
        }
    }

    func testExecTimeoutKillsTheProgram() async throws {
        let started = ContinuousClock.now
        let outcome = try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/bin/sleep", "5"])), timeout: .milliseconds(300))
        XCTAssertEqual(outcome, .failure(reason: "timeout after 300ms, killed"))
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(4), "killed well before sleep 5 ends")
    }

    func testExecTimeoutKillsTheWholeProcessGroup() async throws {
        // The shell waits for a child sleep; killing only the shell would leave the sleep holding the wait.
        let started = ContinuousClock.now
        let outcome = try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/bin/sh", "-c", "/bin/sleep 5; true"])), timeout: .milliseconds(300))
        XCTAssertEqual(outcome, .failure(reason: "timeout after 300ms, killed"))
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(4))
    }

    func testExecDynamicWeightFollowsMiscDynamic() async throws {
        func run(_ status: Int, dynamic: Bool = true) async throws -> CheckOutcome {
            try await check(port: 1, .exec(ExecHealthCheck(arguments: ["/bin/sh", "-c", "exit \(status)"], dynamicWeight: dynamic)))
        }
        let seven = try await run(7)
        XCTAssertEqual(seven, .success(reason: "exit status 7", weight: 5))
        let two = try await run(2)
        XCTAssertEqual(two, .success(reason: "exit status 2", weight: 0))
        let max = try await run(255)
        XCTAssertEqual(max, .success(reason: "exit status 255", weight: 253))
        let one = try await run(1)
        XCTAssertEqual(one, .failure(reason: "exit status 1"), "1 stays a failure with misc_dynamic")
        let zero = try await run(0)
        XCTAssertEqual(zero, .success(reason: "exit status 0"), "0 keeps the configured weight")
        let staticSeven = try await run(7, dynamic: false)
        XCTAssertEqual(staticSeven, .failure(reason: "exit status 7"))
    }

    func testServerNameIsOnlyAHostName() {
        XCTAssertEqual(HTTPProbe.serverName(fromHost: "web.example.com"), "web.example.com")
        XCTAssertEqual(HTTPProbe.serverName(fromHost: "web.example.com:8443"), "web.example.com")
        XCTAssertNil(HTTPProbe.serverName(fromHost: "10.0.0.1"))
        XCTAssertNil(HTTPProbe.serverName(fromHost: "10.0.0.1:80"))
        XCTAssertNil(HTTPProbe.serverName(fromHost: "[fd00::1]:80"))
    }
}
