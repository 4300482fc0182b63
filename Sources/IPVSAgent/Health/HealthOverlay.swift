import HealthCheck
import IPVS

/// What a health verdict does to a real server's configured weight in one virtual service.
public enum HealthAdjustment: Hashable, Sendable {
    /// Keep the server but send it no new connections (weight 0).
    case quiesce
    /// Delete the server from the service at once: unlike a removed endpoint it does not drain,
    /// so the kernel stops forwarding its existing connections too.
    case remove
    /// Serving, with the weight its check asked for instead of the configured one (exec checks
    /// with `health-exec-dynamic-weight: true`: exit status 2 to 255 asks for weight status - 2).
    case weight(Int32)
}

/// A seam for the health checker: adjustments of desired real servers, applied after mapping and
/// before the diff. An empty overlay leaves every configured weight as it is.
public struct HealthOverlay: Hashable, Sendable {
    /// Adjustments per backend: a virtual service and one of its real servers. Each virtual
    /// service's own checks decide its own weights; the same pod behind another virtual service
    /// (with no check, or a check that passes) is not adjusted there.
    public var adjustments: [BackendID: HealthAdjustment]
    /// Services below their health quorum, and what they serve instead (wins over `adjustments`).
    public var quorum: [ServiceKey: QuorumOverride]

    public init(adjustments: [BackendID: HealthAdjustment] = [:], quorum: [ServiceKey: QuorumOverride] = [:]) {
        self.adjustments = adjustments
        self.quorum = quorum
    }

    /// `state` with the adjustments applied.
    public func applied(to state: DesiredState) -> DesiredState {
        guard !adjustments.isEmpty || !quorum.isEmpty else { return state }
        var result = state
        for (key, desired) in state.services {
            if let adjusted = adjusted(desired, key: key) { result.services[key] = adjusted }
        }
        return result
    }

    /// `service` (desired under `key`) with its adjustments and its quorum override applied, or
    /// `nil` when none concerns it.
    ///
    /// This is the one rule that turns health into weights. A serving backend keeps its configured
    /// weight, or the dynamic weight its check asked for; a failed one is quiesced or removed, as
    /// its Service's failure action says. Below the quorum, policy `keep-all` sets the failed
    /// verdicts aside (those backends keep their configured weights) while serving backends keep
    /// the weight their check asked for; policy `fallback` serves from the fallback server alone.
    public func adjusted(_ service: DesiredService, key: ServiceKey) -> DesiredService? {
        let override = quorum[key]
        if case .fallback(let sorry, let others)? = override {
            var result = service
            result.realServers = [:]
            if others == .quiesce {
                for (id, server) in service.realServers where id != sorry.id {
                    var quiesced = server
                    quiesced.weight = 0
                    result.realServers[id] = quiesced
                }
            }
            result.realServers[sorry.id] = sorry
            // A fallback with health-on-failure: remove deletes the backends at once, as a verdict does.
            result.removedByHealth = Set(service.realServers.keys).subtracting(result.realServers.keys)
            return result
        }
        guard !adjustments.isEmpty else { return nil }
        let keepAll = override == .keepAll
        var result = service
        var changed = false
        for id in service.realServers.keys {
            guard let adjustment = adjustments[BackendID(service: key, server: id)] else { continue }
            switch adjustment {
            case .quiesce where !keepAll:
                result.realServers[id]?.weight = 0
            case .remove where !keepAll:
                result.realServers[id] = nil
                result.removedByHealth.insert(id)
            case .weight(let weight):
                result.realServers[id]?.weight = weight
            case .quiesce, .remove:
                continue
            }
            changed = true
        }
        return changed ? result : nil
    }

    /// The virtual services whose adjustments or quorum override differ between `self` and `other`.
    public func changedServices(comparedTo other: HealthOverlay) -> Set<ServiceKey> {
        var keys: Set<ServiceKey> = []
        for (id, adjustment) in adjustments where other.adjustments[id] != adjustment { keys.insert(id.service) }
        for id in other.adjustments.keys where adjustments[id] == nil { keys.insert(id.service) }
        for (key, override) in quorum where other.quorum[key] != override { keys.insert(key) }
        for key in other.quorum.keys where quorum[key] == nil { keys.insert(key) }
        return keys
    }

    /// Whether the overlay changes nothing.
    public var isEmpty: Bool { adjustments.isEmpty && quorum.isEmpty }
}
