import IPVS

/// A strict reader of one YAML node that knows its field path, for error messages.
///
/// Unlike `Codable`, it reports unknown fields (a typo such as `targetPrt` would otherwise be
/// silently ignored) and the line of every offending node.
///
/// Reading is on the hot path of a cold start (every field of thousands of objects), so a
/// mapping's pairs are gone through once (no dictionary or set per mapping; its fields are then
/// found among the pairs kept), lists are read in place, and text is put together for error
/// messages only (a field path is built when asked for).
struct NodeReader {
    let node: YAMLNode
    /// The path of the enclosing mapping or list, and this node's key or index in it: the full
    /// path is only put together when asked for (errors), not for every node read.
    private let parentPath: String
    private let component: Component

    fileprivate enum Component {
        case none
        case key(String)
        case index(Int)
    }

    /// The field path of the node (`spec.ports[1].port`).
    var path: String {
        switch component {
        case .none: parentPath
        case .key(let name): parentPath.isEmpty ? name : "\(parentPath).\(name)"
        case .index(let index): "\(parentPath)[\(index)]"
        }
    }

    init(node: YAMLNode, path: String) {
        self.node = node
        self.parentPath = path
        self.component = .none
    }

    fileprivate init(node: YAMLNode, parentPath: String, component: Component) {
        self.node = node
        self.parentPath = parentPath
        self.component = component
    }

    var line: Int? { node.line }

    /// The path of an object's fields within its document: nothing, or `items[N].` in a list.
    var fieldPrefix: String { path.isEmpty ? "" : path + "." }

    /// Whether the node is an explicit null (`~`, `null` or an empty value).
    var isNull: Bool { Self.isNull(node) }

    static func isNull(_ node: YAMLNode) -> Bool {
        guard node.isPlain, let text = node.scalar else { return false }
        switch text {
        case "", "~", "null", "Null", "NULL": return true
        default: return false
        }
    }

    /// The text of a scalar node; `nil` for a collection.
    static func text(_ node: YAMLNode) -> String? { node.scalar }

    /// The text of `node[key]` (see `value(of:in:)`), if it is a scalar.
    static func text(of key: String, in node: YAMLNode) -> String? {
        value(of: key, in: node).flatMap(text)
    }

    /// `node[key]` as Yams answers it for a mapping: the last pair whose key is the scalar `key`
    /// that resolves to text (no tag, `!` or `!!str`); nothing for lists and scalars.
    static func value(of key: String, in node: YAMLNode) -> YAMLNode? {
        guard node.kind == .mapping else { return nil }
        var position = node.count
        while position > 0 {
            position -= 1
            let pair = node.pair(position)
            if pair.key.isScalar(key), pair.key.resolvedTag == YAMLTree.stringTag { return pair.value }
        }
        return nil
    }

    func fail(_ message: String) -> FieldError {
        FieldError(path: path, line: line, message: message)
    }

    // MARK: - Structure

    /// The node as a mapping whose keys must all be in `known`.
    func mapping(known: FieldNames) throws -> MappingReader {
        guard node.kind == .mapping else { throw fail("expected a mapping, got \(kindName)") }
        // One pass over the pairs: every key checked, the non-null fields kept in order for the
        // lookups that follow.
        var fields: [(name: String, node: YAMLNode)] = []
        fields.reserveCapacity(node.count)
        for position in 0..<node.count {
            let (key, value) = node.pair(position)
            guard key.kind == .scalar else {
                throw fail("expected text keys, got \(key.kind == .mapping ? "a mapping" : "a list")")
            }
            // The known name the key is, found from the key's bytes: no string is made for it.
            guard let name = known.name(of: key) else {
                let child = NodeReader(node: value, parentPath: path, component: .key(key.scalar ?? ""))
                throw child.fail("unknown field; known fields here are \(known.sorted.joined(separator: ", "))")
            }
            if !Self.isNull(value) { fields.append((name, value)) }
        }
        return MappingReader(reader: self, fields: fields, base: path)
    }

    /// The node as a sequence of nodes.
    func sequence() throws -> ListReader {
        guard node.kind == .sequence else { throw fail("expected a list, got \(kindName)") }
        return ListReader(node: node, base: path)
    }

    // MARK: - Scalars

    func string() throws -> String {
        guard let text = node.scalar else { throw fail("expected text, got \(kindName)") }
        return text
    }

    /// YAML's plain booleans, as Yams reads them (`true`, `yes`, `on`, … in any case).
    func bool() throws -> Bool {
        guard node.isPlain, let text = node.scalar else {
            throw fail("expected true or false, got \(describe)")
        }
        guard let value = Self.boolean(text) else { throw fail("expected true or false, got \(describe)") }
        return value
    }

    /// `true`, `yes`, `on`, `false`, `no` or `off` in any case (as `lowercased()` compares them),
    /// else `nil`.
    static func boolean(_ text: String) -> Bool? {
        // ASCII text (all of it in real manifests) is folded byte by byte into one number, without
        // a lowercased copy; text of more than five ASCII characters is none of the words.
        var folded: UInt64 = 0, count = 0
        for byte in text.utf8 {
            guard byte < 0x80 else { return lowercasedBoolean(text) }
            count += 1
            if count > 5 { return nil }
            folded = folded << 8 | UInt64(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte)
        }
        switch (count, folded) {
        case (4, 0x74_72_75_65), (3, 0x79_65_73), (2, 0x6F_6E): return true // true, yes, on
        case (5, 0x66_61_6C_73_65), (2, 0x6E_6F), (3, 0x6F_66_66): return false // false, no, off
        default: return nil
        }
    }

    /// `boolean` the plain way, for text that is not all ASCII.
    static func lowercasedBoolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    func integer(in range: ClosedRange<Int>) throws -> Int {
        guard node.isPlain, let text = node.scalar, let value = Int(text) else {
            throw fail("expected a number, got \(describe)")
        }
        guard range.contains(value) else {
            throw fail("must be \(range.lowerBound)..\(range.upperBound), got \(value)")
        }
        return value
    }

    /// Whether the node is an unquoted integer (for Kubernetes' int-or-string fields).
    var isInteger: Bool {
        guard node.isPlain, let text = node.scalar else { return false }
        return Int(text) != nil
    }

    func port() throws -> UInt16 {
        UInt16(try integer(in: 1...65535))
    }

    func ipAddress() throws -> IPAddress {
        let text = try string()
        guard let address = IPAddress(text) else { throw fail("not an IPv4 or IPv6 address: \"\(text)\"") }
        return address
    }

    func transportProtocol() throws -> TransportProtocol {
        let text = try string()
        switch text {
        case "TCP": return .tcp
        case "UDP": return .udp
        case "SCTP": return .sctp
        default: throw fail("must be TCP, UDP or SCTP, got \"\(text)\"")
        }
    }

    /// A mapping of text to text (labels, annotations).
    func stringMap() throws -> [String: String] {
        guard node.kind == .mapping else { throw fail("expected a mapping, got \(kindName)") }
        var result: [String: String] = [:]
        for position in 0..<node.count {
            let pair = node.pair(position)
            guard let name = pair.key.scalar, let text = pair.value.scalar else {
                throw fail("expected text keys and text values")
            }
            result[name] = text
        }
        return result
    }

    private var kindName: String {
        switch node.kind {
        case .scalar: "a scalar (\(describe))"
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    private var describe: String {
        if let text = node.scalar { return "\"\(text)\"" }
        return "a \(node.kind == .mapping ? "mapping" : "list")"
    }
}

/// The field names a mapping may have, in a form that is cheap to test a key against.
struct FieldNames: ExpressibleByArrayLiteral {
    let names: [String]
    /// The names' UTF-8, to find a key among them from its bytes.
    private let bytes: [[UInt8]]
    /// For error messages: the names in order.
    var sorted: [String] { names.sorted() }

    init(arrayLiteral names: String...) {
        self.names = names
        bytes = names.map { Array($0.utf8) }
    }

    func contains(_ name: String) -> Bool { names.contains(name) }

    /// The name that the scalar `key` is, if it is one of these (as strings compare).
    func name(of key: YAMLNode) -> String? {
        key.tree.withText(of: key.index) { text, isASCII in
            // The names are ASCII: an ASCII key is one of them only byte for byte; other text is
            // compared as strings (canonical equivalence).
            guard isASCII else {
                let text = String(decoding: text, as: UTF8.self)
                return names.first { $0 == text }
            }
            for (index, name) in bytes.enumerated() where name.count == text.count {
                if name.withUnsafeBufferPointer({ $0.elementsEqual(text) }) { return names[index] }
            }
            return nil
        }
    }
}

/// The fields of a mapping read by `NodeReader.mapping(known:)`; null fields count as absent.
///
/// A Kubernetes mapping has a handful of fields: they are looked up by going through them, the
/// last one of a name winning (as in the mapping, where a name can repeat with other tags).
struct MappingReader {
    let reader: NodeReader
    /// The non-null fields, in the mapping's order.
    let fields: [(name: String, node: YAMLNode)]
    /// The mapping's path, the parent of its fields'.
    let base: String

    subscript(_ name: String) -> NodeReader? {
        guard let index = fields.lastIndex(where: { $0.name == name }) else { return nil }
        return NodeReader(node: fields[index].node, parentPath: base, component: .key(name))
    }

    func required(_ name: String) throws -> NodeReader {
        guard let value = self[name] else {
            let path = reader.path.isEmpty ? name : "\(reader.path).\(name)"
            throw FieldError(path: path, line: reader.line, message: "required field is missing")
        }
        return value
    }

    func string(_ name: String) throws -> String? { try self[name]?.string() }
    func bool(_ name: String) throws -> Bool? { try self[name]?.bool() }
    func list(_ name: String) throws -> ListReader { try self[name]?.sequence() ?? ListReader(node: nil, base: "") }
}

/// The entries of a list read by `NodeReader.sequence()`, each a reader with its index in the path.
struct ListReader: RandomAccessCollection {
    /// The list; `nil` for an absent one (no list node is made up for it).
    let node: YAMLNode?
    /// The list's path, the parent of its entries'.
    let base: String

    var startIndex: Int { 0 }
    var endIndex: Int { node?.count ?? 0 }

    subscript(position: Int) -> NodeReader {
        NodeReader(node: node!.element(position), parentPath: base, component: .index(position))
    }
}
