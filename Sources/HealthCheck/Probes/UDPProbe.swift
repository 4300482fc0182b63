import NIOCore
import NIOPosix

// MARK: - UDPProbe

/// Sends a datagram on a connected UDP socket and waits for an answer.
///
/// On Linux a connected UDP socket reports an ICMP port unreachable as `ECONNREFUSED` on the next receive;
/// NIO passes it to `errorCaught` and keeps the channel open, so a closed port fails at once instead of at the
/// timeout.
struct UDPProbe: HealthProbe {
    let address: SocketAddress
    let check: UDPHealthCheck

    func check(on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<CheckOutcome> {
        let promise = eventLoop.makePromise(of: CheckOutcome.self)
        let expected = check.expectedReply
        let connected = DatagramBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPCheckHandler(expected: expected, promise: promise))
                }
            }
            .connect(to: address)
        let payload = check.payload
        connected.whenComplete { result in
            switch result {
            case .success(let channel):
                let buffer = channel.allocator.buffer(bytes: payload)
                channel.writeAndFlush(buffer).whenFailure { error in
                    promise.succeed(.failure(reason: Self.describe(error, timeout: timeout)))
                }
            case .failure(let error):
                promise.succeed(.failure(reason: Self.describe(error, timeout: timeout)))
            }
        }
        let timer = eventLoop.scheduleTask(in: timeout) {
            promise.succeed(.failure(reason: "\(ProbeFailure.timeout(timeout)) without a reply"))
        }
        promise.futureResult.whenComplete { _ in
            timer.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
        }
        return promise.futureResult
    }

    static func describe(_ error: any Error, timeout: TimeAmount) -> String {
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED {
            return "port unreachable (connection refused)"
        }
        return ProbeFailure.describe(error, during: "udp", timeout: timeout)
    }
}

// MARK: - UDPCheckHandler

final class UDPCheckHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let expected: [UInt8]?
    private let promise: EventLoopPromise<CheckOutcome>

    init(expected: [UInt8]?, promise: EventLoopPromise<CheckOutcome>) {
        self.expected = expected
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        // A socket whose source port the kernel picked equal to the target's, on an address of this host with
        // nothing bound there, receives its own datagram: that is no reply.
        if envelope.remoteAddress == context.channel.localAddress {
            promise.succeed(.failure(reason: "connected to itself (nothing listens on the port)"))
            return
        }
        guard let expected else {
            promise.succeed(.success(reason: "reply received"))
            return
        }
        let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
        if contains(bytes, expected) {
            promise.succeed(.success(reason: "expected reply received"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed(.failure(reason: UDPProbe.describe(error, timeout: .zero)))
    }
}
