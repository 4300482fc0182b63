import IPVS
import Yams

/// A strict reader of one YAML node that knows its field path, for error messages.
///
/// Unlike `Codable`, it reports unknown fields (a typo such as `targetPrt` would otherwise be
/// silently ignored) and the line of every offending node.
struct NodeReader {
    let node: Node
    /// The path of the enclosing mapping or list, and this node's key or index in it: the full
    /// path is only put together when asked for (errors), not for every node read.
    private let parentPath: String
    private let component: Component

    private enum Component {
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

    init(node: Node, path: String) {
        self.node = node
        self.parentPath = path
        self.component = .none
    }

    private init(node: Node, parentPath: String, component: Component) {
        self.node = node
        self.parentPath = parentPath
        self.component = component
    }

    var line: Int? { node.mark?.line }

    /// Whether the node is an explicit null (`~`, `null` or an empty value).
    var isNull: Bool {
        guard case .scalar(let scalar) = node else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    func fail(_ message: String) -> FieldError {
        FieldError(path: path, line: line, message: message)
    }

    // MARK: - Structure

    /// The node as a mapping whose keys must all be in `known`.
    func mapping(known: Set<String>) throws -> MappingReader {
        guard case .mapping(let mapping) = node else { throw fail("expected a mapping, got \(kindName)") }
        var values: [String: NodeReader] = [:]
        let base = path
        for (key, value) in mapping {
            guard let name = key.string else { throw fail("expected text keys, got \(key)") }
            let child = NodeReader(node: value, parentPath: base, component: .key(name))
            guard known.contains(name) else {
                throw child.fail("unknown field; known fields here are \(known.sorted().joined(separator: ", "))")
            }
            if child.isNull { continue }
            values[name] = child
        }
        return MappingReader(reader: self, values: values)
    }

    /// The node as a sequence of nodes.
    func sequence() throws -> [NodeReader] {
        guard case .sequence(let sequence) = node else { throw fail("expected a list, got \(kindName)") }
        let base = path
        return sequence.enumerated().map { NodeReader(node: $1, parentPath: base, component: .index($0)) }
    }

    // MARK: - Scalars

    func string() throws -> String {
        guard case .scalar(let scalar) = node else { throw fail("expected text, got \(kindName)") }
        return scalar.string
    }

    /// YAML's plain booleans, as Yams reads them (`true`, `yes`, `on`, … in any case).
    func bool() throws -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else {
            throw fail("expected true or false, got \(describe)")
        }
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail("expected true or false, got \(describe)")
        }
    }

    func integer(in range: ClosedRange<Int>) throws -> Int {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Int(scalar.string) else {
            throw fail("expected a number, got \(describe)")
        }
        guard range.contains(value) else {
            throw fail("must be \(range.lowerBound)..\(range.upperBound), got \(value)")
        }
        return value
    }

    /// Whether the node is an unquoted integer (for Kubernetes' int-or-string fields).
    var isInteger: Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return Int(scalar.string) != nil
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
        guard ["TCP", "UDP", "SCTP"].contains(text), let value = TransportProtocol(name: text) else {
            throw fail("must be TCP, UDP or SCTP, got \"\(text)\"")
        }
        return value
    }

    /// A mapping of text to text (labels, annotations).
    func stringMap() throws -> [String: String] {
        guard case .mapping(let mapping) = node else { throw fail("expected a mapping, got \(kindName)") }
        var result: [String: String] = [:]
        for (key, value) in mapping {
            guard let name = key.string, case .scalar(let scalar) = value else {
                throw fail("expected text keys and text values")
            }
            result[name] = scalar.string
        }
        return result
    }

    private var kindName: String {
        switch node {
        case .scalar: "a scalar (\(describe))"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    private var describe: String {
        if case .scalar(let scalar) = node { return "\"\(scalar.string)\"" }
        return "a \(node.mapping != nil ? "mapping" : "list")"
    }
}

/// The fields of a mapping read by `NodeReader.mapping(known:)`; null fields count as absent.
struct MappingReader {
    let reader: NodeReader
    let values: [String: NodeReader]

    subscript(_ name: String) -> NodeReader? { values[name] }

    func required(_ name: String) throws -> NodeReader {
        guard let value = values[name] else {
            let path = reader.path.isEmpty ? name : "\(reader.path).\(name)"
            throw FieldError(path: path, line: reader.line, message: "required field is missing")
        }
        return value
    }

    func string(_ name: String) throws -> String? { try values[name]?.string() }
    func bool(_ name: String) throws -> Bool? { try values[name]?.bool() }
    func list(_ name: String) throws -> [NodeReader] { try values[name]?.sequence() ?? [] }
}
