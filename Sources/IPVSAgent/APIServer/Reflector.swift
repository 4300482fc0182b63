import Foundation
import Logging

/// A kind of object the agent lists and watches.
struct APIResource: Hashable, Sendable {
    /// `Service`, `EndpointSlice`, `Node`.
    var kind: String
    var apiVersion: String
    /// The collection's path (`/api/v1/services`).
    var path: String
    /// `labelSelector` and `fieldSelector` of every list and watch (empty: none).
    var labelSelector = ""
    var fieldSelector = ""
}

/// What a reflector hands to its store.
enum ReflectorEvent: Sendable {
    /// One page of a list, as it comes (a list of 100,000 objects is never held whole); `first`
    /// starts a list (again, when one was cut short).
    case listPage([YAMLNode], first: Bool)
    /// The list whose pages came is complete: every object of the resource now was in it, and
    /// what was not is gone.
    case listEnded
    case added(YAMLNode)
    case modified(YAMLNode)
    case deleted(YAMLNode)
}

/// What a reflector did, for metrics and `/healthz`.
enum ReflectorActivity: Sendable {
    case listed(objects: Int)
    case watchConnected
    case watchEnded
    /// A watch event applied (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`).
    case event(String)
    case malformed
    /// The resource is listed again: its watch was too old (410 Gone), or the first list.
    case relist
    /// A failed request, retried after a back-off.
    case failure
}

/// Lists and watches one resource the way client-go's reflector does (`tools/cache/reflector.go`):
/// a list in pages (`limit`, `continue`; an expired `continue` token lists again from the start),
/// then a watch from the list's `resourceVersion` with bookmarks; a watch that ends is resumed
/// from the last version seen; `410 Gone` (the status of the request, or an `ERROR` event whose
/// `Status` has code 410) lists again and replaces; failed requests are retried after an
/// exponential back-off with jitter. A malformed event is logged and skipped. Nothing is ever
/// dropped from the store because the server cannot be reached: only a new list replaces it.
struct Reflector: Sendable {
    let client: APIClient
    let resource: APIResource
    let logger: Logger
    /// Receives the lists and events, in order.
    let sink: @Sendable (ReflectorEvent) async -> Void
    /// Told what happened, for metrics and health.
    let record: @Sendable (ReflectorActivity) -> Void
    /// Objects per list page.
    var pageSize = 500
    /// The watches' `timeoutSeconds` (client-go picks 5 to 10 minutes at random, to spread the
    /// reconnections of many clients).
    var watchTimeout: ClosedRange<Int> = 300...600
    var backoff = Backoff()

    /// Lists and watches until cancelled.
    func run() async {
        var backoff = backoff
        var version: String?
        // The version of the last list, while no watch has moved past it.
        var listedVersion: String?
        while !Task.isCancelled {
            if version == nil {
                record(.relist)
                do {
                    let listed = try await list()
                    await sink(.listEnded)
                    record(.listed(objects: listed.count))
                    version = listed.version
                    listedVersion = listed.version
                } catch {
                    if Task.isCancelled { return } // The request failed because the agent stops.
                    record(.failure)
                    let wait = backoff.next()
                    logger.warning("cannot list \(resource.kind)s; the last good state stays in use, retrying",
                                   metadata: ["error": "\(error)", "retry_in": "\(wait)"])
                    try? await Task.sleep(for: wait)
                    continue
                }
            }
            let started = ContinuousClock.now
            let end = await watch(from: version!)
            if Task.isCancelled { return } // The watch ended because the agent stops.
            switch end {
            case .gone:
                if version == listedVersion {
                    // Too old already at the version just listed: list again after a back-off, as
                    // client-go's reflector does, not in a loop.
                    let wait = backoff.next()
                    logger.warning("the \(resource.kind) watch is too old (410 Gone) at the version just listed; listing again",
                                   metadata: ["resource_version": "\(version ?? "")", "retry_in": "\(wait)"])
                    try? await Task.sleep(for: wait)
                } else {
                    logger.notice("the \(resource.kind) watch is too old (410 Gone); listing again")
                }
                version = nil
            case .ended(let last, let events):
                if last != version { listedVersion = nil }
                version = last
                // A watch that ends at once, empty, is retried with a back-off, not in a loop.
                if events == 0, ContinuousClock.now - started < .seconds(1) {
                    try? await Task.sleep(for: backoff.next())
                } else {
                    backoff.reset()
                }
            case .failed(let last, let error):
                if last != version { listedVersion = nil }
                version = last
                record(.failure)
                let wait = backoff.next()
                logger.warning("the \(resource.kind) watch failed; the last good state stays in use, reconnecting",
                               metadata: ["error": "\(error)", "retry_in": "\(wait)", "resource_version": "\(last)"])
                try? await Task.sleep(for: wait)
            }
        }
    }

    // MARK: - List

    /// Lists every object, handing each page to the sink as it comes; returns how many objects the
    /// list held and its `resourceVersion`. The next page is requested and read while the sink takes
    /// the current one, so that the server's work, TLS and reading overlap the decoding: one page
    /// ahead at most (client-go's `ListPager.EachListItem` reads up to 10 ahead; its reflector's
    /// `List` reads one page after the other).
    func list() async throws -> (count: Int, version: String) {
        var count = 0
        var first = true
        var restarted = false
        var read = try await page(after: nil, retryable: false)
        while true {
            guard case .page(let current) = read else {
                // The continue token expired (the version it lists was compacted away): list
                // again from the start, once, at once. client-go's pager falls back to one list
                // without pages instead; pages keep a large cluster's answer small.
                logger.notice("the \(resource.kind) list's continue token expired; listing again from the start")
                count = 0
                first = true
                restarted = true
                read = try await page(after: nil, retryable: false)
                continue
            }
            let token = current.continuation, retryable = !restarted
            async let following = token == nil ? nil : page(after: token, retryable: retryable)
            await sink(.listPage(current.items, first: first))
            count += current.items.count
            first = false
            guard let next = try await following else { return (count, current.version) }
            read = next
        }
    }

    /// One page of a list, read.
    struct ListPage: Sendable {
        var items: [YAMLNode]
        var version: String
        /// The next page's `continue` token (`nil`: this was the last page).
        var continuation: String?
    }

    enum PageRead: Sendable {
        case page(ListPage)
        /// `410 Gone` for a `continue` token that may be retried: the list starts again.
        case expired
    }

    /// The page after `token` (the first with none); `.expired` when the token expired (`410 Gone`)
    /// and `retryable` (the list may start again).
    private func page(after token: String?, retryable: Bool) async throws -> PageRead {
        var query = [("limit", "\(pageSize)")] + selectors
        if let token { query.append(("continue", token)) }
        var response = try await client.get(resource.path + Self.query(query))
        let body = try await response.body()
        if response.status == 410, token != nil, retryable { return .expired }
        guard response.status == 200 else { throw Self.statusError(response.status, body, doing: "list \(resource.kind)s", server: client.server) }
        let root = try Self.parse(body, what: "\(resource.kind) list")
        let metadata = NodeReader.value(of: "metadata", in: root)
        guard let version = metadata.flatMap({ NodeReader.text(of: "resourceVersion", in: $0) }), !version.isEmpty else {
            throw APIServerError("the \(resource.kind) list from \(client.server) has no metadata.resourceVersion")
        }
        var items: [YAMLNode] = []
        if let list = NodeReader.value(of: "items", in: root), list.kind == .sequence {
            items.reserveCapacity(list.count)
            for position in 0..<list.count { items.append(list.element(position)) }
        }
        let next = metadata.flatMap { NodeReader.text(of: "continue", in: $0) }
        return .page(ListPage(items: items, version: version, continuation: next?.isEmpty == false ? next : nil))
    }

    // MARK: - Watch

    enum WatchEnd {
        /// The server ended the watch; resume from `version`.
        case ended(version: String, events: Int)
        /// `410 Gone`: list again.
        case gone
        /// The request or the connection failed; resume from `version` after a back-off.
        case failed(version: String, error: any Error)
    }

    /// Watches from `version` until the server ends the watch or the connection fails.
    func watch(from version: String) async -> WatchEnd {
        var last = version
        var events = 0
        var query = [("watch", "true"), ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                     ("timeoutSeconds", "\(Int.random(in: watchTimeout))")]
        query += selectors
        var response: APIResponse
        do {
            response = try await client.get(resource.path + Self.query(query))
        } catch {
            return .failed(version: last, error: error)
        }
        defer { response.close() }
        if response.status == 410 { return .gone }
        guard response.status == 200 else {
            let body = (try? await response.body()) ?? []
            return .failed(version: last, error: Self.statusError(response.status, body, doing: "watch \(resource.kind)s", server: client.server))
        }
        record(.watchConnected)
        defer { record(.watchEnded) }
        var pending: [UInt8] = []
        do {
            while let line = try await response.nextLine(&pending) {
                if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) { continue }
                guard let root = try? Self.parse(line, what: "watch event"), let type = NodeReader.text(of: "type", in: root),
                      let object = NodeReader.value(of: "object", in: root), object.kind == .mapping else {
                    malformed(line, why: "not a JSON object with type and object")
                    continue
                }
                let objectVersion = NodeReader.value(of: "metadata", in: object).flatMap { NodeReader.text(of: "resourceVersion", in: $0) }
                switch type {
                case "ADDED", "MODIFIED", "DELETED":
                    guard let objectVersion, !objectVersion.isEmpty else {
                        malformed(line, why: "the object has no metadata.resourceVersion")
                        continue
                    }
                    await sink(type == "ADDED" ? .added(object) : type == "MODIFIED" ? .modified(object) : .deleted(object))
                    last = objectVersion
                case "BOOKMARK":
                    guard let objectVersion, !objectVersion.isEmpty else {
                        malformed(line, why: "the bookmark has no metadata.resourceVersion")
                        continue
                    }
                    last = objectVersion
                case "ERROR":
                    let code = NodeReader.text(of: "code", in: object).flatMap { Int($0) }
                    if code == 410 { return .gone }
                    let message = NodeReader.text(of: "message", in: object) ?? "no message"
                    return .failed(version: last, error: APIServerError(
                        "the \(resource.kind) watch at \(client.server) ended with an error (code \(code.map(String.init) ?? "?")): \(message)",
                        status: code))
                default:
                    malformed(line, why: "unknown event type '\(type)'")
                    continue
                }
                events += 1
                record(.event(type))
            }
        } catch {
            return .failed(version: last, error: error)
        }
        return .ended(version: last, events: events)
    }

    private func malformed(_ line: [UInt8], why: String) {
        record(.malformed)
        logger.error("skipped a malformed \(resource.kind) watch event: \(why)",
                     metadata: ["event": "\(String(decoding: line.prefix(200), as: UTF8.self))"])
    }

    // MARK: - Wire helpers

    private var selectors: [(String, String)] {
        (resource.labelSelector.isEmpty ? [] : [("labelSelector", resource.labelSelector)])
            + (resource.fieldSelector.isEmpty ? [] : [("fieldSelector", resource.fieldSelector)])
    }

    /// `?name=value&…`, each value percent-encoded.
    static func query(_ items: [(String, String)]) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+#")
        return "?" + items.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
    }

    /// The fields left out of the trees: no decoder reads them.
    private static let unread = JSONScanner.Skip(ManifestDecoder.unreadFields)

    /// The JSON `bytes` as the tree the manifests' decoder reads, without the fields it never reads.
    static func parse(_ bytes: [UInt8], what: String) throws -> YAMLNode {
        let tree: YAMLTree
        do {
            tree = try YAMLTree.parseJSON(bytes, skip: unread)
        } catch {
            throw APIServerError("the \(what) is not valid JSON: \(error.summary)")
        }
        guard let root = tree.roots.first, root.kind == .mapping else { throw APIServerError("the \(what) is not a JSON object") }
        return root
    }

    /// The error of an answer with `status`, with the message of the `Status` object it carries.
    static func statusError(_ status: Int, _ body: [UInt8], doing: String, server: String) -> APIServerError {
        let message = (try? parse(body, what: "Status")).flatMap { NodeReader.text(of: "message", in: $0) } ?? "no message"
        let advice = switch status {
        case 401: " (the credential was refused: check the token or client certificate)"
        case 403: " (the agent's account may not do this: see the ClusterRole in Examples/daemonset.yaml)"
        default: ""
        }
        return APIServerError("cannot \(doing) at \(server): HTTP \(status): \(message)\(advice)", status: status)
    }
}

/// client-go's reconnection back-off: from 800 ms doubling to 30 s, each wait stretched by a random
/// part of itself (jitter 1.0) so that the agents of every node do not reconnect at once.
struct Backoff: Sendable {
    var initial: Duration = .milliseconds(800)
    var maximum: Duration = .seconds(30)
    private var current: Duration?

    init(initial: Duration = .milliseconds(800), maximum: Duration = .seconds(30)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The next wait (and doubles the one after).
    mutating func next() -> Duration {
        let base = current ?? initial
        current = min(base * 2, maximum)
        return base * Double.random(in: 1..<2)
    }

    mutating func reset() { current = nil }
}
