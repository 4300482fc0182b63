internal import CNetlinkRoute
import NetworkAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Every C call of the module lives in this file: libnl-route for links and addresses, and the
// plain file calls behind /proc/sys. The public types above it speak Swift only.

// MARK: - Failures

/// A failed C call, before it is given words: the kernel's errno when known, libnl's text, and
/// the kernel's extended-acknowledgement message.
struct SystemFailure: Error {
    var errno: Int32
    var library: String?
    var kernelMessage: String?

    /// Which libnl code the kernel's error number became, for callers that ask "was it EEXIST?".
    var libnlCode: Int32 = 0
}

/// Where the error callback leaves the kernel's answer; one per socket, reset before each request.
final class KernelAnswer {
    var errno: Int32 = 0
    var message: String?

    func reset() {
        errno = 0
        message = nil
    }
}

/// libnl calls this for every `NLMSG_ERROR` carrying a non-zero error. It records the kernel's
/// own errno (libnl would otherwise keep only its coarser `NLE_*` code) and extended-ack text,
/// then stops the receive loop as libnl's default handler does.
private func recordKernelError(_ peer: UnsafeMutablePointer<sockaddr_nl>?, _ error: UnsafeMutablePointer<nlmsgerr>?,
                               _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let error, let argument else { return Int32(NL_STOP.rawValue) }
    let answer = Unmanaged<KernelAnswer>.fromOpaque(argument).takeUnretainedValue()
    answer.errno = -error.pointee.error
    answer.message = cnlroute_extack_message(error).map { String(cString: $0) }
    return Int32(NL_STOP.rawValue)
}

// MARK: - Link and address records

/// What the module reads about a network interface.
struct LinkRecord {
    var index: Int32
    var name: String
    /// The `IFLA_INFO_KIND` (`dummy`, `veth`, …); `nil` for devices without one (physical, `lo`).
    var kind: String?
    var flags: UInt32

    var isUp: Bool { flags & UInt32(IFF_UP.rawValue) != 0 }
}

/// What the module reads about an address.
struct AddressRecord {
    var interfaceIndex: Int32
    var address: IPAddress
    var prefixLength: Int
    var scope: Int32
}

// MARK: - The rtnetlink socket

/// One libnl-route socket (`NETLINK_ROUTE`) and thin wrappers over the libnl calls the module uses.
///
/// Not thread-safe; `LinkManager` serialises access.
final class RouteSocket {
    private let handle: OpaquePointer
    private let answer = KernelAnswer()
    /// The last sequence number of `addAddresses`' requests.
    private var batchSequence: UInt32 = 1 << 31
    private var receiveBufferRaised = false

    init() throws(SystemFailure) {
        guard let handle = nl_socket_alloc() else { throw SystemFailure(errno: ENOMEM, library: "out of memory") }
        let status = nl_connect(handle, NETLINK_ROUTE)
        guard status == 0 else {
            nl_socket_free(handle)
            throw Self.failure(status, answer: nil)
        }
        self.handle = handle
        var one: Int32 = 1
        let descriptor = nl_socket_get_fd(handle)
        // The kernel's error text in acknowledgements, without a copy of the request.
        _ = setsockopt(descriptor, cnlroute_sol_netlink(), NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(descriptor, cnlroute_sol_netlink(), NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = nl_socket_modify_err_cb(handle, NL_CB_CUSTOM, recordKernelError,
                                    Unmanaged.passUnretained(answer).toOpaque())
    }

    deinit {
        nl_socket_free(handle)
    }

    /// Runs one libnl request and turns a negative result into a `SystemFailure` that carries the
    /// kernel's own errno when the kernel sent one.
    private func call(_ body: () -> Int32) throws(SystemFailure) {
        answer.reset()
        let status = body()
        if status < 0 { throw Self.failure(status, answer: answer) }
    }

    fileprivate static func failure(_ status: Int32, answer: KernelAnswer?) -> SystemFailure {
        let code = abs(status)
        let library = nl_geterror(code).map { String(cString: $0) }
        if let answer, answer.errno != 0 {
            return SystemFailure(errno: answer.errno, library: library, kernelMessage: answer.message, libnlCode: code)
        }
        // No kernel answer recorded: a failure inside libnl, or a request whose receive loop
        // libnl runs with its own error handler (nl_pickup). Undo libnl's nl_syserr2nlerr where
        // it is one-to-one enough to matter.
        let errno: Int32 = switch code {
        case Int32(NLE_NODEV): ENODEV
        case Int32(NLE_OBJ_NOTFOUND): ENOENT
        case Int32(NLE_EXIST): EEXIST
        case Int32(NLE_NOADDR): EADDRNOTAVAIL
        case Int32(NLE_PERM): EPERM
        case Int32(NLE_NOACCESS): EACCES
        case Int32(NLE_INVAL): EINVAL
        case Int32(NLE_NOMEM): ENOMEM
        case Int32(NLE_AGAIN): EAGAIN
        case Int32(NLE_INTR): EINTR
        case Int32(NLE_BUSY): EBUSY
        case Int32(NLE_RANGE): ERANGE
        case Int32(NLE_OPNOTSUPP): EOPNOTSUPP
        case Int32(NLE_AF_NOSUPPORT): EAFNOSUPPORT
        case Int32(NLE_PROTO_MISMATCH): EPROTONOSUPPORT
        case Int32(NLE_BAD_SOCK): EBADF
        default: 0
        }
        return SystemFailure(errno: errno, library: library, libnlCode: code)
    }

    // MARK: Links

    /// The link named `name`, or `nil` when the kernel has none (`ENODEV`).
    func link(named name: String) throws(SystemFailure) -> LinkRecord? {
        var link: OpaquePointer?
        do throws(SystemFailure) {
            try call { rtnl_link_get_kernel(handle, 0, name, &link) }
        } catch where error.errno == ENODEV {
            return nil
        }
        guard let link else { return nil }
        defer { rtnl_link_put(link) }
        return Self.record(link)
    }

    /// Every link of the network namespace.
    func links() throws(SystemFailure) -> [LinkRecord] {
        var cache: OpaquePointer?
        try call { rtnl_link_alloc_cache(handle, AF_UNSPEC, &cache) }
        guard let cache else { return [] }
        defer { nl_cache_free(cache) }
        var records: [LinkRecord] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            records.append(Self.record(current))
            object = nl_cache_get_next(current)
        }
        return records
    }

    fileprivate static func record(_ link: OpaquePointer) -> LinkRecord {
        LinkRecord(index: rtnl_link_get_ifindex(link),
                   name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "",
                   kind: rtnl_link_get_type(link).map { String(cString: $0) },
                   flags: rtnl_link_get_flags(link))
    }

    /// Creates a link of `kind` named `name` (`RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL`),
    /// set up at once when `up`.
    func createLink(named name: String, kind: String, up: Bool) throws(SystemFailure) {
        guard let link = rtnl_link_alloc() else { throw SystemFailure(errno: ENOMEM, library: "out of memory") }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let status = rtnl_link_set_type(link, kind)
        if status < 0 { throw Self.failure(status, answer: nil) }
        if up { rtnl_link_set_flags(link, UInt32(IFF_UP.rawValue)) }
        try call { rtnl_link_add(handle, link, NLM_F_CREATE | NLM_F_EXCL) }
    }

    /// Sets `IFF_UP` on the link with index `index` (`RTM_NEWLINK` changing only that flag).
    func setUp(index: Int32, name: String) throws(SystemFailure) {
        guard let original = rtnl_link_alloc(), let changes = rtnl_link_alloc() else {
            throw SystemFailure(errno: ENOMEM, library: "out of memory")
        }
        defer {
            rtnl_link_put(original)
            rtnl_link_put(changes)
        }
        rtnl_link_set_ifindex(original, index)
        rtnl_link_set_name(original, name)
        rtnl_link_set_flags(changes, UInt32(IFF_UP.rawValue))
        try call { rtnl_link_change(handle, original, changes, 0) }
    }

    /// Deletes the link with index `index` (`RTM_DELLINK`).
    func deleteLink(index: Int32) throws(SystemFailure) {
        guard let link = rtnl_link_alloc() else { throw SystemFailure(errno: ENOMEM, library: "out of memory") }
        defer { rtnl_link_put(link) }
        rtnl_link_set_ifindex(link, index)
        try call { rtnl_link_delete(handle, link) }
    }

    // MARK: Addresses

    /// Every address of the network namespace, of both families (`RTM_GETADDR` dump).
    func addresses() throws(SystemFailure) -> [AddressRecord] {
        var cache: OpaquePointer?
        try call { rtnl_addr_alloc_cache(handle, &cache) }
        guard let cache else { return [] }
        defer { nl_cache_free(cache) }
        var records: [AddressRecord] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            if let record = Self.record(address: current) { records.append(record) }
            object = nl_cache_get_next(current)
        }
        return records
    }

    /// The record of a libnl address object; `nil` for one without a local address.
    fileprivate static func record(address: OpaquePointer) -> AddressRecord? {
        guard let local = rtnl_addr_get_local(address),
              let base = nl_addr_get_binary_addr(local),
              let ip = IPAddress(bytes: UnsafeRawBufferPointer(start: base, count: Int(nl_addr_get_len(local)))) else {
            return nil
        }
        return AddressRecord(interfaceIndex: rtnl_addr_get_ifindex(address), address: ip,
                             prefixLength: Int(rtnl_addr_get_prefixlen(address)), scope: rtnl_addr_get_scope(address))
    }

    /// Adds `address`/`prefixLength` to the link with index `index` (`RTM_NEWADDR`), with
    /// `IFA_F_NODAD` for IPv6 so the address is usable at once.
    func addAddress(_ address: IPAddress, prefixLength: Int, index: Int32) throws(SystemFailure) {
        try withAddress(address, prefixLength: prefixLength, index: index) { (request) throws(SystemFailure) in
            if address.family == .inet6 { rtnl_addr_set_flags(request, UInt32(IFA_F_NODAD)) }
            try call { rtnl_addr_add(handle, request, NLM_F_CREATE | NLM_F_EXCL) }
        }
    }

    /// Adds many addresses to the link with index `index` with pipelined `RTM_NEWADDR` requests:
    /// up to `window` requests go out in one `send`, then their acknowledgements are read. The
    /// kernel handles a send's requests one by one before `send` returns, so every answer is
    /// queued by then and is read without waiting. One result per address, `nil` for success;
    /// an address already bound (`EEXIST`) is a success.
    ///
    /// Requests carry sequence numbers of their own (from the top half of the range), so libnl's
    /// sequence checking of the socket's other requests is not disturbed.
    func addAddresses(_ addresses: [(address: IPAddress, prefixLength: Int)], index: Int32, window: Int = 256) -> [SystemFailure?] {
        var results = [SystemFailure?](repeating: nil, count: addresses.count)
        let descriptor = nl_socket_get_fd(handle)
        if !receiveBufferRaised {
            // Room for a whole window of acknowledgements (about 1 KiB each in the kernel's count).
            var size = Int32(window * 4096)
            if setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            receiveBufferRaised = true
        }
        var buffer: [UInt8] = []
        var answer = [UInt8](repeating: 0, count: 64 * 1024)
        var start = 0
        while start < addresses.count {
            let end = min(start + window, addresses.count)
            buffer.removeAll(keepingCapacity: true)
            var pending: [UInt32: Int] = [:]
            for position in start..<end {
                let (address, prefixLength) = addresses[position]
                do throws(SystemFailure) {
                    try withAddress(address, prefixLength: prefixLength, index: index) { (request) throws(SystemFailure) in
                        if address.family == .inet6 { rtnl_addr_set_flags(request, UInt32(IFA_F_NODAD)) }
                        var message: OpaquePointer?
                        let status = rtnl_addr_build_add_request(request, NLM_F_CREATE | NLM_F_EXCL, &message)
                        guard status >= 0, let message else { throw Self.failure(status, answer: nil) }
                        defer { nlmsg_free(message) }
                        guard let header = nlmsg_hdr(message) else { throw SystemFailure(errno: ENOMEM, library: "out of memory") }
                        batchSequence = batchSequence == UInt32.max ? 1 << 31 : batchSequence + 1
                        header.pointee.nlmsg_seq = batchSequence
                        header.pointee.nlmsg_pid = nl_socket_get_local_port(handle)
                        header.pointee.nlmsg_flags |= UInt16(NLM_F_REQUEST | NLM_F_ACK)
                        buffer.append(contentsOf: UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len)))
                        pending[batchSequence] = position
                    }
                } catch {
                    results[position] = error
                }
            }
            start = end
            guard !pending.isEmpty else { continue }
            let sent = buffer.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
            if sent != buffer.count {
                let failure = SystemFailure(errno: sent < 0 ? errno : EIO, library: sent < 0 ? nil : "short send to rtnetlink")
                for position in pending.values { results[position] = failure }
                continue
            }
            while !pending.isEmpty {
                let count = answer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else {
                    // No answer queued (or ENOBUFS: the kernel dropped some): their outcome is unknown.
                    let failure = SystemFailure(errno: count < 0 ? errno : EIO, library: "no acknowledgement from the kernel")
                    for position in pending.values { results[position] = failure }
                    break
                }
                answer.withUnsafeBytes { raw in
                    var offset = 0
                    let headerSize = MemoryLayout<nlmsghdr>.size
                    while offset + headerSize <= count {
                        let header = raw.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self)
                        let length = Int(header.nlmsg_len)
                        guard length >= headerSize, offset + length <= count else { break }
                        if header.nlmsg_type == UInt16(NLMSG_ERROR), length >= headerSize + MemoryLayout<nlmsgerr>.size,
                           let position = pending.removeValue(forKey: header.nlmsg_seq) {
                            let error = raw.baseAddress!.advanced(by: offset + headerSize).assumingMemoryBound(to: nlmsgerr.self)
                            let code = -error.pointee.error
                            if code != 0, code != EEXIST {
                                results[position] = SystemFailure(errno: code, library: nil,
                                                                  kernelMessage: cnlroute_extack_message(error).map { String(cString: $0) })
                            }
                        }
                        offset += (length + 3) & ~3
                    }
                }
            }
        }
        return results
    }

    /// Deletes `address`/`prefixLength` from the link with index `index` (`RTM_DELADDR`).
    func deleteAddress(_ address: IPAddress, prefixLength: Int, index: Int32) throws(SystemFailure) {
        try withAddress(address, prefixLength: prefixLength, index: index) { (request) throws(SystemFailure) in
            try call { rtnl_addr_delete(handle, request, 0) }
        }
    }

    private func withAddress(_ address: IPAddress, prefixLength: Int, index: Int32,
                             _ body: (OpaquePointer) throws(SystemFailure) -> Void) throws(SystemFailure) {
        let family = address.family == .inet ? AF_INET : AF_INET6
        let bytes = address.bytes
        guard let request = rtnl_addr_alloc(),
              let local = bytes.withUnsafeBytes({ nl_addr_build(family, $0.baseAddress, $0.count) }) else {
            throw SystemFailure(errno: ENOMEM, library: "out of memory")
        }
        defer {
            nl_addr_put(local)
            rtnl_addr_put(request)
        }
        nl_addr_set_prefixlen(local, Int32(prefixLength))
        rtnl_addr_set_ifindex(request, index)
        rtnl_addr_set_family(request, family)
        let status = rtnl_addr_set_local(request, local)
        if status < 0 { throw Self.failure(status, answer: nil) }
        rtnl_addr_set_prefixlen(request, Int32(prefixLength))
        try body(request)
    }
}

// MARK: - Notifications

/// A change the kernel announced on an rtnetlink notification socket.
enum RouteNotification {
    /// `RTM_NEWLINK` (a link added or changed) or `RTM_DELLINK`.
    case link(LinkRecord, removed: Bool)
    /// `RTM_NEWADDR` or `RTM_DELADDR`.
    case address(AddressRecord, removed: Bool)
}

/// Where `nl_msg_parse` leaves the object it parsed from one message.
private final class ParsedNotification {
    let type: Int32
    var notification: RouteNotification?

    init(type: Int32) {
        self.type = type
    }
}

/// libnl calls this with the object it parsed from a notification (a `route/link` or `route/addr`).
private func recordParsedObject(_ object: OpaquePointer?, _ argument: UnsafeMutableRawPointer?) {
    guard let object, let argument else { return }
    let parsed = Unmanaged<ParsedNotification>.fromOpaque(argument).takeUnretainedValue()
    switch parsed.type {
    case Int32(RTM_NEWLINK), Int32(RTM_DELLINK):
        parsed.notification = .link(RouteSocket.record(object), removed: parsed.type == Int32(RTM_DELLINK))
    case Int32(RTM_NEWADDR), Int32(RTM_DELADDR):
        parsed.notification = RouteSocket.record(address: object).map { .address($0, removed: parsed.type == Int32(RTM_DELADDR)) }
    default:
        break
    }
}

/// A libnl-route socket subscribed to the kernel's link and address notifications
/// (`RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV6_IFADDR`). It sends no requests.
///
/// Not thread-safe; one thread reads it.
final class NotificationSocket {
    private let handle: OpaquePointer
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// Subscribes, and sets the receive buffer to `receiveBufferSize` bytes (`SO_RCVBUFFORCE`,
    /// else `SO_RCVBUF` up to `net.core.rmem_max`): notifications that do not fit are dropped by
    /// the kernel, which then fails the next read with `ENOBUFS`.
    init(receiveBufferSize: Int) throws(SystemFailure) {
        guard let handle = nl_socket_alloc() else { throw SystemFailure(errno: ENOMEM, library: "out of memory") }
        nl_socket_disable_seq_check(handle)
        var status = nl_connect(handle, NETLINK_ROUTE)
        for group in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR] where status == 0 {
            status = nl_socket_add_membership(handle, Int32(group.rawValue))
        }
        if status == 0 { status = nl_socket_set_nonblocking(handle) }
        guard status == 0 else {
            nl_socket_free(handle)
            throw RouteSocket.failure(status, answer: nil)
        }
        self.handle = handle
        let descriptor = nl_socket_get_fd(handle)
        var size = Int32(clamping: receiveBufferSize)
        if setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    deinit {
        nl_socket_free(handle)
    }

    /// Waits up to `milliseconds` for a notification; returns whether one is queued.
    func wait(milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: nl_socket_get_fd(handle), events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    /// Every notification queued now, in the kernel's order; empty when none is. Throws `ENOBUFS`
    /// when the kernel dropped notifications because the receive buffer was full (the ones queued
    /// after the drop are read by the next call).
    func read() throws(SystemFailure) -> [RouteNotification] {
        var notifications: [RouteNotification] = []
        let descriptor = nl_socket_get_fd(handle)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return notifications }
                throw SystemFailure(errno: errno)
            }
            guard count > 0 else { return notifications }
            buffer.withUnsafeMutableBytes { raw in
                var offset = 0
                let headerSize = MemoryLayout<nlmsghdr>.size
                while offset + headerSize <= count {
                    let header = raw.baseAddress!.advanced(by: offset).assumingMemoryBound(to: nlmsghdr.self)
                    let length = Int(header.pointee.nlmsg_len)
                    guard length >= headerSize, offset + length <= count else { break }
                    if let notification = Self.parse(header) { notifications.append(notification) }
                    offset += (length + 3) & ~3
                }
            }
        }
    }

    /// The link or address change in one message, parsed by libnl-route; `nil` for other messages.
    private static func parse(_ header: UnsafeMutablePointer<nlmsghdr>) -> RouteNotification? {
        let type = Int32(header.pointee.nlmsg_type)
        guard [RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR].map(Int32.init).contains(type),
              let message = nlmsg_convert(header) else { return nil }
        defer { nlmsg_free(message) }
        nlmsg_set_proto(message, NETLINK_ROUTE)
        let parsed = ParsedNotification(type: type)
        _ = withExtendedLifetime(parsed) {
            nl_msg_parse(message, recordParsedObject, Unmanaged.passUnretained(parsed).toOpaque())
        }
        return parsed.notification
    }
}

// MARK: - Files under /proc/sys

enum SysctlFiles {
    /// Reads the whole file at `path`.
    static func readFile(_ path: String) throws(SystemFailure) -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SystemFailure(errno: errno) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemFailure(errno: errno)
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` to the file at `path` in one `write`, as sysctl(8) does: the kernel parses
    /// a /proc/sys value from a single write.
    static func writeFile(_ path: String, _ text: String) throws(SystemFailure) {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SystemFailure(errno: errno) }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        while true {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemFailure(errno: errno)
            }
            guard count == bytes.count else { throw SystemFailure(errno: EIO, library: "short write (\(count) of \(bytes.count) bytes)") }
            return
        }
    }

    /// Whether `path` exists.
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The running kernel's release (`uname -r`), e.g. `6.1.0-56-amd64`.
    static func kernelRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "" }
        return withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
