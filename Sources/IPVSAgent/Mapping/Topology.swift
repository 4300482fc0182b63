/// Which endpoints of a Service port this node uses under `Cluster` traffic policy, from the
/// EndpointSlices' hints, as kube-proxy decides it (`topologyModeFromHints` in
/// `pkg/proxy/topology.go`): the endpoints hinted for this node when every ready endpoint has
/// node hints (`hints.forNodes`, `trafficDistribution: PreferSameNode`) and one is for this node;
/// else those hinted for this node's zone when every ready endpoint has zone hints
/// (`hints.forZones`, written for `trafficDistribution: PreferClose` or `PreferSameZone` and the
/// `service.kubernetes.io/topology-mode: Auto` annotation) and one is for this zone; else all.
///
/// The Service's annotation and `trafficDistribution` are not read here: the EndpointSlice
/// controller reads them and writes hints only when they ask for it, and kube-proxy reads the hints
/// alone.
enum Topology: Equatable {
    /// No topology: every endpoint.
    case none
    /// The endpoints hinted for this node (`PreferSameNode`).
    case sameNode(String)
    /// The endpoints hinted for this zone (`PreferSameZone`).
    case sameZone(String)

    /// The mode the hints of `endpoints` give a node named `nodeName` in `zone` (`nil`: the Node has
    /// no `topology.kubernetes.io/zone` label). Only ready endpoints count, as in kube-proxy.
    init(_ endpoints: [Endpoint], nodeName: String?, zone: String?) {
        var hasReady = false
        var allNodeHints = true, hintedForNode = false
        var allZoneHints = true, hintedForZone = false
        for endpoint in endpoints where endpoint.ready {
            hasReady = true
            if endpoint.nodeHints.isEmpty {
                allNodeHints = false
            } else if let nodeName, endpoint.nodeHints.contains(nodeName) {
                hintedForNode = true
            }
            if endpoint.zoneHints.isEmpty {
                allZoneHints = false
            } else if let zone, endpoint.zoneHints.contains(zone) {
                hintedForZone = true
            }
        }
        if hasReady, allNodeHints, hintedForNode, let nodeName {
            self = .sameNode(nodeName)
        } else if hasReady, allZoneHints, hintedForZone, let zone {
            self = .sameZone(zone)
        } else {
            self = .none
        }
    }

    /// Whether this node uses `endpoint` in this mode.
    func admits(_ endpoint: Endpoint) -> Bool {
        switch self {
        case .none: true
        case .sameNode(let node): endpoint.nodeHints.contains(node)
        case .sameZone(let zone): endpoint.zoneHints.contains(zone)
        }
    }
}
