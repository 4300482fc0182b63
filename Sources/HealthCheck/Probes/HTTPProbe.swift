import IPVS
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

// MARK: - HTTPProbe

/// `GET path` over HTTP/1.1 (optionally TLS) with `Connection: close`; judges the status and, if asked, the body.
struct HTTPProbe: HealthProbe {
    let address: SocketAddress
    let check: HTTPHealthCheck
    let tls: NIOSSLContext?
    let head: HTTPRequestHead
    let serverName: String?

    init(address: SocketAddress, check: HTTPHealthCheck, tls: NIOSSLContext?, defaultHost: String) {
        self.address = address
        self.check = check
        self.tls = tls
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: check.path)
        head.headers.add(name: "Host", value: check.host ?? defaultHost)
        head.headers.add(name: "User-Agent", value: "swift-ipvs-health-check")
        head.headers.add(name: "Accept", value: "*/*")
        head.headers.add(name: "Connection", value: "close")
        self.head = head
        // SNI only for a host name: an IP literal is not a valid server name.
        self.serverName = check.host.flatMap(Self.serverName(fromHost:))
    }

    func check(on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<CheckOutcome> {
        let promise = eventLoop.makePromise(of: CheckOutcome.self)
        let needle = check.bodyContains.map { Array($0.utf8) }
        let connected = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { [tls, serverName, head, check] channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(HTTPCheckHandler(head: head, expected: check.expectedStatus, needle: needle, promise: promise))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(to: address)
        connected.whenFailure { error in
            promise.succeed(.failure(reason: ProbeFailure.describe(error, during: "connect", timeout: timeout)))
        }
        let timer = eventLoop.scheduleTask(in: timeout) {
            promise.succeed(.failure(reason: ProbeFailure.timeout(timeout)))
        }
        promise.futureResult.whenComplete { _ in
            timer.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
        }
        return promise.futureResult
    }
}

// MARK: - HTTPCheckHandler

/// Sends the request when connected and completes the promise with the verdict.
final class HTTPCheckHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let head: HTTPRequestHead
    private let expected: ClosedRange<Int>
    private let needle: [UInt8]?
    private let promise: EventLoopPromise<CheckOutcome>
    private var status: HTTPResponseStatus?
    private var body: [UInt8] = []
    private var done = false

    init(head: HTTPRequestHead, expected: ClosedRange<Int>, needle: [UInt8]?, promise: EventLoopPromise<CheckOutcome>) {
        self.head = head
        self.expected = expected
        self.needle = needle
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let response):
            status = response.status
            let code = Int(response.status.code)
            if !expected.contains(code) {
                finish(context, .failure(reason: "HTTP \(code)"))
            } else if needle == nil {
                finish(context, .success(reason: "HTTP \(code)"))
            }
        case .body(var buffer):
            guard let needle else { return }
            let room = HTTPHealthCheck.bodyLimit - body.count
            if room > 0, let bytes = buffer.readBytes(length: min(room, buffer.readableBytes)) {
                body.append(contentsOf: bytes)
            }
            if contains(body, needle) {
                finish(context, .success(reason: "HTTP \(status?.code ?? 0), body matched"))
            } else if body.count >= HTTPHealthCheck.bodyLimit {
                finish(context, bodyMismatch())
            }
        case .end:
            finish(context, bodyMismatch())
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let step = status == nil ? "request" : "response"
        finish(context, .failure(reason: ProbeFailure.describe(error, during: step, timeout: .zero)))
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(context, .failure(reason: status == nil ? "connection closed before a response" : "connection closed during the body"))
        context.fireChannelInactive()
    }

    private func bodyMismatch() -> CheckOutcome {
        let needleText = String(decoding: needle ?? [], as: UTF8.self)
        return .failure(reason: "HTTP \(status?.code ?? 0) but the body lacks \"\(needleText)\"")
    }

    private func finish(_ context: ChannelHandlerContext, _ outcome: CheckOutcome) {
        guard !done else { return }
        done = true
        promise.succeed(outcome)
        context.close(promise: nil)
    }
}

/// Whether `needle` occurs in `haystack` (naive search: bodies are at most 64 KiB, needles short).
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty else { return true }
    guard haystack.count >= needle.count else { return false }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
    }
    return false
}

extension HTTPProbe {
    /// The TLS server name (SNI) for a `Host` value: its host name without the port; `nil` for an IP literal.
    static func serverName(fromHost host: String) -> String? {
        if host.hasPrefix("[") { return nil }
        let parts = host.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.first, !name.isEmpty else { return nil }
        return IPAddress(String(name)) == nil ? String(name) : nil
    }
}
