internal import CNetlink
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A netlink socket opened through libnl, with request/acknowledge and dump exchanges and a
/// pipelined batch mode.
///
/// libnl owns the socket: it allocates it, binds it, picks the port id and resolves generic
/// netlink families. Receiving goes straight to the socket's descriptor into one reused buffer,
/// because `nl_recv` allocates a new buffer per call (and peeks twice with `NL_MSG_PEEK`), and the
/// batch path reads one acknowledgement per operation, hundreds of thousands of them.
///
/// Not thread-safe: use one socket from one task at a time.
public final class NetlinkSocket {
    private let handle: OpaquePointer
    private let scratch: UnsafeMutableRawBufferPointer
    private var sequence: UInt32

    /// The size of the buffer one receive reads into; larger than any single netlink skb.
    public static let receiveBufferSize = 1 << 20

    /// Opens and binds a socket of `netlinkProtocol` (default 16, `NETLINK_GENERIC`).
    public init(netlinkProtocol: Int32 = 16) throws {
        guard let handle = nl_socket_alloc() else {
            throw NetlinkError(errno: ENOMEM, operation: "allocate a netlink socket")
        }
        let status = nl_connect(handle, netlinkProtocol)
        guard status == 0 else {
            nl_socket_free(handle)
            throw NetlinkError(libnlCode: status, operation: "open a netlink socket")
        }
        self.handle = handle
        self.scratch = .allocate(byteCount: Self.receiveBufferSize, alignment: 8)
        self.sequence = UInt32(truncatingIfNeeded: time(nil)) &* 2_654_435_761
        var one: Int32 = 1
        // Acknowledgements without a copy of the request, and with the kernel's error text.
        _ = setsockopt(descriptor, cnetlink_sol_netlink(), NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(descriptor, cnetlink_sol_netlink(), NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit {
        nl_socket_free(handle)
        scratch.deallocate()
    }

    /// The socket's file descriptor.
    public var descriptor: Int32 { nl_socket_get_fd(handle) }

    /// The port id libnl bound the socket to.
    public var portID: UInt32 { nl_socket_get_local_port(handle) }

    /// Returns a fresh sequence number.
    public func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Sets the kernel socket buffer sizes, beyond `rmem_max`/`wmem_max` when the caller has
    /// `CAP_NET_ADMIN` (`SO_RCVBUFFORCE`), else as far as the limits allow.
    public func setBufferSizes(receive: Int, send: Int) {
        var receiveSize = Int32(clamping: receive)
        var sendSize = Int32(clamping: send)
        let size = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &receiveSize, size) != 0 {
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &receiveSize, size)
        }
        if setsockopt(descriptor, SOL_SOCKET, SO_SNDBUFFORCE, &sendSize, size) != 0 {
            _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &sendSize, size)
        }
    }

    /// The kernel's effective send buffer size (`SO_SNDBUF`).
    public var sendBufferSize: Int {
        var value: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &value, &size)
        return Int(value)
    }

    /// Resolves a generic netlink family name ("IPVS") to its message type id.
    /// Throws with `errno == ENOENT` when the kernel does not know the family.
    public func resolveGenericFamily(_ name: String) throws -> UInt16 {
        let id = genl_ctrl_resolve(handle, name)
        guard id >= 0 else {
            throw NetlinkError(libnlCode: id, operation: "resolve generic netlink family \(name)")
        }
        return UInt16(id)
    }

    // MARK: - Sending and receiving

    /// Sends `bytes` (one or more complete messages) in one `sendto`.
    public func send(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        while true {
            let sent = nl_sendto(handle, UnsafeMutableRawPointer(mutating: base), bytes.count)
            if sent >= 0 { return }
            if sent == -Int32(NLE_INTR) { continue }
            throw NetlinkError(libnlCode: sent, operation: "send \(bytes.count) bytes to the kernel")
        }
    }

    /// Sends `bytes` (one or more complete messages) in one `sendto`.
    public func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try send($0) }
    }

    /// Receives one datagram and splits it into messages.
    public func receive() throws -> [NetlinkMessage] {
        while true {
            let count = recv(descriptor, scratch.baseAddress, scratch.count, Int32(MSG_TRUNC))
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw NetlinkError(errno: code, operation: code == ENOBUFS
                    ? "receive from the kernel (answers were dropped: the receive buffer overflowed)"
                    : "receive from the kernel")
            }
            guard count <= scratch.count else {
                throw NetlinkDecodingError("a \(count)-byte datagram does not fit the \(scratch.count)-byte receive buffer")
            }
            let bytes = Array(UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
            return try NetlinkMessage.parse(bytes[...])
        }
    }

    // MARK: - Exchanges

    /// Sends one request built by `build` with `NLM_F_ACK` and returns the answers the kernel
    /// sent before its acknowledgement. Throws `NetlinkError` if the kernel refused it.
    public func request(operation: @autoclosure () -> String, _ build: (UInt32) -> [UInt8]) throws -> [NetlinkMessage] {
        let sequence = nextSequence()
        try send(build(sequence))
        var answers: [NetlinkMessage] = []
        while true {
            for message in try receive() where message.sequence == sequence {
                if message.type == NetlinkConstants.messageError {
                    let (code, text) = try message.acknowledgement()
                    if code != 0 { throw NetlinkError(errno: code, operation: operation(), kernelMessage: text) }
                    return answers
                }
                answers.append(message)
            }
        }
    }

    /// Sends a dump request built by `build` and returns every message of the multipart answer.
    public func dump(operation: @autoclosure () -> String, _ build: (UInt32) -> [UInt8]) throws -> [NetlinkMessage] {
        try dumpInParts(operation: operation(), build).messages
    }

    /// ``dump(operation:_:)``, also saying how many datagrams carried its answers. The kernel builds each
    /// datagram of a dump under its own lock and resumes where the last one stopped; a table that changes
    /// between two of them can be read with an entry twice or missing (the caller decides whether to read
    /// it again). The closing `NLMSG_DONE`, which the kernel sends in a datagram of its own after a
    /// datagram of answers, is not counted: a dump whose answers fit one datagram says 1.
    public func dumpInParts(operation: @autoclosure () -> String, _ build: (UInt32) -> [UInt8]) throws
        -> (messages: [NetlinkMessage], datagrams: Int)
    {
        let sequence = nextSequence()
        try send(build(sequence))
        var answers: [NetlinkMessage] = []
        var datagrams = 0
        while true {
            let counted = answers.count
            for message in try receive() where message.sequence == sequence {
                switch message.type {
                case NetlinkConstants.messageDone:
                    return (answers, datagrams + (answers.count > counted ? 1 : 0))
                case NetlinkConstants.messageError:
                    let (code, text) = try message.acknowledgement()
                    if code != 0 { throw NetlinkError(errno: code, operation: operation(), kernelMessage: text) }
                    return (answers, datagrams + (answers.count > counted ? 1 : 0))
                default:
                    answers.append(message)
                }
            }
            if answers.count > counted { datagrams += 1 }
        }
    }
}

extension NetlinkError {
    /// An error that libnl reported with its own (negative) `NLE_*` code.
    init(libnlCode: Int32, operation: String) {
        let code = abs(libnlCode)
        let text = nl_geterror(code).map { String(cString: $0) }
        let mapped: Int32 = switch code {
        case Int32(NLE_OBJ_NOTFOUND): ENOENT
        case Int32(NLE_PERM): EPERM
        case Int32(NLE_NOACCESS): EACCES
        case Int32(NLE_NOMEM): ENOMEM
        case Int32(NLE_EXIST): EEXIST
        case Int32(NLE_INVAL): EINVAL
        case Int32(NLE_AF_NOSUPPORT), Int32(NLE_PROTO_MISMATCH): EPROTONOSUPPORT
        default: 0
        }
        self.init(errno: mapped, operation: operation, libraryMessage: text)
    }
}
