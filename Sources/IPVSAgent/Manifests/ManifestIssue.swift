/// A problem found in a manifest: what is wrong, in which file, document, object and field.
///
/// Its description reads like a compiler diagnostic:
/// `cluster.yaml:14: document 3 (Service default/web): spec.ports[1].port: must be 1..65535, got 70000`.
public struct ManifestIssue: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file the problem is in, as the user named it.
    public var file: String
    /// The 1-based index of the YAML document within the file, when known.
    public var document: Int?
    /// The 1-based line of the offending node, when known.
    public var line: Int?
    /// The object, as `Kind namespace/name`, when known.
    public var object: String?
    /// The field path within the object (`spec.ports[1].port`), when the problem is in one field.
    public var field: String?
    /// What is wrong and, where it helps, what to do.
    public var message: String

    public init(file: String, document: Int? = nil, line: Int? = nil, object: String? = nil,
                field: String? = nil, message: String) {
        self.file = file
        self.document = document
        self.line = line
        self.object = object
        self.field = field
        self.message = message
    }

    /// A problem with an object read at `location` (file, document and line; only the object
    /// and field without one).
    public init(at location: ManifestLocation?, object: String, field: String?, message: String) {
        self.init(file: location?.file ?? "", document: location?.document, line: location?.line, object: object,
                  field: field, message: message)
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        if !text.isEmpty { text += ":" }
        if let document {
            text += " document \(document)"
            if let object { text += " (\(object))" }
            text += ":"
        } else if let object {
            text += " \(object):"
        }
        if let field, !field.isEmpty { text += " \(field):" }
        return text + " " + message
    }
}

/// A problem in one field, raised while reading an object; the decoder adds file, document and object.
struct FieldError: Error {
    var path: String
    var line: Int?
    var message: String
}
