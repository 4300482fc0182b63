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
        var changedNames: [ObjectName] = []
        var previous: [ObjectName: ServiceMapping] = [:]
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
                previous[name] = old.mapping
            }
            for (key, value) in mapping.services where cache[name]?.mapping.services[key] != value { changed.insert(key) }
            next[name] = Entry(service: service, slices: slices, mapping: mapping)
            changedNames.append(name)
        }
        for (name, old) in cache where next[name] == nil {
            changed.formUnion(old.mapping.services.keys)
            previous[name] = old.mapping
            changedNames.append(name)
        }
        cache = next

        var issues: [ManifestIssue] = []
        for name in cache.filter({ !$0.value.mapping.issues.isEmpty }).keys.sorted() { issues += cache[name]!.mapping.issues }
        if !first, !hadConflicts, patch(changedNames, previous: previous) {
            return Build(state: state, issues: issues, changed: changed)
        }
        let (merged, conflictIssues) = merge()
        state = merged
        let everything = first || !conflictIssues.isEmpty || hadConflicts
        first = false
        hadConflicts = !conflictIssues.isEmpty
        return Build(state: state, issues: issues + conflictIssues, changed: everything ? nil : changed)
    }

    // MARK: - Merging

    private var state = DesiredState()
    /// How many Services bind each address, to patch `state.addresses`.
    private var addressUsers: [IPAddress: Int] = [:]

    /// Updates `state` for the Services `names` only; `false` when a shared address and port
    /// makes a full merge necessary.
    private mutating func patch(_ names: [ObjectName], previous: [ObjectName: ServiceMapping]) -> Bool {
        var patched = state
        var users = addressUsers
        for name in names {
            if let old = previous[name] {
                for key in old.services.keys where patched.services[key]?.origin == name { patched.services[key] = nil }
                for address in old.addresses {
                    users[address, default: 1] -= 1
                    if users[address] == 0 { users[address] = nil; patched.addresses.remove(address) }
                }
            }
        }
        for name in names {
            guard let mapping = cache[name]?.mapping else { continue }
            for (key, desired) in mapping.services {
                if let other = patched.services[key], other.origin != name { return false }
                patched.services[key] = desired
            }
            for address in mapping.addresses {
                users[address, default: 0] += 1
                patched.addresses.insert(address)
            }
        }
        state = patched
        addressUsers = users
        return true
    }

    /// Merges every Service's mapping; the first Service by name wins a shared address and port.
    private mutating func merge() -> (DesiredState, [ManifestIssue]) {
        var merged = DesiredState()
        merged.services.reserveCapacity(cache.count * 2)
        var issues: [ManifestIssue] = []
        var users: [IPAddress: Int] = [:]
        for name in cache.keys.sorted() {
            let mapping = cache[name]!.mapping
            for (key, desired) in mapping.services {
                if let other = merged.services[key] {
                    issues.append(ManifestIssue(file: "", object: "Service \(name)", field: "spec.ports",
                                                message: "\(key) is already used by Service \(other.origin); this port is left out"))
                    continue
                }
                merged.services[key] = desired
            }
            for address in mapping.addresses { users[address, default: 0] += 1 }
        }
        merged.addresses = Set(users.keys)
        addressUsers = users
        return (merged, issues)
    }
}
