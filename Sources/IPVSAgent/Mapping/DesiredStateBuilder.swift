import Dispatch
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
        /// `state.realServerCount`, kept up to date without a walk over every service.
        public var realServerCount: Int
        /// The Services mapped again by this build (their objects changed, appeared or went).
        public var remapped: Set<ObjectName>
    }

    public var options: MappingOptions {
        didSet { if options != oldValue { cache = [:]; withIssues = []; first = true } }
    }

    /// A Service as mapped, with the objects it was mapped from.
    struct Entry: Sendable {
        var service: KubeService
        var slices: [EndpointSlice]
        var mapping: ServiceMapping
    }

    private var cache: [ObjectName: Entry] = [:]
    /// The Services whose mapping has issues.
    private var withIssues: Set<ObjectName> = []
    private var first = true
    private var hadConflicts = false
    /// The snapshot the state was last built from, so the next one from the same source can be
    /// applied as a change.
    private var lineage: SourceSnapshot.Lineage?

    public init(options: MappingOptions) {
        self.options = options
    }

    /// Builds from a source's snapshot: only the Services the snapshot reports as changed are
    /// mapped again when the builder saw the source's previous snapshot; everything otherwise.
    public mutating func build(_ snapshot: SourceSnapshot) -> Build {
        defer { lineage = snapshot.lineage }
        guard !first, let names = snapshot.changedServices, let current = snapshot.lineage, let previous = lineage,
              current.source == previous.source, current.number == previous.number + 1 else {
            return build(snapshot.objects)
        }
        // Services with problems are looked at again even when unchanged: an edit above one in
        // its file moves the line its problems are reported at.
        return update(withIssues.isEmpty ? names : names.union(withIssues)) { snapshot.inputs(of: $0) }
    }

    /// Whether `service` and `slices` are where the objects of `entry` were read (locations are
    /// not part of the objects' equality).
    private static func sameLocations(_ entry: Entry, _ service: KubeService, _ slices: [EndpointSlice]) -> Bool {
        entry.service.location == service.location && entry.slices.map(\.location) == slices.map(\.location)
    }

    /// Takes the mappings an early programming made while the first load decoded its files
    /// (`EarlyProgramming.mappings()`): the first build then maps again only the Services whose
    /// objects differ from those (their endpoints in another file, a Service object replaced).
    /// Ignored after the first build.
    mutating func seed(_ mappings: [ObjectName: Entry]) {
        guard first, cache.isEmpty else { return }
        cache = mappings
        for (name, entry) in mappings where !entry.mapping.issues.isEmpty { withIssues.insert(name) }
    }

    /// Builds from every object; only Services whose objects differ from the previous build are
    /// mapped again.
    public mutating func build(_ objects: [ManifestObject]) -> Build {
        lineage = nil
        let inputs = ServiceInputs.grouped(objects)
        var names = Set(inputs.keys)
        names.formUnion(cache.keys)
        return update(names) { inputs[$0] ?? ServiceInputs() }
    }

    /// Maps the Services `names` again from their `inputs` (a Service without a Service object is
    /// removed) and updates the state.
    private mutating func update(_ names: some Sequence<ObjectName>, inputs: (ObjectName) -> ServiceInputs) -> Build {
        var changed: Set<ServiceKey> = []
        var changedNames: [ObjectName] = []
        var previous: [ObjectName: ServiceMapping] = [:]
        var toMap: [Mappable] = []
        for name in names {
            let objects = inputs(name)
            let old = cache[name]
            guard let service = objects.service else {
                guard let old else { continue } // Endpoints without their Service: nothing to map.
                changed.formUnion(old.mapping.services.keys)
                previous[name] = old.mapping
                changedNames.append(name)
                cache[name] = nil
                withIssues.remove(name)
                continue
            }
            let slices = objects.slicesByName
            if let old, old.service == service, old.slices == slices,
               old.mapping.issues.isEmpty || Self.sameLocations(old, service, slices) { continue }
            toMap.append((name, service, slices))
        }
        for ((name, service, slices), mapping) in zip(toMap, Self.map(toMap, options: options)) {
            let old = cache[name]
            if let old {
                for (key, value) in old.mapping.services where mapping.services[key] != value { changed.insert(key) }
                previous[name] = old.mapping
            }
            // The first build reports everything as changed (`changed` is then not returned).
            if !first {
                for (key, value) in mapping.services where old?.mapping.services[key] != value { changed.insert(key) }
            }
            cache[name] = Entry(service: service, slices: slices, mapping: mapping)
            if mapping.issues.isEmpty { withIssues.remove(name) } else { withIssues.insert(name) }
            changedNames.append(name)
        }

        var issues: [ManifestIssue] = []
        for name in withIssues.sorted() { issues += cache[name]?.mapping.issues ?? [] }
        if !first, !hadConflicts, patch(changedNames, previous: previous) {
            return Build(state: state, issues: issues, changed: changed, realServerCount: realServerCount, remapped: Set(changedNames))
        }
        let (merged, conflictIssues) = merge()
        state = merged
        let everything = first || !conflictIssues.isEmpty || hadConflicts
        first = false
        hadConflicts = !conflictIssues.isEmpty
        return Build(state: state, issues: issues + conflictIssues, changed: everything ? nil : changed, realServerCount: realServerCount,
                     remapped: Set(changedNames))
    }

    /// A Service to map, with its slices in order.
    private typealias Mappable = (name: ObjectName, service: KubeService, slices: [EndpointSlice])

    /// Below this many Services to map, they are mapped on the caller's thread.
    static let parallelMappingMinimum = 256

    /// Maps `services`, on every core when there are many: a cold start maps thousands, and each
    /// Service maps on its own (`ServiceMapper.map` is pure).
    private static func map(_ services: [Mappable], options: MappingOptions) -> [ServiceMapping] {
        guard services.count >= parallelMappingMinimum else {
            return services.map { ServiceMapper.map($0.service, slices: $0.slices, options: options) }
        }
        // Runs of 64 Services per work item: fewer hand-overs between threads than one each.
        let run = 64
        var mappings = [ServiceMapping?](repeating: nil, count: services.count)
        mappings.withUnsafeMutableBufferPointer { mappings in
            nonisolated(unsafe) let slots = mappings // Each run writes only its own slots.
            DispatchQueue.concurrentPerform(iterations: (services.count + run - 1) / run) { first in
                for index in first * run..<min(services.count, (first + 1) * run) {
                    slots[index] = ServiceMapper.map(services[index].service, slices: services[index].slices, options: options)
                }
            }
        }
        return mappings.map { $0! }
    }

    // MARK: - Merging

    private var state = DesiredState()
    private var realServerCount = 0
    /// How many Services bind each address, to patch `state.addresses`.
    private var addressUsers: [IPAddress: Int] = [:]

    /// Updates `state` for the Services `names` only, in place (the state's storage is not
    /// copied); `false` when a shared address and port makes a full merge necessary.
    private mutating func patch(_ names: [ObjectName], previous: [ObjectName: ServiceMapping]) -> Bool {
        // A key may move between the Services being patched, but not onto one held by another.
        let patchedNames = Set(names)
        var claims: [ServiceKey: ObjectName] = [:]
        for name in names {
            for key in cache[name]?.mapping.services.keys ?? [:].keys {
                if claims.updateValue(name, forKey: key) != nil { return false }
                if let other = state.services[key]?.origin, !patchedNames.contains(other) { return false }
            }
        }
        for name in names {
            guard let old = previous[name] else { continue }
            for key in old.services.keys where state.services[key]?.origin == name {
                realServerCount -= state.services.removeValue(forKey: key)?.realServers.count ?? 0
            }
            for address in old.addresses {
                addressUsers[address, default: 1] -= 1
                if addressUsers[address] == 0 { addressUsers[address] = nil; state.addresses.remove(address) }
            }
        }
        for name in names {
            guard let mapping = cache[name]?.mapping else { continue }
            for (key, desired) in mapping.services {
                realServerCount += desired.realServers.count - (state.services.updateValue(desired, forKey: key)?.realServers.count ?? 0)
            }
            for address in mapping.addresses {
                addressUsers[address, default: 0] += 1
                state.addresses.insert(address)
            }
        }
        return true
    }

    /// `spec.ports[i]`: the entry of `service` that maps to `key` (its port or node port).
    static func portField(of key: ServiceKey, in service: KubeService) -> String {
        guard case .address(let transport, _, let port) = key,
              let index = service.ports.firstIndex(where: { $0.transport == transport && ($0.port == port || $0.nodePort == port) })
        else { return "spec.ports" }
        return "spec.ports[\(index)]"
    }

    /// Merges every Service's mapping; the first Service by name wins a shared address and port.
    private mutating func merge() -> (DesiredState, [ManifestIssue]) {
        var merged = DesiredState()
        merged.services.reserveCapacity(cache.count * 2)
        var issues: [ManifestIssue] = []
        var users: [IPAddress: Int] = [:]
        for name in cache.keys.sorted() {
            let entry = cache[name]!
            let mapping = entry.mapping
            for (key, desired) in mapping.services {
                if let other = merged.services[key] {
                    issues.append(ManifestIssue(at: entry.service.location, object: "Service \(name)", field: Self.portField(of: key, in: entry.service),
                                                message: "\(key) is already used by Service \(other.origin); this port is left out"))
                    continue
                }
                merged.services[key] = desired
            }
            for address in mapping.addresses { users[address, default: 0] += 1 }
        }
        merged.addresses = Set(users.keys)
        addressUsers = users
        realServerCount = merged.realServerCount
        return (merged, issues)
    }
}
