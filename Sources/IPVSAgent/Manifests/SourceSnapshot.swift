/// The objects of a source at one moment, with the problems found reading them.
///
/// A snapshot from `ManifestSource` also says which Services changed since the source's previous
/// snapshot (`changedServices`) and can hand out the objects of one Service without a walk over
/// all of them (`inputs(of:)`), so that `DesiredStateBuilder` re-maps only what changed.
public struct SourceSnapshot: Sendable {
    /// Every object, in source order (file by file).
    public var objects: [ManifestObject] {
        get {
            if let store { return store.all() }
            return chunks.count == 1 ? chunks[0] : Array(chunks.joined())
        }
        set {
            chunks = [newValue]
            index = nil
            store = nil
            changedServices = nil
        }
    }
    public var issues: [ManifestIssue]
    /// Services with an invalid object (or invalid endpoints) and no earlier good version: what the
    /// kernel has for them must be kept, not removed.
    public var heldServices: Set<ObjectName>
    /// Whether a file could not be read at all and no earlier good version exists: then nothing
    /// may be removed from the kernel, since its objects are unknown.
    public var incomplete: Bool
    /// The Services (by namespace and name) whose Service object or endpoint objects may differ
    /// from the source's previous snapshot (`lineage.previous`); `nil` when unknown.
    public var changedServices: Set<ObjectName>?
    /// Which snapshot of which source this is.
    public var lineage: Lineage?

    /// The objects, in pieces (one per file) that are shared with the source, not copied.
    var chunks: [[ManifestObject]]
    /// Where each Service's objects are, for `inputs(of:)`.
    var index: ObjectIndex?
    /// The objects of a source that keeps them by Service (the API server's), handed out without
    /// copying or sorting them all for each snapshot; `chunks` is then unused.
    var store: Store?

    /// A source's objects, by Service and all of them, as they are when read: an object newer than
    /// the snapshot may show, and its Service is then in the next snapshot's `changedServices` too.
    struct Store: Sendable {
        /// One Service's objects.
        let inputs: @Sendable (ObjectName) -> ServiceInputs
        /// Every object, in a fixed order (read only when every Service is mapped again).
        let all: @Sendable () -> [ManifestObject]
    }

    /// Identifies a snapshot within the sequence one source produces.
    public struct Lineage: Hashable, Sendable {
        /// The source (random per source instance).
        public var source: UInt64
        /// The snapshot's number; `changedServices` is relative to `number - 1`.
        public var number: Int
    }

    public init(objects: [ManifestObject] = [], issues: [ManifestIssue] = [], heldServices: Set<ObjectName> = [], incomplete: Bool = false) {
        self.chunks = [objects]
        self.issues = issues
        self.heldServices = heldServices
        self.incomplete = incomplete
    }

    init(chunks: [[ManifestObject]], issues: [ManifestIssue]) {
        self.chunks = chunks
        self.issues = issues
        self.heldServices = []
        self.incomplete = false
    }

    /// Every Service object named `name` and every endpoint object labelled with it, in source
    /// order; found through the index when there is one.
    func inputs(of name: ObjectName) -> ServiceInputs {
        if let store { return store.inputs(name) }
        if let index { return index.inputs(of: name) }
        var inputs = ServiceInputs()
        for object in objects where object.serviceName == name { inputs.add(object) }
        return inputs
    }
}

/// The objects that make up one Kubernetes Service: its Service object and its endpoints.
struct ServiceInputs: Hashable, Sendable {
    /// Every Service object of the name, in source order: more than one when several files define
    /// it (`DesiredStateBuilder` picks one).
    var services: [KubeService] = []
    var slices: [EndpointSlice] = []

    /// The Service object, when one file is read: the first of the name in the file, as
    /// `ManifestSource` keeps it.
    var service: KubeService? { services.first }

    /// The objects grouped by the Service they belong to (a slice labelled with none is left out).
    static func grouped(_ objects: some Sequence<ManifestObject>) -> [ObjectName: ServiceInputs] {
        var inputs: [ObjectName: ServiceInputs] = [:]
        for object in objects {
            guard let name = object.serviceName else { continue }
            inputs[name, default: ServiceInputs()].add(object)
        }
        return inputs
    }

    /// The slices in the order they are mapped in: by name, so that the mapping does not depend
    /// on the files' order.
    var slicesByName: [EndpointSlice] { slices.sorted { $0.name < $1.name } }

    /// Adds one object.
    mutating func add(_ object: ManifestObject) {
        switch object {
        case .service(let value): services.append(value)
        case .endpointSlice(let slice): slices.append(slice)
        }
    }
}

extension ManifestObject {
    /// The Service the object belongs to: a Service itself, or the Service a slice is labelled
    /// with; `nil` for a slice without that label (no Service uses it).
    var serviceName: ObjectName? {
        switch self {
        case .service(let service): service.name
        case .endpointSlice(let slice): slice.serviceName.map { ObjectName(namespace: slice.name.namespace, name: $0) }
        }
    }
}

/// One file's objects, and the same objects grouped by the Service they belong to.
struct FileObjects: Hashable, Sendable {
    var objects: [ManifestObject]
    var byService: [ObjectName: [ManifestObject]]

    init(_ objects: [ManifestObject] = []) {
        self.objects = objects
        var groups: [ObjectName: [ManifestObject]] = [:]
        for object in objects {
            guard let name = object.serviceName else { continue }
            groups[name, default: []].append(object)
        }
        byService = groups
    }
}

/// Where the objects of each Service are within a snapshot's files.
struct ObjectIndex: Sendable {
    /// The snapshot's files in order.
    var files: [FileObjects]
    /// The position of each file (by path) in `files`.
    var positions: [String: Int]
    /// The files (by path) holding objects of each Service.
    var filesByService: [ObjectName: Set<String>]

    func inputs(of name: ObjectName) -> ServiceInputs {
        var inputs = ServiceInputs()
        let holders = (filesByService[name] ?? []).compactMap { positions[$0] }.sorted()
        for position in holders {
            for object in files[position].byService[name] ?? [] { inputs.add(object) }
        }
        return inputs
    }
}
