import IPVS

/// Builds the desired state from every object of every source, remembering each Service's mapping
/// so that a change to one Service (or its endpoints) re-maps only that Service and reports only
/// the virtual services it touches.
public struct DesiredStateBuilder: Sendable {
    /// The outcome of one build.
    public struct Build: Sendable {
        public var state: DesiredState
        public var issues: [ManifestIssue]
        /// The virtual services whose desired configuration may have changed since the previous
        /// build, or `nil` when everything must be compared.
        public var changed: Set<ServiceKey>?
    }

    public var options: MappingOptions {
        didSet { if options != oldValue { cache = [:]; first = true } }
    }

    private struct Entry: Sendable {
        var service: KubeService
        var slices: [EndpointSlice]
        var mapping: ServiceMapping
    }

    private var cache: [ObjectName: Entry] = [:]
    private var first = true
    private var hadConflicts = false

    public init(options: MappingOptions) {
        self.options = options
    }

    public mutating func build(_ objects: [ManifestObject]) -> Build {
        var services: [ObjectName: KubeService] = [:]
        var slicesByService: [ObjectName: [EndpointSlice]] = [:]
        for object in objects {
            switch object {
            case .service(let service):
                services[service.name] = service
            case .endpointSlice(let slice):
                guard let serviceName = slice.serviceName else { continue }
                slicesByService[ObjectName(namespace: slice.name.namespace, name: serviceName), default: []].append(slice)
            }
        }

        var changed: Set<ServiceKey> = []
        var next: [ObjectName: Entry] = [:]
        next.reserveCapacity(services.count)
        for (name, service) in services {
            let slices = (slicesByService[name] ?? []).sorted { $0.name < $1.name }
            if let old = cache[name], old.service == service, old.slices == slices {
                next[name] = old
                continue
            }
            let mapping = ServiceMapper.map(service, slices: slices, options: options)
            if let old = cache[name] {
                for (key, value) in old.mapping.services where mapping.services[key] != value { changed.insert(key) }
            }
            for (key, value) in mapping.services where cache[name]?.mapping.services[key] != value { changed.insert(key) }
            next[name] = Entry(service: service, slices: slices, mapping: mapping)
        }
        for (name, old) in cache where next[name] == nil { changed.formUnion(old.mapping.services.keys) }
        cache = next

        // MARK: Merge, first Service by name wins a shared address and port
        var state = DesiredState()
        state.services.reserveCapacity(cache.count * 2)
        var issues: [ManifestIssue] = []
        var conflicts = false
        for name in cache.keys.sorted() {
            let mapping = cache[name]!.mapping
            issues += mapping.issues
            for (key, desired) in mapping.services {
                if let other = state.services[key] {
                    conflicts = true
                    issues.append(ManifestIssue(file: "", object: "Service \(name)", field: "spec.ports",
                                                message: "\(key) is already used by Service \(other.origin); this port is left out"))
                    continue
                }
                state.services[key] = desired
            }
            state.addresses.formUnion(mapping.addresses)
        }
        let everything = first || conflicts || hadConflicts
        first = false
        hadConflicts = conflicts
        return Build(state: state, issues: issues, changed: everything ? nil : changed)
    }
}
