import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

// MARK: - HealthProbe

/// One kind of check, prepared for one backend (addresses resolved, request bytes built) so that each check
/// does as little work as possible.
protocol HealthProbe: Sendable {
    /// Runs one check on `eventLoop`. The future completes on that loop within about `timeout` and never
    /// fails: every problem is a ``CheckOutcome/failure(reason:)``.
    func check(on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<CheckOutcome>
}

/// What probes share: the thread pool exec checks block on, the TLS contexts HTTPS checks reuse and the
/// poller thread of TCP checks.
final class ProbeContext: Sendable {
    let threadPool: NIOThreadPool
    let tcpPoller = TCPConnectPoller()
    private let tlsContexts = NIOLockedValueBox<[Bool: NIOSSLContext]>([:])

    init(threadPool: NIOThreadPool) {
        self.threadPool = threadPool
    }

    deinit {
        tcpPoller.shutdown()
    }

    /// Stops the TCP poller thread: checks in progress and later TCP checks fail.
    func shutdown() {
        tcpPoller.shutdown()
    }

    /// The client TLS context, verifying or not; built once (building one loads the trust roots).
    func tlsContext(insecureSkipVerify: Bool) throws -> NIOSSLContext {
        try tlsContexts.withLockedValue { contexts in
            if let context = contexts[insecureSkipVerify] { return context }
            var configuration = TLSConfiguration.makeClientConfiguration()
            if insecureSkipVerify { configuration.certificateVerification = .none }
            let context = try NIOSSLContext(configuration: configuration)
            contexts[insecureSkipVerify] = context
            return context
        }
    }

    /// Builds the probe for `target`.
    func makeProbe(for target: HealthTarget) throws -> any HealthProbe {
        let address = try SocketAddress(ipAddress: target.id.server.address.description, port: Int(target.checkPort))
        switch target.configuration.kind {
        case .disabled, .tcp:
            return TCPProbe(address: address, poller: tcpPoller)
        case .http(let http):
            let tls = http.tls ? try tlsContext(insecureSkipVerify: http.insecureSkipVerify) : nil
            return HTTPProbe(address: address, check: http, tls: tls, defaultHost: target.id.server.address.withPort(target.checkPort))
        case .udp(let udp):
            return UDPProbe(address: address, check: udp)
        case .exec(let exec):
            return ExecProbe(
                check: exec, threadPool: threadPool,
                environment: [
                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                    "HEALTH_ADDRESS=\(target.id.server.address)",
                    "HEALTH_PORT=\(target.checkPort)",
                    "HEALTH_SERVICE=\(target.serviceName)",
                ])
        }
    }
}

// MARK: - Failure reasons

enum ProbeFailure {
    /// `timeout after 500ms`.
    static func timeout(_ timeout: TimeAmount) -> String {
        "timeout after \(DurationText.format(.nanoseconds(timeout.nanoseconds)))"
    }

    /// A short reason for a connect or I/O error: `connect: connection refused`, `timeout after 500ms`.
    static func describe(_ error: any Error, during step: String, timeout: TimeAmount) -> String {
        switch error {
        case ChannelError.connectTimeout:
            return Self.timeout(timeout)
        case let error as IOError:
            return "\(step): \(errnoText(error.errnoCode))"
        case let error as NIOSSLError:
            return "TLS: \(error)"
        case let error as BoringSSLError:
            return "TLS: \(error)"
        case ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed, ChannelError.eof:
            return "\(step): connection closed"
        default:
            return "\(step): \(error)"
        }
    }

    /// `connection refused` for ECONNREFUSED: the C library's text, first letter lowercased.
    static func errnoText(_ code: CInt) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }
}

// MARK: - TCPProbe

/// Connects and closes at once, with a bare socket on the checker's ``TCPConnectPoller``.
struct TCPProbe: HealthProbe {
    let address: SocketAddress
    let poller: TCPConnectPoller

    func check(on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<CheckOutcome> {
        poller.check(address, timeout: timeout, on: eventLoop)
    }
}
