import Foundation

/// The state of the API server source, per resource, for `/healthz`: when it was last listed, and
/// whether its watch is connected and since when (or since when it is not). Told what the
/// reflectors do, as `APISourceMetrics` is.
final class APISourceStatus: @unchecked Sendable {
    struct Resource {
        var lastList: Date?
        var watchConnected = false
        /// When the watch last connected or ended (`nil`: never connected).
        var since: Date?
        var lastEvent: Date?
    }

    private let lock = NSLock()
    private var resources: [String: Resource] = [:]

    /// Lists `kinds` in the report from now on, even before anything happened to them.
    func follow(_ kinds: [String]) {
        lock.withLock { for kind in kinds where resources[kind] == nil { resources[kind] = Resource() } }
    }

    /// Records one reflector's activity.
    func record(_ resource: APIResource, _ activity: ReflectorActivity, at now: Date = Date()) {
        lock.withLock {
            var state = resources[resource.kind] ?? Resource()
            switch activity {
            case .listed: state.lastList = now
            case .watchConnected: (state.watchConnected, state.since) = (true, now)
            case .watchEnded: (state.watchConnected, state.since) = (false, now)
            case .event: state.lastEvent = now
            case .relist, .malformed, .failure: break
            }
            resources[resource.kind] = state
        }
    }

    /// The `source` member of `/healthz`'s body: `{"kind": "apiserver", "resources": {"Service":
    /// {"lastList": …, "watchConnected": true, "since": …, "lastEvent": …}, …}}`, times in RFC 3339
    /// (`null` when it never happened).
    func json() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        func time(_ date: Date?) -> String { date.map { "\"\(formatter.string(from: $0))\"" } ?? "null" }
        let entries = lock.withLock { resources.sorted { $0.key < $1.key } }.map { kind, state in
            "\"\(kind)\": {\"lastList\": \(time(state.lastList)),\"watchConnected\": \(state.watchConnected),"
                + "\"since\": \(time(state.since)),\"lastEvent\": \(time(state.lastEvent))}"
        }
        return "{\"kind\": \"apiserver\",\"resources\": {\(entries.joined(separator: ","))}}"
    }
}
