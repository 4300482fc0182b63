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
        didSet { if options != oldValue { cache = [:]; withIssues = []; first = true; untaken = [:] } }
    }

    /// A Service as mapped, with the objects it was mapped from.
    struct Entry: Sendable {
        var service: KubeService
        var slices: [EndpointSlice]
        var mapping: ServiceMapping
        /// Other files' Service objects of the same name, left out (`ClaimPrecedence`).
        var duplicates: [ManifestIssue] = []

        /// Every problem of the Service.
        var issues: [ManifestIssue] { duplicates + mapping.issues }
    }

    /// Every Service as last mapped (read by `PacketFilterMapper` for the Services that changed).
    private(set) var cache: [ObjectName: Entry] = [:]
    /// Who reads the changed Services after each load (`takeChangedServices(for:)`): each reader
    /// gets every change once.
    enum ChangeReader: Hashable, Sendable {
        /// The nftables table (`PacketFilterDriver`).
        case packetFilter
        /// The healthCheckNodePort listeners (`HealthCheckNodePort`).
        case serviceHealth
    }

    /// By reader, the Services mapped again since it last took them; a reader that is absent takes all.
    private var untaken: [ChangeReader: Set<ObjectName>] = [:]
    /// The file each Service's object was taken from: it keeps the name against other files.
    private var sourceFiles: [ObjectName: String] = [:]
    /// The Service that owned each virtual service when the agent started (`seed(owners:)`),
    /// until the first merge: it keeps the address and port against other Services.
    private var owners: [ServiceKey: ObjectName] = [:]
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

    /// The Services mapped again since `reader` last took them, or `nil` when every Service must be
    /// looked at (before its first call, after a full merge or a change of options); its next call
    /// starts from none.
    mutating func takeChangedServices(for reader: ChangeReader) -> Set<ObjectName>? {
        defer { untaken[reader] = [] }
        return untaken[reader]
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

    /// Takes the Service that owned each virtual service when the agent started (the state file's
    /// `Ownership.origins`): on the first build it keeps the address and port, and its name,
    /// against Service objects that claim them too, as it would have had the agent not restarted.
    /// Ignored after the first build.
    public mutating func seed(owners: [ServiceKey: ObjectName]) {
        guard first else { return }
        self.owners = owners
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
            let (service, slices, duplicates) = resolve(name, inputs(name))
            let old = cache[name]
            guard let service else {
                sourceFiles[name] = nil
                guard let old else { continue } // Endpoints without their Service: nothing to map.
                changed.formUnion(old.mapping.services.keys)
                previous[name] = old.mapping
                changedNames.append(name)
                cache[name] = nil
                withIssues.remove(name)
                continue
            }
            sourceFiles[name] = service.location?.file
            if let old, old.service == service, old.slices == slices, old.duplicates == duplicates,
               old.service.location?.file == service.location?.file,
               old.mapping.issues.isEmpty || Self.sameLocations(old, service, slices) { continue }
            toMap.append((name, service, slices, duplicates))
        }
        for ((name, service, slices, duplicates), mapping) in zip(toMap, Self.map(toMap, options: options)) {
            let old = cache[name]
            if let old {
                for (key, value) in old.mapping.services where mapping.services[key] != value { changed.insert(key) }
                previous[name] = old.mapping
            }
            // The first build reports everything as changed (`changed` is then not returned).
            if !first {
                for (key, value) in mapping.services where old?.mapping.services[key] != value { changed.insert(key) }
            }
            cache[name] = Entry(service: service, slices: slices, mapping: mapping, duplicates: duplicates)
            if mapping.issues.isEmpty && duplicates.isEmpty { withIssues.remove(name) } else { withIssues.insert(name) }
            changedNames.append(name)
        }

        var issues: [ManifestIssue] = []
        for name in withIssues.sorted() { issues += cache[name]?.issues ?? [] }
        if !first, !hadConflicts, patch(changedNames, previous: previous) {
            for reader in untaken.keys { untaken[reader]!.formUnion(changedNames) }
            return Build(state: state, issues: issues, changed: changed, realServerCount: realServerCount, remapped: Set(changedNames))
        }
        let (merged, conflictIssues) = merge()
        state = merged
        let everything = first || !conflictIssues.isEmpty || hadConflicts
        first = false
        hadConflicts = !conflictIssues.isEmpty
        if everything { untaken = [:] } else { for reader in untaken.keys { untaken[reader]!.formUnion(changedNames) } }
        return Build(state: state, issues: issues + conflictIssues, changed: everything ? nil : changed, realServerCount: realServerCount,
                     remapped: Set(changedNames))
    }

    /// A Service to map, with its slices in order and the other Service objects of its name.
    private typealias Mappable = (name: ObjectName, service: KubeService, slices: [EndpointSlice], duplicates: [ManifestIssue])

    // MARK: - One name, several files

    /// The Service object of `name` that keeps the name when several files define it
    /// (`ClaimPrecedence`; one per file, the first of the file, as `ManifestSource` keeps it), its
    /// slices in order, and a problem for each Service object left out. The endpoint objects in
    /// the files of those are left out too: they came with an object that lost (a copy of a
    /// Service with its endpoints must not add them to the original); endpoints in files without a
    /// Service object of the name belong to the one that keeps it.
    private func resolve(_ name: ObjectName, _ objects: ServiceInputs)
        -> (service: KubeService?, slices: [EndpointSlice], duplicates: [ManifestIssue]) {
        guard objects.services.count > 1 else { return (objects.service, objects.slicesByName, []) }
        var candidates: [KubeService] = []
        var files: Set<String> = []
        for service in objects.services where files.insert(service.location?.file ?? "").inserted { candidates.append(service) }
        guard candidates.count > 1 else { return (objects.service, objects.slicesByName, []) }
        let incumbentFile = sourceFiles[name]
        let precedence = candidates.map { service in
            ClaimPrecedence(service, incumbent: incumbentFile.map { service.location?.file == $0 } ?? claimsOwnedKey(service))
        }
        let winner = precedence.indices.min { precedence[$0] < precedence[$1] }!
        let kept = candidates[winner]
        var leftOut: Set<String> = []
        var duplicates: [ManifestIssue] = []
        for (index, service) in candidates.enumerated() where index != winner {
            leftOut.insert(service.location?.file ?? "")
            duplicates.append(ManifestIssue(at: service.location, object: "Service \(name)", field: "metadata.name",
                                            message: "Service \(name) is also defined at \(ClaimPrecedence.place(of: kept)), which came first; "
                                                + "this object and the endpoints in its file are ignored until that one is removed"))
        }
        let slices = objects.slices.filter { !leftOut.contains($0.location?.file ?? "") }.sorted { $0.name < $1.name }
        return (kept, slices, duplicates)
    }

    /// Whether one of the addresses and ports `service` claims was owned by its name when the
    /// agent started (`seed(owners:)`): after a restart, the object the kernel was programmed from.
    private func claimsOwnedKey(_ service: KubeService) -> Bool {
        guard !owners.isEmpty else { return false }
        for address in ServiceMapper.addresses(of: service, options: options) {
            for port in service.ports where owners[.address(port.transport, address, port: port.port)] == service.name { return true }
        }
        return false
    }

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

    private(set) var state = DesiredState()
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

    /// Merges every Service's mapping; of Services sharing an address and port, the one that
    /// came first keeps it (`ClaimPrecedence`), the others are reported.
    private mutating func merge() -> (DesiredState, [ManifestIssue]) {
        var merged = DesiredState()
        merged.services.reserveCapacity(cache.count * 2)
        var losers: [(name: ObjectName, key: ServiceKey)] = []
        var users: [IPAddress: Int] = [:]
        for name in cache.keys.sorted() {
            let mapping = cache[name]!.mapping
            for (key, desired) in mapping.services {
                if let holder = merged.services[key]?.origin {
                    guard precedes(name, holder, for: key) else { losers.append((name, key)); continue }
                    losers.append((holder, key))
                }
                merged.services[key] = desired
            }
            for address in mapping.addresses { users[address, default: 0] += 1 }
        }
        var issues: [ManifestIssue] = []
        for (name, key) in losers.sorted(by: { ($0.name, $0.key) < ($1.name, $1.key) }) {
            let service = cache[name]!.service
            let winner = cache[merged.services[key]!.origin]!.service
            issues.append(ManifestIssue(at: service.location, object: "Service \(name)", field: Self.portField(of: key, in: service),
                                        message: "\(key) is already used by Service \(winner.name) (\(ClaimPrecedence.place(of: winner))), "
                                            + "which came first; this port is left out until that one no longer uses it"))
        }
        merged.addresses = Set(users.keys)
        addressUsers = users
        realServerCount = merged.realServerCount
        owners = [:]
        return (merged, issues)
    }

    /// Whether Service `name` keeps `key` against `holder`, which claims it too: the holder of
    /// the key in the previous state (or at start, its recorded owner) first, then `ClaimPrecedence`.
    private func precedes(_ name: ObjectName, _ holder: ObjectName, for key: ServiceKey) -> Bool {
        let incumbent = state.services[key]?.origin ?? owners[key]
        return ClaimPrecedence(cache[name]!.service, incumbent: incumbent == name)
            < ClaimPrecedence(cache[holder]!.service, incumbent: incumbent == holder)
    }
}
