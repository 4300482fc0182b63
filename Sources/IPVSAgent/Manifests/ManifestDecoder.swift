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
    /// The annotation that picks a Service's scheduler (`rr`, `wlc`, `mh`, … as ipvsadm names them).
    /// The prefix of every annotation the agent reads.
    public static let annotationPrefix = "ipvs.swift.dev/"
    public static let schedulerAnnotation = "ipvs.swift.dev/scheduler"
    /// The annotation that sets scheduler flags: a comma-separated list of `sh-fallback`, `sh-port`,
    /// `mh-fallback`, `mh-port` (the scheduler must support them) and `onepacket` (UDP).
    public static let schedulerFlagsAnnotation = "ipvs.swift.dev/scheduler-flags"

    /// Decodes the text of `file` (the name is only used in issues).
    public static func decode(_ text: String, file: String) -> ManifestDecoding {
        var result = ManifestDecoding()
        let documents: [YAMLNode]
        do {
            documents = try YAMLTree.parse(text).roots
        } catch {
            result.unreadable = true
            result.issues.append(ManifestIssue(file: file, line: error.line, message: "not valid YAML or JSON: \(error.summary)"))
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

    private static func decodeObject(_ reader: NodeReader, kind: String, apiVersion: String, file: String,
                                     document: Int, into result: inout ManifestDecoding) {
        // Kept with the object, for problems found while mapping it.
        let location = ManifestLocation(file: file, document: document, line: reader.line)
        do {
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

    struct Metadata {
        var name: ObjectName
        var labels: [String: String]
        var annotations: [String: String]
        /// `creationTimestamp` as the API server writes it (`2024-05-01T12:00:00Z`).
        var creationTimestamp: String?
    }

    static func metadata(_ reader: NodeReader) throws -> Metadata {
        let fields = try reader.mapping(known: metadataFields)
        let name = try fields.required("name").string()
        guard !name.isEmpty else { throw try fields.required("name").fail("must not be empty") }
        var creationTimestamp: String?
        if let field = fields["creationTimestamp"] {
            let text = try field.string()
            guard isTimestamp(text) else {
                throw field.fail("must be a UTC time as the API server writes it (2024-05-01T12:00:00Z), got \"\(text)\"")
            }
            creationTimestamp = text
        }
        return Metadata(name: ObjectName(namespace: try fields.string("namespace") ?? "default", name: name),
                        labels: try fields["labels"]?.stringMap() ?? [:],
                        annotations: try fields["annotations"]?.stringMap() ?? [:], creationTimestamp: creationTimestamp)
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
