import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A Kubernetes API server for tests, over TLS with a test CA, speaking the wire format of the
/// real one for list and watch: JSON lists with `metadata.resourceVersion` and `continue` (pages of
/// `limit`), watch streams of `{"type": ..., "object": ...}` lines (chunked), `BOOKMARK` events,
/// `410 Gone` as a status or as an `ERROR` event carrying a `Status`, expired `continue` tokens,
/// bearer-token or client-certificate authentication, `labelSelector` (`!key`, `key=value`) and
/// `fieldSelector` (`metadata.name=`). Objects are stored as given (shaped like
/// `kubectl get -o json`) with `metadata.resourceVersion` set on each write.
///
/// Tests change objects (`put`, `delete`) and disturb the server: `dropWatches()`, `compact()`,
/// `sendRaw(_:)`, `stop()`.
public final class TestAPIServer: @unchecked Sendable {
    public enum Authentication: Sendable {
        /// A bearer token from `tokens` (changeable while running: token rotation).
        case token
        /// A client certificate signed by the test CA.
        case clientCertificate
    }

    /// Collections the server knows, with the kind of their lists.
    public static let services = "/api/v1/services"
    public static let endpointSlices = "/apis/discovery.k8s.io/v1/endpointslices"
    public static let nodes = "/api/v1/nodes"
    static let listKinds = [services: ("ServiceList", "v1"), endpointSlices: ("EndpointSliceList", "discovery.k8s.io/v1"),
                            nodes: ("NodeList", "v1")]

    private let lock = NSLock()
    private let certificates: TestCertificates
    private let authentication: Authentication
    private var objects: [String: [String: Stored]] = [:]
    private var history: [(version: Int, path: String, type: String, object: Stored)] = []
    private var version = 1000
    /// Versions at or below are gone (a watch from them gets 410, as after etcd's compaction).
    private var compacted = 0
    private var watches: [ObjectIdentifier: Watch] = [:]
    private var channel: (any Channel)?
    private var requestLog: [String] = []
    private var acceptedTokens: Set<String> = []
    private var tokenFailures = 0
    private var expireContinue = false
    /// The last list of each collection and selectors, at the version it was made: the pages of one
    /// list (20 of 500 at 10,000 objects) sort and filter the objects once.
    private var lists: [String: (version: Int, texts: [String])] = [:]

    /// Whether `410 Gone` for an old watch version is sent as an `ERROR` event on a 200 answer
    /// (as the API server does for a watch served from its cache) rather than as the status.
    public var goneAsErrorEvent: Bool {
        get { lock.withLock { _goneAsErrorEvent } }
        set { lock.withLock { _goneAsErrorEvent = newValue } }
    }
    private var _goneAsErrorEvent = false

    /// An object's JSON text with the metadata the selectors read, parsed once when it is written
    /// (a list at 10,000 objects filters every object for every page).
    struct Stored {
        let text: String
        let name: String
        let namespace: String
        let labels: [String: String]

        init(_ object: [String: Any]) {
            self.init(text: TestAPIServer.text(object), metadata: object["metadata"] as? [String: Any] ?? [:])
        }

        init(text: String, metadata: [String: Any]) {
            self.text = text
            name = metadata["name"] as? String ?? ""
            namespace = metadata["namespace"] as? String ?? ""
            labels = metadata["labels"] as? [String: String] ?? [:]
        }
    }

    struct Watch {
        let channel: any Channel
        let path: String
        let labelSelector: String
        let fieldSelector: String
    }

    public init(certificates: TestCertificates, authentication: Authentication = .token, tokens: Set<String> = ["token-1"]) {
        self.certificates = certificates
        self.authentication = authentication
        self.acceptedTokens = tokens
    }

    // MARK: - Running

    /// Starts serving on 127.0.0.1 (`port` 0: any free port) and returns the port.
    @discardableResult
    public func start(port: Int = 0) throws -> Int {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(certificates.serverCertificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: certificates.serverKey, format: .pem)))
        if authentication == .clientCertificate {
            tls.certificateVerification = .noHostnameVerification
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(certificates.authority))
        }
        let context = try NIOSSLContext(configuration: tls)
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: context))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(RequestHandler(server: self))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: "127.0.0.1", port: port).wait()
        lock.withLock { self.channel = channel }
        return channel.localAddress?.port ?? 0
    }

    /// Stops listening and closes every connection: the server is unreachable.
    public func stop() {
        let (listener, open) = lock.withLock { () -> ((any Channel)?, [Watch]) in
            defer { channel = nil; watches = [:] }
            return (channel, Array(watches.values))
        }
        try? listener?.close().wait()
        for watch in open { try? watch.channel.close().wait() }
    }

    /// Closes every open watch (a disconnect, or the server ending watches at their timeout).
    public func dropWatches() {
        let open = lock.withLock { () -> [Watch] in
            defer { watches = [:] }
            return Array(watches.values)
        }
        for watch in open { try? watch.channel.close().wait() }
    }

    /// Closes every open watch and refuses new ones (503) while `changes` runs, so that a test's
    /// changes (and a `compact()`) all happen while the client is disconnected, whatever the timing.
    public func whileWatchesAreDown(_ changes: () -> Void) {
        lock.withLock { refusingWatches = true }
        dropWatches()
        changes()
        lock.withLock { refusingWatches = false }
    }
    private var refusingWatches = false

    /// Whether every watch is answered `410 Gone`, even from the version just listed.
    public var watchesAreGone: Bool {
        get { lock.withLock { _watchesAreGone } }
        set { lock.withLock { _watchesAreGone = newValue } }
    }
    private var _watchesAreGone = false

    /// A kubeconfig that reaches a test API server on `port` (TLS with the CA `authority`) with the
    /// bearer token `token`, its cluster and context named `name`.
    public static func kubeconfig(port: Int, authority: [UInt8], token: String, name: String) -> String {
        """
        apiVersion: v1
        kind: Config
        current-context: \(name)
        clusters:
        - name: \(name)
          cluster:
            server: https://127.0.0.1:\(port)
            certificate-authority-data: \(Data(authority).base64EncodedString())
        contexts:
        - name: \(name)
          context: {cluster: \(name), user: agent}
        users:
        - name: agent
          user: {token: \(token)}

        """
    }

    /// The number of watches open now.
    public var openWatches: Int { lock.withLock { watches.count } }

    /// Every request's target (path and query), in order.
    public var requests: [String] { lock.withLock { requestLog } }

    /// The bearer tokens accepted from now on.
    public func acceptTokens(_ tokens: Set<String>) { lock.withLock { acceptedTokens = tokens } }

    /// Requests refused for their credential so far.
    public var refusedCredentials: Int { lock.withLock { tokenFailures } }

    // MARK: - Objects

    /// Creates or replaces the object `json` (its `metadata.namespace`/`name`) in `path`, sets its
    /// `metadata.resourceVersion` to a new version and sends `ADDED` or `MODIFIED` to watches.
    @discardableResult
    public func put(_ path: String, _ json: String) -> Int {
        // One line without a version (what `APIObjects` makes): the version is written into the
        // text and only the metadata parsed, since serializing whole objects is slow enough to take
        // minutes for the 20,000 objects of `make bench` in the emulator. Else the object is rewritten.
        let bytes = Array(json.utf8)
        if !bytes.contains(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }),
           let range = Self.topLevelObject("metadata", in: bytes),
           let metadata = try? JSONSerialization.jsonObject(with: Data(bytes[range])) as? [String: Any],
           metadata["resourceVersion"] == nil {
            let key = "\(metadata["namespace"] as? String ?? "")/\(metadata["name"] as? String ?? "")"
            let opening = range.lowerBound + 1
            return lock.withLock {
                version += 1
                let text = String(decoding: bytes[..<opening], as: UTF8.self) + #""resourceVersion":"\#(version)""#
                    + (metadata.isEmpty ? "" : ",") + String(decoding: bytes[opening...], as: UTF8.self)
                let stored = Stored(text: text, metadata: metadata)
                let type = objects[path]?[key] == nil ? "ADDED" : "MODIFIED"
                objects[path, default: [:]][key] = stored
                record(path: path, type: type, object: stored)
                return version
            }
        }
        var object = try! JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        var metadata = object["metadata"] as? [String: Any] ?? [:]
        let key = "\(metadata["namespace"] as? String ?? "")/\(metadata["name"] as? String ?? "")"
        return lock.withLock {
            version += 1
            metadata["resourceVersion"] = "\(version)"
            object["metadata"] = metadata
            let stored = Stored(object)
            let type = objects[path]?[key] == nil ? "ADDED" : "MODIFIED"
            objects[path, default: [:]][key] = stored
            record(path: path, type: type, object: stored)
            return version
        }
    }

    /// Deletes an object and sends `DELETED` (the object with a new version) to watches.
    public func delete(_ path: String, namespace: String = "", name: String) {
        lock.withLock {
            guard let stored = objects[path]?.removeValue(forKey: "\(namespace)/\(name)") else { return }
            version += 1
            var object = try! JSONSerialization.jsonObject(with: Data(stored.text.utf8)) as! [String: Any]
            var metadata = object["metadata"] as! [String: Any]
            metadata["resourceVersion"] = "\(version)"
            object["metadata"] = metadata
            record(path: path, type: "DELETED", object: Stored(object))
        }
    }

    /// Forgets the history: watches from a version before now get 410 Gone, and `continue` tokens
    /// of older lists expire. The version moves on by one, so that a list made after the compaction
    /// can be watched from (a real server's list after a compaction is not too old either).
    public func compact() { lock.withLock { version += 1; compacted = version; history = [] } }

    /// Makes the next `continue` token presented expired (410), as after a compaction in the
    /// middle of a paginated list.
    public func expireNextContinue() { lock.withLock { expireContinue = true } }

    /// Sends `line` (and a newline) as it is to every watch of `path`.
    public func sendRaw(_ line: String, to path: String) {
        let open = lock.withLock { watches.values.filter { $0.path == path } }
        for watch in open { Self.send(line, on: watch.channel) }
    }

    /// Sends a `BOOKMARK` at the current version to every watch of `path`.
    public func bookmark(_ path: String) {
        let current = lock.withLock { version }
        let kind = Self.listKinds[path]!.0.replacingOccurrences(of: "List", with: "")
        sendRaw(#"{"type":"BOOKMARK","object":{"kind":"\#(kind)","apiVersion":"\#(Self.listKinds[path]!.1)","metadata":{"resourceVersion":"\#(current)","annotations":{"k8s.io/initial-events-end":"true"}}}}"#, to: path)
    }

    /// The current version.
    public var resourceVersion: Int { lock.withLock { version } }

    private func record(path: String, type: String, object: Stored) {
        history.append((version, path, type, object))
        for watch in watches.values where watch.path == path && Self.matches(object, watch.labelSelector, watch.fieldSelector) {
            Self.send(#"{"type":"\#(type)","object":\#(object.text)}"#, on: watch.channel)
        }
    }

    // MARK: - Requests

    fileprivate func handle(_ head: HTTPRequestHead, channel: any Channel) {
        let components = URLComponents(string: "http://x" + head.uri)
        let path = components?.path ?? ""
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        lock.withLock { requestLog.append(head.uri) }
        if authentication == .token {
            let header = head.headers.first(name: "Authorization") ?? ""
            let accepted = lock.withLock { acceptedTokens.contains(where: { header == "Bearer \($0)" }) }
            guard accepted else {
                lock.withLock { tokenFailures += 1 }
                return respond(channel, status: .unauthorized, body: Self.status(401, reason: "Unauthorized", message: "Unauthorized"))
            }
        }
        guard let (listKind, apiVersion) = Self.listKinds[path] else {
            return respond(channel, status: .notFound, body: Self.status(404, reason: "NotFound", message: "the server could not find the requested resource"))
        }
        let labels = query["labelSelector"] ?? "", fields = query["fieldSelector"] ?? ""
        if query["watch"] == "true" || query["watch"] == "1" {
            let from = Int(query["resourceVersion"] ?? "") ?? 0
            let tooOld = Self.status(410, reason: "Expired", message: "too old resource version: \(from)")
            var response = HTTPResponseHead(version: .http1_1, status: .ok)
            response.headers.add(name: "Content-Type", value: "application/json")
            response.headers.add(name: "Transfer-Encoding", value: "chunked")
            // Under the lock, so that no event of a write is sent before the head and the backlog.
            let (refused, down) = lock.withLock { () -> (Bool, Bool) in
                if refusingWatches { return (false, true) }
                if from < compacted || _watchesAreGone {
                    if !_goneAsErrorEvent { return (true, false) }
                    channel.write(HTTPServerResponsePart.head(response), promise: nil)
                    Self.send(#"{"type":"ERROR","object":\#(tooOld)}"#, on: channel)
                    channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
                    return (false, false)
                }
                watches[ObjectIdentifier(channel)] = Watch(channel: channel, path: path, labelSelector: labels, fieldSelector: fields)
                channel.writeAndFlush(HTTPServerResponsePart.head(response), promise: nil)
                for event in history where event.version > from && event.path == path && Self.matches(event.object, labels, fields) {
                    Self.send(#"{"type":"\#(event.type)","object":\#(event.object.text)}"#, on: channel)
                }
                return (false, false)
            }
            if down {
                return respond(channel, status: .serviceUnavailable, body: Self.status(503, reason: "ServiceUnavailable", message: "watches are down"))
            }
            if refused { return respond(channel, status: .gone, body: tooOld) }
            channel.closeFuture.whenComplete { [self] _ in
                _ = lock.withLock { watches.removeValue(forKey: ObjectIdentifier(channel)) }
            }
            return
        }
        // A list, in pages: the continue token is "version/offset".
        let limit = Int(query["limit"] ?? "") ?? Int.max
        var offset = 0
        var listVersion = lock.withLock { version }
        if let token = query["continue"], !token.isEmpty {
            let parts = token.split(separator: "/").compactMap { Int($0) }
            let expired = lock.withLock { () -> Bool in
                defer { expireContinue = false }
                return expireContinue || parts.count != 2 || parts[0] < compacted
            }
            guard !expired else {
                return respond(channel, status: .gone, body: Self.status(410, reason: "Expired",
                    message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))
            }
            listVersion = parts[0]
            offset = parts[1]
        }
        let all = lock.withLock { () -> [String] in
            let query = "\(path)?\(labels)&\(fields)"
            if let cached = lists[query], cached.version == version { return cached.texts }
            let texts = (objects[path] ?? [:]).sorted { $0.key < $1.key }.map(\.value).filter { Self.matches($0, labels, fields) }.map(\.text)
            lists[query] = (version, texts)
            return texts
        }
        let page = Array(all.dropFirst(offset).prefix(limit))
        let next = offset + page.count < all.count ? "\(listVersion)/\(offset + page.count)" : ""
        let continueField = next.isEmpty ? "" : #","continue":"\#(next)""#
        let body = #"{"kind":"\#(listKind)","apiVersion":"\#(apiVersion)","metadata":{"resourceVersion":"\#(listVersion)"\#(continueField)},"items":[\#(page.joined(separator: ","))]}"#
        respond(channel, status: .ok, body: body)
    }

    private func respond(_ channel: any Channel, status: HTTPResponseStatus, body: String) {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
    }

    private static func send(_ line: String, on channel: any Channel) {
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: line + "\n"))), promise: nil)
    }

    // MARK: - Wire helpers

    /// A `v1 Status` failure.
    public static func status(_ code: Int, reason: String, message: String) -> String {
        #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"\#(message)","reason":"\#(reason)","code":\#(code)}"#
    }

    /// The bytes of the object value of `key` in the top-level object `json` (from `{` to `}`), found
    /// by following strings and nesting without parsing; `nil` when it has none.
    static func topLevelObject(_ key: String, in json: [UInt8]) -> Range<Int>? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        let wanted = Array(key.utf8)
        var depth = 0, index = 0, stringStart = 0, start: Int?
        var lastString: Range<Int>?, currentKey: Range<Int>?
        while index < json.count {
            let byte = json[index]
            if byte == quote {
                stringStart = index + 1
                index += 1
                while index < json.count, json[index] != quote { index += json[index] == backslash ? 2 : 1 }
                lastString = stringStart..<min(index, json.count)
                index += 1
                continue
            }
            switch byte {
            case UInt8(ascii: ":"):
                if depth == 1 { currentKey = lastString }
            case UInt8(ascii: ","):
                if depth == 1 { currentKey = nil }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 1, byte == UInt8(ascii: "{"), let currentKey, json[currentKey].elementsEqual(wanted) { start = index }
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 1, let start { return start..<(index + 1) }
            default:
                break
            }
            index += 1
        }
        return nil
    }

    static func text(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Whether the object matches the selectors (`!key`, `key`, `key=value`, `key!=value`;
    /// `metadata.name=` and `metadata.namespace=`).
    static func matches(_ object: Stored, _ labelSelector: String, _ fieldSelector: String) -> Bool {
        let labels = object.labels
        for term in labelSelector.split(separator: ",").map(String.init) {
            if term.hasPrefix("!") {
                if labels[String(term.dropFirst())] != nil { return false }
            } else if let range = term.range(of: "!=") {
                if labels[String(term[..<range.lowerBound])] == String(term[range.upperBound...]) { return false }
            } else if let range = term.range(of: "=") {
                if labels[String(term[..<range.lowerBound])] != String(term[range.upperBound...]) { return false }
            } else if labels[term] == nil {
                return false
            }
        }
        for term in fieldSelector.split(separator: ",") {
            let parts = term.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            let value: String? = switch parts[0] {
            case "metadata.name": object.name
            case "metadata.namespace": object.namespace
            default: nil
            }
            if value != parts[1] { return false }
        }
        return true
    }
}

/// Passes each whole request to the server.
private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    let server: TestAPIServer
    private var head: HTTPRequestHead?

    init(server: TestAPIServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let value): head = value
        case .body: break
        case .end:
            if let head { server.handle(head, channel: context.channel) }
        }
    }
}
