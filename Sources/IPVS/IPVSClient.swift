#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Netlink

/// A virtual service with its real servers, as one entry of a table dump.
public struct ServiceTableEntry: Hashable, Sendable {
    public var service: VirtualService
    public var realServers: [RealServer]

    public init(service: VirtualService, realServers: [RealServer]) {
        self.service = service
        self.realServers = realServers
    }
}

/// The outcome of one operation of a batch.
public typealias IPVSOperationResult = Result<Void, IPVSError>

/// A connection to the kernel's IPVS over one generic netlink socket (through libnl).
///
/// Every call is synchronous and answered by the kernel before it returns. Not thread-safe:
/// use one client from one task at a time (open one per task when you need several).
///
/// ```swift
/// let ipvs = try IPVSClient()
/// let key = ServiceKey.address(.tcp, IPAddress("10.96.0.10")!, port: 53)
/// try ipvs.addService(VirtualService(key: key, scheduler: .roundRobin))
/// try ipvs.addRealServer(RealServer(address: IPAddress("10.244.1.5")!, port: 53), to: key)
/// ```
public final class IPVSClient {
    private let socket: NetlinkSocket
    private let family: UInt16

    /// Bytes packed into one `sendto` by `apply(_:)`.
    public var batchSendSize = 256 * 1024

    /// Opens a socket and resolves the IPVS generic netlink family.
    ///
    /// Throws `IPVSError` of kind `.ipvsUnavailable` when the kernel has no IPVS.
    public init() throws {
        do {
            socket = try NetlinkSocket()
        } catch let error as NetlinkError {
            throw IPVSError(kind: .other, operation: "open a generic netlink socket", errno: error.errno, detail: error.libraryMessage)
        }
        do {
            family = try socket.resolveGenericFamily(IPVSWire.familyName)
        } catch let error as NetlinkError {
            throw IPVSError(kind: error.errno == ENOENT ? .ipvsUnavailable : .other,
                            operation: "find the IPVS generic netlink family", errno: error.errno, detail: error.libraryMessage)
        }
        // Room for the acknowledgements of a whole batch send, and for large sends.
        socket.setBufferSizes(receive: 32 << 20, send: 4 << 20)
    }

    // MARK: - Services

    /// Every virtual service, without real servers.
    ///
    /// A list that fits one datagram is one snapshot. A larger one comes in several, and the kernel resumes
    /// each at an index it counts over the services of every network namespace (`ip_vs_genl_dump_services`;
    /// `/proc/net/ip_vs` resumes the same way), so a service added or deleted anywhere on the host between
    /// two datagrams makes the dump repeat services or miss some; `ipvsadm` prints what one dump gives.
    /// Here such a list is read whole (``wholeList(_:key:)``).
    public func services() throws -> [VirtualService] {
        try Self.wholeList(servicesDump, key: \.key)
    }

    /// How many dumps ``wholeList(_:key:)`` reads at most for a list that takes several datagrams.
    static let wholeListReads = 8

    /// A dumped list whose datagrams the kernel resumes by index: when it took more than one datagram, it is
    /// read again until a read without repeats lists exactly the entries seen so far, at most
    /// ``wholeListReads`` times; if no read does, the answer is every entry any read listed, each once, with
    /// the latest read's values.
    static func wholeList<Entry, Key: Hashable>(_ dump: () throws -> ([Entry], datagrams: Int), key: (Entry) -> Key) throws -> [Entry] {
        let (first, datagrams) = try dump()
        guard datagrams > 1 else { return first }
        var union: [Entry] = []
        var position: [Key: Int] = [:]
        /// Adds a read's entries to `union`; true when the read has no repeats and lists exactly `union`.
        func merge(_ entries: [Entry]) -> Bool {
            var listed = Set<Key>(minimumCapacity: entries.count)
            var whole = true
            for entry in entries {
                let key = key(entry)
                guard listed.insert(key).inserted else {
                    whole = false
                    continue
                }
                if let index = position[key] {
                    union[index] = entry
                } else {
                    position[key] = union.count
                    union.append(entry)
                    whole = false
                }
            }
            return whole && listed.count == union.count
        }
        _ = merge(first)
        for _ in 1..<wholeListReads {
            let read = try dump().0
            if merge(read) { return read }
        }
        return union
    }

    func servicesDump() throws -> ([VirtualService], datagrams: Int) {
        let (messages, datagrams) = try read("list services") {
            try socket.dumpInParts(operation: "list services") { IPVSWire.dumpServices(family: family, sequence: $0) }
        }
        return (try decode("list services") { try messages.map(IPVSWire.decodeService) }, datagrams)
    }

    /// One virtual service. Throws `.serviceNotFound` when it does not exist.
    public func service(_ key: ServiceKey) throws -> VirtualService {
        let what = "read service \(key)"
        let messages = try read(what) { try socket.request(operation: what) { IPVSWire.getService(key, family: family, sequence: $0) } }
        guard let message = messages.first else {
            throw IPVSError(kind: .serviceNotFound, operation: what, errno: ESRCH)
        }
        return try decode(what) { try IPVSWire.decodeService(message) }
    }

    public func addService(_ service: VirtualService) throws { try perform(.addService(service)) }
    public func updateService(_ service: VirtualService) throws { try perform(.updateService(service)) }
    public func deleteService(_ key: ServiceKey) throws { try perform(.deleteService(key)) }

    // MARK: - Real servers

    /// The real servers of one service. Throws `.serviceNotFound` when the service does not exist.
    ///
    /// A list of several datagrams is read whole (``wholeList(_:key:)``): the kernel resumes each at an index
    /// into the service's real servers, which changes when one is added or deleted meanwhile.
    public func realServers(of key: ServiceKey) throws -> [RealServer] {
        try Self.wholeList({ try realServersDump(of: key) }, key: \.id)
    }

    func realServersDump(of key: ServiceKey) throws -> ([RealServer], datagrams: Int) {
        let what = "list real servers of \(key)"
        let (messages, datagrams) = try read(what) {
            try socket.dumpInParts(operation: what) { IPVSWire.dumpRealServers(key, family: family, sequence: $0) }
        }
        if messages.isEmpty {
            // The kernel answers a dump for a missing service with an empty list; tell the two
            // apart (one extra request, only for empty answers).
            _ = try service(key)
        }
        return (try decode(what) { try messages.map { try IPVSWire.decodeRealServer($0, serviceFamily: key.family) } }, datagrams)
    }

    public func addRealServer(_ server: RealServer, to key: ServiceKey) throws { try perform(.addRealServer(server, service: key)) }
    public func updateRealServer(_ server: RealServer, in key: ServiceKey) throws { try perform(.updateRealServer(server, service: key)) }
    public func deleteRealServer(_ id: RealServerID, from key: ServiceKey) throws { try perform(.deleteRealServer(id, service: key)) }

    /// How many sockets `table()` reads a large table over at once (default: one per CPU, at most 4).
    public var tableSockets = Int(min(4, max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    /// Every service with its real servers: one dump of the services, then one dump of real servers
    /// per service, in the kernel's order.
    ///
    /// The kernel has no dump of every real server at once, so a large table costs one round trip
    /// per service. Tables of more than 512 services are read over up to `tableSockets` sockets at
    /// once (the extra ones opened for this call and closed after), so the kernel answers one
    /// socket's dump while this process decodes another's.
    public func table() throws -> [ServiceTableEntry] {
        let services = try services()
        var clients = [self]
        for _ in 1..<max(1, min(tableSockets, services.count / 512 + 1)) {
            guard let client = try? IPVSClient() else { break } // Fewer sockets: slower, same answer.
            clients.append(client)
        }
        guard clients.count > 1 else {
            return try services.map { ServiceTableEntry(service: $0, realServers: try realServers(of: $0.key)) }
        }
        var results = [Result<[RealServer], any Error>](repeating: .success([]), count: services.count)
        results.withUnsafeMutableBufferPointer { buffer in
            // Each worker uses only its own client and writes only its own slots.
            nonisolated(unsafe) let slots = buffer
            nonisolated(unsafe) let workers = clients
            DispatchQueue.concurrentPerform(iterations: workers.count) { worker in
                for index in stride(from: worker, to: services.count, by: workers.count) {
                    slots[index] = Result { try workers[worker].realServers(of: services[index].key) }
                }
            }
        }
        return try zip(services, results).map { ServiceTableEntry(service: $0, realServers: try $1.get()) }
    }

    // MARK: - Global state

    /// The IPVS version and connection table size.
    public func info() throws -> IPVSInfo {
        let messages = try read("read IPVS info") {
            try socket.request(operation: "read IPVS info") { IPVSWire.simple(.getInfo, family: family, flags: .acknowledge, sequence: $0) }
        }
        guard let message = messages.first else { throw IPVSError(kind: .malformedReply, operation: "read IPVS info") }
        return try decode("read IPVS info") { try IPVSWire.decodeInfo(message) }
    }

    /// The tcp, tcpfin and udp timeouts.
    public func timeouts() throws -> Timeouts {
        let messages = try read("read timeouts") {
            try socket.request(operation: "read timeouts") { IPVSWire.simple(.getConfig, family: family, flags: .acknowledge, sequence: $0) }
        }
        guard let message = messages.first else { throw IPVSError(kind: .malformedReply, operation: "read timeouts") }
        return try decode("read timeouts") { try IPVSWire.decodeTimeouts(message) }
    }

    /// Sets the timeouts; a zero field leaves that timeout unchanged.
    public func setTimeouts(_ timeouts: Timeouts) throws {
        let what = "set timeouts"
        do {
            _ = try socket.request(operation: what) { IPVSWire.setTimeouts(timeouts, family: family, sequence: $0) }
        } catch let error as NetlinkError {
            throw IPVSError(kind: IPVSError.classify(errno: error.errno, operation: nil), operation: what, errno: error.errno, detail: error.kernelMessage)
        } catch let error as NetlinkDecodingError {
            throw IPVSError(error, reading: what)
        }
    }

    /// Zeroes the counters of one service, or of every service when `key` is `nil`.
    public func zero(_ key: ServiceKey? = nil) throws { try perform(.zero(key)) }

    /// Deletes every service and real server.
    public func flush() throws { try perform(.flush) }

    /// The running connection synchronisation daemons (none, master, backup or both).
    public func syncDaemons() throws -> [SyncDaemon] {
        let messages = try read("read sync daemons") {
            try socket.dump(operation: "read sync daemons") { IPVSWire.simple(.getDaemon, family: family, flags: .dump, sequence: $0) }
        }
        return try decode("read sync daemons") { try messages.compactMap(IPVSWire.decodeDaemon) }
    }

    // MARK: - Batches

    /// Applies `operations` in order, packing many requests into each send and collecting one
    /// acknowledgement per request, and returns one result per operation. A failed operation does
    /// not stop the ones after it.
    public func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult] {
        var results = [IPVSOperationResult](repeating: .success(()), count: operations.count)
        var start = 0
        var buffer: [UInt8] = []
        buffer.reserveCapacity(batchSendSize + 4096)
        while start < operations.count {
            buffer.removeAll(keepingCapacity: true)
            let firstSequence = socket.nextSequence()
            var end = start
            var sequence = firstSequence
            while end < operations.count, buffer.count < batchSendSize {
                if end > start { sequence = socket.nextSequence() }
                IPVSWire.encode(operations[end], family: family, sequence: sequence, into: &buffer)
                end += 1
            }
            collectAcknowledgements(range: start..<end, firstSequence: firstSequence, buffer: buffer,
                                    operations: operations, results: &results)
            start = end
        }
        return results
    }

    private func collectAcknowledgements(range: Range<Int>, firstSequence: UInt32, buffer: [UInt8],
                                         operations: [IPVSOperation], results: inout [IPVSOperationResult]) {
        func failAll(_ kind: IPVSError.Kind, errno code: Int32, detail: String?, from index: Int) {
            for position in index..<range.upperBound {
                results[position] = .failure(IPVSError(kind: kind, operation: operations[position].description, errno: code, detail: detail))
            }
        }
        do {
            try socket.send(buffer)
        } catch let error as NetlinkError {
            failAll(.other, errno: error.errno, detail: error.description, from: range.lowerBound)
            return
        } catch {
            failAll(.other, errno: 0, detail: "\(error)", from: range.lowerBound)
            return
        }
        var pending = range.count
        var acknowledged = [Bool](repeating: false, count: range.count)
        while pending > 0 {
            let messages: [NetlinkMessage]
            do {
                messages = try socket.receive()
            } catch {
                // The kernel dropped acknowledgements (or the socket failed): the outcome of the
                // unacknowledged operations is unknown, and they are reported as failed.
                for offset in 0..<range.count where !acknowledged[offset] {
                    let index = range.lowerBound + offset
                    results[index] = .failure(IPVSError(kind: .other, operation: operations[index].description,
                                                        errno: (error as? NetlinkError)?.errno ?? 0,
                                                        detail: "no acknowledgement: \(error)"))
                }
                return
            }
            for message in messages where message.type == NetlinkConstants.messageError {
                let offset = Int(message.sequence &- firstSequence)
                guard offset >= 0, offset < range.count, !acknowledged[offset] else { continue }
                acknowledged[offset] = true
                pending -= 1
                let index = range.lowerBound + offset
                do {
                    let (code, text) = try message.acknowledgement()
                    if code != 0 {
                        results[index] = .failure(IPVSError(NetlinkError(errno: code, operation: "", kernelMessage: text), operation: operations[index]))
                    }
                } catch {
                    results[index] = .failure(IPVSError(kind: .malformedReply, operation: operations[index].description, detail: "\(error)"))
                }
            }
        }
    }

    // MARK: - Private

    private func perform(_ operation: IPVSOperation) throws {
        if case .failure(let error) = apply([operation])[0] { throw error }
    }

    private func read<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as NetlinkError {
            throw IPVSError(error, reading: what)
        } catch let error as NetlinkDecodingError {
            throw IPVSError(error, reading: what)
        }
    }

    private func decode<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as NetlinkDecodingError {
            throw IPVSError(error, reading: what)
        }
    }
}
