import Foundation
import Metrics
import Synchronization

/// The list and watch metrics of the API source, by resource (`Service`, `EndpointSlice`).
struct APISourceMetrics: Sendable {
    /// The metrics recorded for each watch event, made once per resource and type: making them
    /// looks them up in the metrics factory, a cost on every event under churn.
    private final class EventMetrics: Sendable {
        let events: Mutex<[String: (count: Counter, last: Gauge)]> = Mutex([:])

        func record(_ resource: String, _ type: String) {
            let metrics = events.withLock { events in
                let key = resource + " " + type
                if let made = events[key] { return made }
                let dimensions = [("resource", resource)]
                let made = (count: Counter(label: "ipvs_agent_api_events_total", dimensions: dimensions + [("type", type)]),
                            last: Gauge(label: "ipvs_agent_api_last_event_timestamp_seconds", dimensions: dimensions))
                events[key] = made
                return made
            }
            metrics.count.increment()
            metrics.last.record(Date().timeIntervalSince1970)
        }
    }
    private let events = EventMetrics()

    /// Records one reflector's activity.
    func record(_ resource: APIResource, _ activity: ReflectorActivity) {
        let dimensions = [("resource", resource.kind)]
        switch activity {
        case .listed(let objects):
            Counter(label: "ipvs_agent_api_lists_total", dimensions: dimensions).increment()
            Gauge(label: "ipvs_agent_api_listed_objects", dimensions: dimensions).record(objects)
            Gauge(label: "ipvs_agent_api_last_list_timestamp_seconds", dimensions: dimensions).record(Date().timeIntervalSince1970)
        case .relist:
            Counter(label: "ipvs_agent_api_relists_total", dimensions: dimensions).increment()
        case .watchConnected:
            Gauge(label: "ipvs_agent_api_watch_connected", dimensions: dimensions).record(1)
        case .watchEnded:
            Gauge(label: "ipvs_agent_api_watch_connected", dimensions: dimensions).record(0)
        case .event(let type):
            events.record(resource.kind, type)
        case .malformed:
            Counter(label: "ipvs_agent_api_malformed_events_total", dimensions: dimensions).increment()
        case .failure:
            Counter(label: "ipvs_agent_api_request_failures_total", dimensions: dimensions).increment()
        }
    }
}
