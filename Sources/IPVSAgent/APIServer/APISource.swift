import Foundation
import IPVS
import Logging

/// The desired-state source that follows the API server: reflectors of Services and EndpointSlices
/// (with kube-proxy's label selector) keep a store of the objects, decoded by the same decoder as
/// the manifests, and `snapshot()` hands them out as a `SourceSnapshot` that says which Services
/// changed since the previous one, so that only those are mapped again. A third reflector follows
/// this node's Node object (`fieldSelector=metadata.name=`), for its zone and whether it is
/// eligible (`/healthz`): a change of the zone is a change to apply, any other (the kubelet's
/// status heartbeats, a taint) is not.
///
/// An object the decoder refuses keeps its last good version (and with none, its Service's kernel
/// state is held); its problems are reported once, with the snapshot that follows.
final class APISource: @unchecked Sendable {
    /// The label of the EndpointSlices (and Services) of headless Services (`v1.IsHeadlessService`).
    static let headlessLabel = "service.kubernetes.io/headless"
    /// The label that hands a Service to another proxy (`apis.LabelServiceProxyName`).
    static let proxyNameLabel = "service.kubernetes.io/service-proxy-name"

    let client: APIClient
    let logger: Logger
    /// This agent's `--service-proxy-name`: Services labelled with another name are not its own.
    let proxyName: String?
    /// This node's name: its Node object is followed (`nil`: none is).
    let nodeName: String?
    /// Called after every change to the store (from a reflector's task).
    let changed: @Sendable () -> Void
    /// Told what the reflectors do.
    let record: @Sendable (APIResource, ReflectorActivity) -> Void
    /// The reflectors' back-off and list page size (smaller in tests).
    var backoff = Backoff()
    var pageSize = 500

    private let lock = NSLock()
    private var objects: [Key: Stored] = [:]
    /// The keys of each Service's objects, so a snapshot hands out one Service's objects without a walk over all.
    private var keysByService: [ObjectName: Set<Key>] = [:]
    /// The objects refused with no good version: their Services are held.
    private var held: Set<Key> = []
    private var changedServices: Set<ObjectName> = []
    private var newIssues: [ManifestIssue] = []
    private var listed: Set<String> = []
    private var currentNode: KubeNode?
    /// The keys each list in progress has stored so far, by kind: when it ends, the others are gone.
    private var listing: [String: Set<Key>] = [:]
    /// The Node the Node list in progress found.
    private var listingNode: KubeNode?
    /// Makes the cold start of the first list, given this node's zone (set before `run()`): called
    /// once, as soon as the Node is known (at once when no Node is followed), unless every list
    /// already ended. Each page of the first lists is then handed to it as it comes (`ColdStart`).
    var makeColdStart: (@Sendable (_ zone: String?) -> ColdStart?)?
    private enum ColdStartPhase { case waiting, starting, feeding(ColdStart), done }
    private var coldStartPhase = ColdStartPhase.waiting
    private var number = 0
    private let lineageSource = UInt64.random(in: 1...UInt64.max)

    /// An object in the store: its kind and name.
    struct Key: Hashable, Sendable {
        var kind: String
        var name: ObjectName

        /// The order of a full snapshot: by kind, then name.
        static func ordered(_ a: Key, _ b: Key) -> Bool { (a.kind, a.name) < (b.kind, b.name) }
    }

    /// The last good version of an object (`nil` when it never decoded), and whether its latest
    /// version was refused.
    struct Stored: Sendable {
        var object: ManifestObject?
        var refused: Bool
        /// The Service the object belongs to, even when it never decoded.
        var service: ObjectName?
    }

    init(configuration: APIServerConfiguration, proxyName: String? = nil, nodeName: String? = nil, logger: Logger,
                changed: @escaping @Sendable () -> Void = {},
                record: @escaping @Sendable (APIResource, ReflectorActivity) -> Void = { _, _ in }) throws(APIServerError) {
        self.client = try APIClient(configuration: configuration)
        self.proxyName = proxyName
        self.nodeName = nodeName
        self.logger = logger
        self.changed = changed
        self.record = record
    }

    /// The resources followed, with kube-proxy's selector: no slices (or Services) of headless
    /// Services, and none labelled for another proxy (that label is filtered here when this agent
    /// has a name: a selector cannot say "absent or equal to"); and this node's Node, as
    /// kube-proxy's node informer selects it.
    var resources: [APIResource] {
        var selector = "!\(Self.headlessLabel)"
        if proxyName == nil { selector += ",!\(Self.proxyNameLabel)" }
        var resources = [
            APIResource(kind: "Service", apiVersion: "v1", path: "/api/v1/services", labelSelector: selector),
            APIResource(kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", path: "/apis/discovery.k8s.io/v1/endpointslices",
                        labelSelector: selector),
        ]
        if let nodeName {
            resources.append(APIResource(kind: "Node", apiVersion: "v1", path: "/api/v1/nodes", fieldSelector: "metadata.name=\(nodeName)"))
        }
        return resources
    }

    /// This node's Node object as last listed or watched (`nil` before, or when it does not exist).
    var node: KubeNode? { lock.withLock { currentNode } }

    /// Whether every resource was listed once: before that the store is not the cluster's state.
    var isSynced: Bool { lock.withLock { listed.count == resources.count } }

    /// Runs the reflectors until cancelled.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for resource in resources {
                let reflector = Reflector(client: client, resource: resource, logger: logger,
                                          sink: { [self] event in receive(event, of: resource) },
                                          record: { [record] activity in record(resource, activity) },
                                          pageSize: pageSize, backoff: backoff)
                group.addTask { await reflector.run() }
            }
        }
    }

    // MARK: - Snapshots

    /// Whether every resource was listed once: before, a snapshot would be missing objects.
    var isListed: Bool { lock.withLock { listed.count == resources.count } }

    /// The objects now, and which Services changed since the previous snapshot; `nil` until every
    /// resource was listed once.
    func snapshot() -> SourceSnapshot? {
        lock.withLock {
            guard listed.count == resources.count else { return nil }
            // The store is read when the snapshot is, not copied: holding a copy while events arrive
            // would copy every object at the next event. A Service changed after this snapshot may
            // already show its new objects; it is in the next snapshot's changed Services too, and
            // mapping it again then changes nothing.
            var snapshot = SourceSnapshot(issues: newIssues)
            snapshot.store = SourceSnapshot.Store(
                inputs: { [self] name in
                    lock.withLock {
                        var inputs = ServiceInputs()
                        for key in (keysByService[name] ?? []).sorted(by: Key.ordered) {
                            if let object = objects[key]?.object { inputs.add(object) }
                        }
                        return inputs
                    }
                },
                all: { [self] in lock.withLock { objects.sorted { Key.ordered($0.key, $1.key) }.compactMap(\.value.object) } })
            snapshot.heldServices = Set(held.compactMap { objects[$0]?.service })
            number += 1
            snapshot.lineage = SourceSnapshot.Lineage(source: lineageSource, number: number)
            snapshot.changedServices = number == 1 ? nil : changedServices
            changedServices = []
            newIssues = []
            return snapshot
        }
    }

    // MARK: - Events

    func receive(_ event: ReflectorEvent, of resource: APIResource) {
        if resource.kind == "Node" {
            receiveNode(event)
            return startColdStart()
        }
        let decoded: [Decoded] = switch event {
        case .listPage(let nodes, _): nodes.compactMap { decode($0, of: resource) }
        case .added(let node), .modified(let node): decode(node, of: resource).map { [$0] } ?? []
        case .deleted, .listEnded: []
        }
        let feed = lock.withLock { () -> (ColdStart, ColdStartObjects)? in
            var pageServices: Set<ObjectName> = []
            switch event {
            case .listPage(_, let first):
                if first { listing[resource.kind] = [] }
                for object in decoded {
                    guard let key = store(object) else { continue }
                    listing[resource.kind, default: []].insert(key)
                    if let service = objects[key]?.service { pageServices.insert(service) }
                }
            case .listEnded:
                let seen = listing.removeValue(forKey: resource.kind) ?? []
                for (key, stored) in objects where key.kind == resource.kind && !seen.contains(key) {
                    set(key, nil)
                    if let service = stored.service { changedServices.insert(service) }
                }
                listed.insert(resource.kind)
                // Every list ended: the first load maps and programs the rest.
                if listed.count == resources.count { coldStartPhase = .done }
            case .added, .modified:
                _ = decoded.first.flatMap(store)
            case .deleted(let node):
                guard let key = key(of: node, resource) else { return nil }
                if let stored = objects[key] {
                    set(key, nil)
                    if let service = stored.service { changedServices.insert(service) }
                }
            }
            guard case .feeding(let coldStart) = coldStartPhase, !pageServices.isEmpty else { return nil }
            return (coldStart, coldStartObjects(for: pageServices, bind: resource.kind == "Service"))
        }
        if let (coldStart, objects) = feed {
            coldStart.bind(objects.services)
            coldStart.program(objects.complete)
        }
        startColdStart()
        changed()
    }

    // MARK: - Cold start

    /// What the cold start takes for some Services: their Service objects (for their VIPs), and
    /// each Service that has endpoint objects, with them (to program it).
    private struct ColdStartObjects {
        var services: [ManifestObject] = []
        var complete: [ManifestObject] = []
    }

    /// The cold start's objects for the Services `names` as stored now; their Service objects only when `bind`.
    private func coldStartObjects(for names: some Sequence<ObjectName>, bind: Bool) -> ColdStartObjects {
        var result = ColdStartObjects()
        for name in names {
            guard let service = objects[Key(kind: "Service", name: name)]?.object else { continue }
            if bind { result.services.append(service) }
            let endpoints = (keysByService[name] ?? []).filter { $0.kind != "Service" }.sorted(by: Key.ordered).compactMap { objects[$0]?.object }
            if !endpoints.isEmpty { result.complete += [service] + endpoints }
        }
        return result
    }

    /// Makes the cold start once the Node is known, and hands it what was stored so far.
    private func startColdStart() {
        let zone = lock.withLock { () -> String?? in
            guard case .waiting = coldStartPhase, makeColdStart != nil else { return nil }
            // Too late once every list ended: the first load may be under way without it.
            if listed.count == resources.count {
                coldStartPhase = .done
                return nil
            }
            if nodeName != nil, !listed.contains("Node") { return nil }
            coldStartPhase = .starting
            return .some(currentNode?.zone)
        }
        guard let zone else { return }
        guard let coldStart = makeColdStart?(zone) else { return lock.withLock { coldStartPhase = .done } }
        let stored = lock.withLock { () -> ColdStartObjects? in
            guard case .starting = coldStartPhase else { return nil } // Every list ended meanwhile.
            coldStartPhase = .feeding(coldStart)
            return coldStartObjects(for: Array(keysByService.keys), bind: true)
        }
        if let stored {
            coldStart.bind(stored.services)
            coldStart.program(stored.complete)
        }
    }

    /// Keeps this node's Node; a change that matters to the mapping (its zone), and the first list,
    /// ask for a sync. The kubelet updates the Node's status every few seconds: those changes, and
    /// a change of its addresses, which the agent does not map (NodePorts are on the addresses of
    /// the node's interfaces, as kube-proxy's IPVS mode has them), write nothing.
    private func receiveNode(_ event: ReflectorEvent) {
        let wanted: (YAMLNode) -> KubeNode? = { [nodeName] in NodeDecoder.decode($0).flatMap { $0.name == nodeName ? $0 : nil } }
        let (previous, current, first): (KubeNode?, KubeNode?, Bool) = lock.withLock {
            let previous = currentNode
            let first = !listed.contains("Node")
            switch event {
            case .listPage(let objects, let first):
                if first { listingNode = nil }
                if let node = objects.lazy.compactMap(wanted).first { listingNode = node }
            case .listEnded:
                currentNode = listingNode
                listingNode = nil
                listed.insert("Node")
            case .added(let object), .modified(let object):
                if let node = wanted(object) { currentNode = node }
            case .deleted(let object):
                // kube-proxy exits when its Node is deleted; the agent keeps its zone and state, and
                // `/healthz` answers 503 (the node is going away).
                if wanted(object) != nil {
                    currentNode?.eligible = false
                    logger.warning("this node's Node object was deleted; the agent keeps its zone and state, and /healthz answers 503",
                                   metadata: ["node": "\(nodeName ?? "")"])
                }
            }
            return (previous, currentNode, first)
        }
        if previous?.addresses != current?.addresses, let current, previous != nil {
            logger.notice("this node's addresses changed in its Node object; NodePorts use the addresses of the node's interfaces, read at start: restart the agent to read them again",
                          metadata: ["node": "\(current.name)", "addresses": "\(current.addresses.map(\.description).joined(separator: ","))"])
        }
        if previous?.zone != current?.zone, !first {
            logger.info("this node's zone changed", metadata: ["zone": "\(current?.zone ?? "(none)")", "previous": "\(previous?.zone ?? "(none)")"])
        }
        if first || previous?.zone != current?.zone { changed() }
    }

    /// The key of `node`, from its metadata.
    private func key(of node: YAMLNode, _ resource: APIResource) -> Key? {
        guard let metadata = NodeReader.value(of: "metadata", in: node), let name = NodeReader.text(of: "name", in: metadata) else {
            return nil
        }
        let namespace = NodeReader.text(of: "namespace", in: metadata) ?? "default"
        return Key(kind: resource.kind, name: ObjectName(namespace: namespace, name: name))
    }

    /// An object as it came, decoded: its key, and whether it is this agent's (`nil` decoding: it is not).
    private struct Decoded {
        var key: Key
        var decoding: ManifestDecoding?
    }

    /// Decodes `node`, out of the lock: the two resources' lists decode side by side. `nil` when
    /// it has no name.
    private func decode(_ node: YAMLNode, of resource: APIResource) -> Decoded? {
        guard let key = key(of: node, resource) else {
            logger.error("skipped a \(resource.kind) without metadata.name from the API server")
            return nil
        }
        // Labelled for another proxy: not this agent's, as if it did not exist.
        guard isOwn(node) else { return Decoded(key: key, decoding: nil) }
        var decoding = ManifestDecoding()
        ManifestDecoder.decodeAPIObject(node, kind: resource.kind, apiVersion: resource.apiVersion,
                                        file: "API server", into: &decoding)
        return Decoded(key: key, decoding: decoding)
    }

    /// Stores a decoded object (keeping the last good version of a refused one); records the
    /// Services whose objects changed. Returns the object's key, or `nil` when it is not this agent's.
    private func store(_ decoded: Decoded) -> Key? {
        let key = decoded.key
        let previous = objects[key]
        guard let decoding = decoded.decoding else {
            if let previous {
                set(key, nil)
                if let service = previous.service { changedServices.insert(service) }
            }
            return nil
        }
        newIssues += decoding.issues
        if let object = decoding.objects.first {
            let entry = Stored(object: object, refused: false, service: object.serviceName)
            if previous?.object != object {
                if let service = previous?.service { changedServices.insert(service) }
                if let service = entry.service { changedServices.insert(service) }
            }
            set(key, entry)
        } else {
            // Refused: the last good version stays; its Service is held when there is none.
            let service = decoding.rejectedServices.values.first ?? previous?.service
            set(key, Stored(object: previous?.object, refused: true, service: service))
            if previous?.object == nil, let service { changedServices.insert(service) }
        }
        return key
    }

    /// Stores `stored` under `key` (removes it when `nil`) and keeps the Service index and the held
    /// objects in step.
    private func set(_ key: Key, _ stored: Stored?) {
        if let service = objects[key]?.service {
            keysByService[service]?.remove(key)
            if keysByService[service]?.isEmpty == true { keysByService[service] = nil }
        }
        objects[key] = stored
        if let service = stored?.service { keysByService[service, default: []].insert(key) }
        if let stored, stored.object == nil, stored.refused { held.insert(key) } else { held.remove(key) }
    }

    /// Whether the object carries no proxy name label, or this agent's.
    private func isOwn(_ node: YAMLNode) -> Bool {
        guard let labels = NodeReader.value(of: "metadata", in: node).flatMap({ NodeReader.value(of: "labels", in: $0) }) else {
            return true
        }
        if NodeReader.value(of: Self.headlessLabel, in: labels) != nil { return false }
        guard let name = NodeReader.text(of: Self.proxyNameLabel, in: labels) else { return true }
        return name == proxyName
    }
}

/// The API server as a source of the load step (`DesiredStateLoader`): each load is the snapshot of
/// the objects now, with the Services changed since the previous one.
extension APISource: DesiredStateSource {
    var objectsName: String { "the API server's objects" }

    func load() async -> SourceSnapshot {
        // Before every resource was listed, an incomplete snapshot holds the kernel as it is.
        snapshot() ?? SourceSnapshot(incomplete: true)
    }
}
