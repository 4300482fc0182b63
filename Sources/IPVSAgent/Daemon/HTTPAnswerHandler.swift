import NIOCore
import NIOHTTP1
import NIOPosix

/// One answer of the agent's HTTP servers.
struct HTTPAnswer: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    /// Headers beside `Content-Type`, `Content-Length` and `Connection`.
    var headers: [(name: String, value: String)] = []
}

/// How a server answers a request's path: at once, or after work off the event loop (`/status`,
/// which waits for the reconciler; the connection is then closed after it, so no request behind
/// it on the same connection can be answered first).
enum HTTPReply: Sendable {
    case now(HTTPAnswer)
    case later(@Sendable () async -> HTTPAnswer)
}

/// Answers one HTTP/1.1 request per `end` part from a route; tiny on purpose. The one HTTP server
/// code of the agent: `/metrics`, `/healthz` (`MetricsServer`) and the healthCheckNodePort
/// servers (`ServiceHealthServer`).
final class HTTPAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The reply to a request for a path (without its query).
    typealias Route = @Sendable (String) -> HTTPReply

    let route: Route
    private var path = "/"
    private var keepAlive = false

    init(route: @escaping Route) {
        self.route = route
    }

    /// A server on `host`:`port` answering every connection through `route`, its address reusable
    /// at once after a close (`SO_REUSEADDR`).
    static func bind(host: String, port: Int, route: @escaping Route) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(HTTPAnswerHandler(route: route))
                }
            }
            .bind(host: host, port: port).get()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = String(head.uri.split(separator: "?").first ?? "/")
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            switch route(path) {
            case .now(let answer):
                respond(context: context, answer, keepAlive: keepAlive)
            case .later(let make):
                let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                let eventLoop = context.eventLoop
                Task {
                    let answer = await make()
                    eventLoop.execute { handler.value.respond(context: bound.value, answer, keepAlive: false) }
                }
            }
        }
    }

    private func respond(context: ChannelHandlerContext, _ answer: HTTPAnswer, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: "\(answer.body.count)")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        if !keepAlive {
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
