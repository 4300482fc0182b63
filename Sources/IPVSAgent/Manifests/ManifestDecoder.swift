import IPVS

/// The outcome of decoding one manifest file.
public struct ManifestDecoding: Sendable {
    /// The objects that decoded cleanly, in file order.
    public var objects: [ManifestObject] = []
    /// Every problem found; each names the file, document, object and field.
    public var issues: [ManifestIssue] = []
    /// Identities (`Kind namespace/name`) of known objects that had errors: the caller keeps
    /// their last good version.
    public var rejected: Set<String> = []
    /// The Services concerned by those objects (a Service itself, or the Service of a slice).
    public var rejectedServices: [String: ObjectName] = [:]
    /// Whether the whole file could not be read as YAML (then `objects` is empty and the caller
    /// keeps the file's last good objects).
    public var unreadable = false
}

/// Decodes Kubernetes manifests (YAML or JSON, several documents, `kind: List`) into the objects the
/// agent uses, strictly: unknown fields, bad addresses, ports and protocols are errors that name the
/// file, the document, the object and the field. Objects of other kinds are skipped.
public enum ManifestDecoder {
    /// The prefix of every annotation the agent reads.
    public static let annotationPrefix = "ipvs.swift.dev/"
    /// The annotation that picks a Service's scheduler (`rr`, `wlc`, `mh`, … as ipvsadm names them).
    public static let schedulerAnnotation = "ipvs.swift.dev/scheduler"
    /// The annotation that sets scheduler flags: a comma-separated list of `sh-fallback`, `sh-port`,
    /// `mh-fallback`, `mh-port` (of one scheduler; flags of another scheduler than the Service's are
    /// reported and left out when it is mapped) and `onepacket` (UDP).
    public static let schedulerFlagsAnnotation = "ipvs.swift.dev/scheduler-flags"

    /// Decodes the text of `file` (the name is only used in issues).
    public static func decode(_ text: String, file: String) -> ManifestDecoding {
        var result = ManifestDecoding()
        let documents: [YAMLNode]
        do {
            documents = try YAMLTree.parse(text).roots
        } catch {
            result.unreadable = true
            let verdict = if case .limit = error { "not read" } else { "not valid YAML or JSON" }
            result.issues.append(ManifestIssue(file: file, line: error.line, message: "\(verdict): \(error.summary)"))
            return result
        }
        for (index, document) in documents.enumerated() {
            decodeDocument(NodeReader(node: document, path: ""), file: file, document: index + 1, into: &result)
        }
        return result
    }

    // MARK: - Documents and lists

    private static func decodeDocument(_ reader: NodeReader, file: String, document: Int, into result: inout ManifestDecoding) {
        if reader.isNull { return }
        guard reader.node.kind == .mapping else {
            result.issues.append(ManifestIssue(file: file, document: document, line: reader.line,
                                               message: "expected a Kubernetes object (a mapping with apiVersion and kind)"))
            return
        }
        let kind = NodeReader.text(of: "kind", in: reader.node) ?? ""
        let apiVersion = NodeReader.text(of: "apiVersion", in: reader.node) ?? ""
        if kind.hasSuffix("List"), apiVersion == "v1" || kind == "List" {
            guard let items = NodeReader.value(of: "items", in: reader.node), items.kind == .sequence else {
                result.issues.append(ManifestIssue(file: file, document: document, line: reader.line, field: "items",
                                                   message: "a \(kind) needs an items list"))
                return
            }
            for item in (try? NodeReader(node: items, path: "items").sequence()) ?? ListReader(node: nil, base: "") {
                decodeObject(item, kind: NodeReader.text(of: "kind", in: item.node) ?? "",
                             apiVersion: NodeReader.text(of: "apiVersion", in: item.node) ?? "",
                             file: file, document: document, into: &result)
            }
            return
        }
        decodeObject(reader, kind: kind, apiVersion: apiVersion, file: file, document: document, into: &result)
    }

    /// Decodes one object the API server sent (a list's item, which carries no `kind` and
    /// `apiVersion`, or a watch event's object) as an object of `kind` and `apiVersion`; `file`
    /// names where it came from in issues.
    static func decodeAPIObject(_ node: YAMLNode, kind: String, apiVersion: String, file: String,
                                into result: inout ManifestDecoding) {
        decodeObject(NodeReader(node: node, path: ""), kind: kind, apiVersion: apiVersion, file: file, document: 1, into: &result)
    }

    private static func decodeObject(_ reader: NodeReader, kind: String, apiVersion: String, file: String,
                                     document: Int, into result: inout ManifestDecoding) {
        // Kept with the object, for problems found while mapping it.
        let location = ManifestLocation(file: file, document: document, line: reader.line)
        do {
            if ["Service", "EndpointSlice", "Endpoints"].contains(kind), reader.node.length > ManifestLimits.objectCharacters {
                throw reader.fail("the object is \(reader.node.length.grouped) characters long; the API server stores objects "
                                  + "of at most \(ManifestLimits.objectCharacters.grouped) (1.5 MiB, etcd's request limit)")
            }
            switch (apiVersion, kind) {
            case ("v1", "Service"):
                var warnings: [FieldError] = []
                var service = try ServiceDecoder.decode(reader, warnings: &warnings)
                service.location = location
                result.objects.append(.service(service))
                for warning in warnings {
                    result.issues.append(issue(warning, reader: reader, file: file, document: document, object: ManifestObject.service(service).identity))
                }
            case ("discovery.k8s.io/v1", "EndpointSlice"):
                var slice = try EndpointsDecoder.decodeSlice(reader)
                slice.location = location
                result.objects.append(.endpointSlice(slice))
            case ("v1", "Endpoints"):
                var slice = try EndpointsDecoder.decodeEndpoints(reader)
                slice.location = location
                result.objects.append(.endpointSlice(slice))
            case (_, "Service"), (_, "EndpointSlice"), (_, "Endpoints"):
                throw FieldError(path: reader.fieldPrefix + "apiVersion", line: reader.line,
                                 message: "unsupported apiVersion \"\(apiVersion)\" for \(kind); use "
                                     + (kind == "EndpointSlice" ? "discovery.k8s.io/v1" : "v1"))
            case (_, ""):
                throw FieldError(path: reader.fieldPrefix + "kind", line: reader.line, message: "required field is missing")
            default:
                return // Another kind (Deployment, ConfigMap, …): not the agent's business.
            }
        } catch {
            // The object's names are read again only now: a clean object never builds them.
            let metadata = NodeReader.value(of: "metadata", in: reader.node)
            let namespace = metadata.flatMap { NodeReader.text(of: "namespace", in: $0) } ?? "default"
            let name = metadata.flatMap { NodeReader.text(of: "name", in: $0) } ?? "?"
            let identity = "\(kind) \(namespace)/\(name)"
            let serviceName = kind == "EndpointSlice"
                ? metadata.flatMap { NodeReader.value(of: "labels", in: $0) }.flatMap { NodeReader.text(of: EndpointsDecoder.serviceNameLabel, in: $0) }
                : name
            result.rejected.insert(identity)
            if let serviceName { result.rejectedServices[identity] = ObjectName(namespace: namespace, name: serviceName) }
            if let error = error as? FieldError {
                result.issues.append(issue(error, reader: reader, file: file, document: document, object: identity))
            } else {
                result.issues.append(ManifestIssue(file: file, document: document, line: reader.line, object: identity, message: "\(error)"))
            }
        }
    }

    /// The problem `error` in the object `reader` reads, its field named from the object (and the
    /// object's place in a list).
    private static func issue(_ error: FieldError, reader: NodeReader, file: String, document: Int, object: String) -> ManifestIssue {
        let prefix = reader.fieldPrefix
        let field = error.path.hasPrefix(prefix) ? String(error.path.dropFirst(prefix.count)) : error.path
        return ManifestIssue(file: file, document: document, line: error.line, object: object,
                             field: reader.path.isEmpty ? field : "\(reader.path): \(field)", message: error.message)
    }

    // MARK: - Shared pieces

    /// The fields of `metadata` (ObjectMeta); only name, namespace, labels, annotations and
    /// creationTimestamp are used.
    static let metadataFields: FieldNames = [
        "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "ownerReferences", "finalizers",
        "generateName", "selfLink",
    ]

    /// Fields the decoders accept and never read, each named by the end of its path (`[]`: any
    /// entry of a list): the bulk of what the API server sends besides what the agent uses (the
    /// field managers, the owners, each endpoint's Pod). The API source leaves them out when it
    /// reads JSON (`JSONScanner.Skip`).
    static let unreadFields = [["metadata", "managedFields"], ["metadata", "ownerReferences"], ["endpoints", "[]", "targetRef"]]

    struct Metadata {
        var name: ObjectName
        var labels: [String: String]
        var annotations: [String: String]
        /// `creationTimestamp` as the API server writes it (`2024-05-01T12:00:00Z`).
        var creationTimestamp: String?
    }

    /// Reads an object's metadata; its name must follow `rule`, and its namespace, labels and
    /// annotations the API server's rules (`ManifestLimits`).
    static func metadata(_ reader: NodeReader, name rule: ManifestLimits.NameRule) throws -> Metadata {
        let fields = try reader.mapping(known: metadataFields)
        let nameReader = try fields.required("name")
        let name = try nameReader.string()
        guard !name.isEmpty else { throw nameReader.fail("must not be empty") }
        if let problem = rule.problem(name) { throw nameReader.fail(problem) }
        let namespace = try fields.string("namespace") ?? "default"
        if let problem = ManifestLimits.NameRule.dns1123Label.problem(namespace) {
            throw try fields.required("namespace").fail(problem)
        }
        var labels: [String: String] = [:], annotations: [String: String] = [:]
        if let reader = fields["labels"] {
            labels = try reader.stringMap()
            _ = try checkKeys(reader, label: true)
        }
        if let reader = fields["annotations"] {
            annotations = try reader.stringMap()
            let bytes = try checkKeys(reader, label: false)
            guard bytes <= ManifestLimits.annotationBytes else {
                throw reader.fail("the annotations take \(bytes.grouped) bytes; the API server allows "
                                  + "\(ManifestLimits.annotationBytes.grouped) (256 KiB) in total, keys and values together")
            }
        }
        var creationTimestamp: String?
        if let field = fields["creationTimestamp"] {
            let text = try field.string()
            guard isTimestamp(text) else {
                throw field.fail("must be a UTC time as the API server writes it (2024-05-01T12:00:00Z), got \"\(text)\"")
            }
            creationTimestamp = text
        }
        return Metadata(name: ObjectName(namespace: namespace, name: name), labels: labels, annotations: annotations,
                        creationTimestamp: creationTimestamp)
    }

    /// Checks the keys of a mapping of text read by `stringMap()` (and with `label`, its values)
    /// as the API server does, naming the entry at its line; returns the size of keys and values.
    private static func checkKeys(_ reader: NodeReader, label: Bool) throws -> Int {
        var bytes = 0
        for position in 0..<reader.node.count {
            let (key, value) = reader.node.pair(position)
            let name = key.scalar ?? "", text = value.scalar ?? ""
            bytes += name.utf8.count + text.utf8.count
            // The entry's path is only put together for an error.
            let entry = { NodeReader(node: key, path: "\(reader.path)[\(name)]") }
            if let problem = ManifestLimits.keyProblem(name) { throw entry().fail("\(label ? "label" : "annotation") key \(problem)") }
            if label, let problem = ManifestLimits.labelValueProblem(text) { throw entry().fail("the value \(problem)") }
        }
        return bytes
    }

    /// Whether `text` reads `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339 in UTC, whole seconds: Kubernetes'
    /// `metav1.Time`), the form in which two times compare as their text does.
    static func isTimestamp(_ text: String) -> Bool {
        let pattern = Array("0000-00-00T00:00:00Z".utf8)
        let bytes = Array(text.utf8)
        guard bytes.count == pattern.count else { return false }
        return zip(bytes, pattern).allSatisfy { byte, expected in
            expected == UInt8(ascii: "0") ? (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) : byte == expected
        }
    }
}
