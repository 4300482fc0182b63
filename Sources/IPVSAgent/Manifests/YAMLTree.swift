import CYAML
import Foundation

/// A YAML stream (YAML or JSON text, one document or several) read with libyaml into one flat tree;
/// the API server's JSON is read into the same tree by `JSONScanner`.
///
/// Why not Yams' `compose`, which wraps the same libyaml: a large cluster's manifests are millions
/// of nodes, and composing them into `Yams.Node`s (an enum of classes per node, a `Tag` object per
/// scalar, a dictionary of keys per mapping for its duplicate check) cost several times libyaml's
/// own parsing (Benchmarks/decode measures the decoding). Here libyaml's events go
/// straight into three arrays: one entry per node, the child indices of every collection, and the
/// scalars' text, each contiguous (a scalar's text becomes a string when it is read). The semantics the decoder relies on stay Yams' (see
/// `YAMLTreeTests`, which compares both): the same scalars, styles, tags, lines, aliases, and
/// duplicate keys as an error. Unlike Yams, a key must be a scalar (as for `kubectl`: a
/// Kubernetes object's keys are text), and reading stops at the first of `ManifestLimits`' reading
/// limits a text goes over (nesting, aliases, key length), before its cost is paid.
final class YAMLTree: Sendable {
    /// One node: 24 bytes, its text kept apart (a cluster's lists are millions of nodes, most of
    /// whose text the decoder never reads).
    struct Entry: Sendable {
        enum Kind: UInt8, Sendable { case scalar, mapping, sequence }
        var kind: Kind
        /// Whether a scalar was written plain (no quotes, not a block scalar): only plain scalars
        /// are numbers, booleans or null.
        var isPlain: Bool
        /// Whether a scalar's text is all ASCII (two such texts are the same text only when their
        /// bytes are).
        var isASCII: Bool
        /// The node's explicit tag in `YAMLTree.tags`; 0 for none.
        var tagIndex: UInt32
        /// The 1-based line where the node starts.
        var line: Int { Int(lineNumber) }
        var lineNumber: UInt32
        /// The length of the node's text in characters, from its first to its last (libyaml's marks).
        var length: UInt32
        /// A collection's children in `YAMLTree.children`: from `first`, `count` of them (a
        /// mapping's are key, value, key, value, …). A scalar's text in `YAMLTree.text`: from
        /// `first`, `count` bytes of UTF-8.
        var first: UInt32
        var count: UInt32
    }

    let entries: [Entry]
    let children: [UInt32]
    /// The scalars' text, UTF-8, one after the other.
    let text: [UInt8]
    /// The explicit tags as libyaml expands them (`tag:yaml.org,2002:int` for `!!int`), `!` for
    /// the non-specific one, `tag:yaml.org,2002:str` for a quoted scalar without a tag; each once,
    /// after an unused first one (`Entry.tagIndex` 0 is no tag).
    let tags: [String]
    /// The root node of each document, in order.
    let documents: [Int]

    /// The tree a builder has read.
    init(_ builder: Builder) {
        entries = builder.entries
        children = builder.children
        text = builder.text
        tags = builder.tags
        documents = builder.documents
    }

    /// The root node of each document, in order.
    var roots: [YAMLNode] { documents.map { YAMLNode(tree: self, index: $0) } }

    /// The text of the scalar at `index` (empty for a collection).
    func text(of index: Int) -> String {
        withText(of: index) { text, _ in String(decoding: text, as: UTF8.self) }
    }

    /// Whether the scalar at `index` is the text `other`, without making a string of it.
    func text(of index: Int, is other: String) -> Bool {
        guard entries[index].kind == .scalar else { return false }
        let otherIsASCII = other.utf8.allSatisfy { $0 < 0x80 }
        var other = other
        return other.withUTF8 { wanted in
            withText(of: index) { text, isASCII in Self.sameText(text, ascii: isASCII, wanted, ascii: otherIsASCII) }
        }
    }

    /// Whether two texts in UTF-8 are the same text as Swift compares strings (canonically
    /// equivalent): the same bytes, or for text beyond ASCII, equal strings.
    static func sameText(_ a: UnsafeBufferPointer<UInt8>, ascii aIsASCII: Bool, _ b: UnsafeBufferPointer<UInt8>, ascii bIsASCII: Bool) -> Bool {
        if a.count == b.count, a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 { return true }
        if aIsASCII && bIsASCII { return false }
        return String(decoding: a, as: UTF8.self) == String(decoding: b, as: UTF8.self)
    }

    /// `body` given the UTF-8 bytes of the scalar at `index` (none for a collection) and whether
    /// they are all ASCII.
    func withText<Result>(of index: Int, _ body: (UnsafeBufferPointer<UInt8>, _ isASCII: Bool) -> Result) -> Result {
        Self.withText(of: entries[index], in: text, body)
    }

    /// `body` given the UTF-8 bytes, in `text`, of the scalar `entry` (none for a collection) and
    /// whether they are all ASCII: for the tree and its builder.
    static func withText<Result>(of entry: Entry, in text: [UInt8], _ body: (UnsafeBufferPointer<UInt8>, _ isASCII: Bool) -> Result) -> Result {
        let count = entry.kind == .scalar ? Int(entry.count) : 0
        return text.withUnsafeBufferPointer { all in
            body(UnsafeBufferPointer(rebasing: all[Int(entry.first)..<Int(entry.first) + count]), entry.isASCII)
        }
    }

    /// The explicit tag of the node at `index`, `nil` for none.
    func tag(of index: Int) -> String? { Self.tag(entries[index].tagIndex, in: tags) }

    /// The tag at `index` of `tags` (a tree's or its builder's), `nil` for 0 (none).
    static func tag(_ index: UInt32, in tags: [String]) -> String? { index == 0 ? nil : tags[Int(index)] }

    /// The tag the node at `index` resolves to when no types are inferred from plain text (Yams'
    /// basic resolver): its explicit tag, else `str`, `map` or `seq` by kind.
    func resolvedTag(of index: Int) -> String { Self.resolvedTag(tag(of: index), kind: entries[index].kind) }

    /// Reads `text`, or throws the first syntax error, undefined alias or duplicated key.
    static func parse(_ text: String) throws(YAMLError) -> YAMLTree {
        var text = text
        text.makeContiguousUTF8() // native strings already are: libyaml reads the string's own bytes
        var builder = Builder()
        let read = { (bytes: UnsafeBufferPointer<UInt8>) in Result { () throws(YAMLError) in try builder.read(bytes) } }
        try (text.utf8.withContiguousStorageIfAvailable(read) ?? Array(text.utf8).withUnsafeBufferPointer(read)).get()
        return YAMLTree(builder)
    }
}

/// A node of a `YAMLTree`.
struct YAMLNode: Sendable {
    let tree: YAMLTree
    let index: Int

    var kind: YAMLTree.Entry.Kind { tree.entries[index].kind }
    var line: Int { tree.entries[index].line }
    /// The length of the node's text in characters.
    var length: Int { Int(tree.entries[index].length) }
    var isPlain: Bool { tree.entries[index].isPlain }
    var tag: String? { tree.tag(of: index) }

    /// The text of a scalar; `nil` for a collection.
    var scalar: String? {
        tree.entries[index].kind == .scalar ? tree.text(of: index) : nil
    }

    /// Whether the node is the scalar `text` (cheaper than comparing `scalar`).
    func isScalar(_ text: String) -> Bool { tree.text(of: index, is: text) }

    /// A mapping's number of pairs, a sequence's number of entries; 0 for a scalar.
    var count: Int {
        let entry = tree.entries[index]
        switch entry.kind {
        case .scalar: return 0
        case .mapping: return Int(entry.count) / 2
        case .sequence: return Int(entry.count)
        }
    }

    /// A mapping's key and value at `position` (0 ..< count).
    func pair(_ position: Int) -> (key: YAMLNode, value: YAMLNode) {
        let first = Int(tree.entries[index].first) + 2 * position
        return (YAMLNode(tree: tree, index: Int(tree.children[first])), YAMLNode(tree: tree, index: Int(tree.children[first + 1])))
    }

    /// A sequence's entry at `position` (0 ..< count).
    func element(_ position: Int) -> YAMLNode {
        YAMLNode(tree: tree, index: Int(tree.children[Int(tree.entries[index].first) + position]))
    }

    /// The tag the node resolves to when no types are inferred from plain text (Yams' basic
    /// resolver): its explicit tag, else `str`, `map` or `seq` by kind.
    var resolvedTag: String { tree.resolvedTag(of: index) }
}

/// Why a text is not YAML.
enum YAMLError: Error, Equatable {
    /// libyaml's scanner or parser refused the text (its problem, with the construct it was in).
    case syntax(problem: String, context: String?, contextLine: Int?, line: Int)
    /// The text has characters YAML does not allow (control characters).
    case characters(problem: String, offset: Int)
    case undefinedAlias(line: Int)
    /// Keys that appear twice in one mapping (sorted), and the line of the first one.
    case duplicatedKeys([String], line: Int)
    /// A mapping key that is a mapping or a sequence (or an alias of one).
    case complexKey(line: Int)
    /// The text goes over one of `ManifestLimits`' reading limits: what, in words with the limit.
    case limit(String, line: Int)
    case outOfMemory

    /// The line the error is at, when known.
    var line: Int? {
        switch self {
        case .syntax(_, _, _, let line), .undefinedAlias(let line), .duplicatedKeys(_, let line), .complexKey(let line),
             .limit(_, let line): line
        case .characters, .outOfMemory: nil
        }
    }

    /// One line that says what is wrong (the file and line are given apart).
    var summary: String {
        switch self {
        case .syntax(let problem, let context?, let contextLine?, _): "\(problem) (\(context) at line \(contextLine))"
        case .syntax(let problem, _, _, _): problem
        case .characters(let problem, let offset): "\(problem) (at byte \(offset))"
        case .undefinedAlias: "found undefined alias"
        case .duplicatedKeys(let keys, _): "duplicated key(s) \(keys.joined(separator: ", "))"
        case .complexKey: "a mapping key is a mapping or a list; keys of Kubernetes objects are text"
        case .limit(let what, _): what
        case .outOfMemory: "out of memory"
        }
    }
}

extension YAMLTree {
    static let stringTag = "tag:yaml.org,2002:str"
    /// `stringTag`'s index in every tree's `tags`.
    static let stringTagIndex: UInt32 = 1

    /// The tag a node of `kind` with the explicit `tag` resolves to (see `resolvedTag(of:)`).
    static func resolvedTag(_ tag: String?, kind: Entry.Kind) -> String {
        if let tag, tag != "!" { return tag }
        switch kind {
        case .scalar: return stringTag
        case .mapping: return "tag:yaml.org,2002:map"
        case .sequence: return "tag:yaml.org,2002:seq"
        }
    }

    /// Turns a reader's nodes (libyaml's events, or `JSONScanner`'s) into entries, one collection
    /// level at a time, with the reading limits and the key rules checked as they come.
    struct Builder {
        var entries: [Entry] = []
        var children: [UInt32] = []
        var text: [UInt8] = []
        var tags = ["", YAMLTree.stringTag]
        /// Each tag's index in `tags`.
        private var tagIndices = [YAMLTree.stringTag: YAMLTree.stringTagIndex]
        var documents: [Int] = []
        /// The children of the collections still open, innermost last.
        var pending: [UInt32] = []
        /// The open collections: their entry, where their children start in `pending`, their
        /// anchor, where their text starts, and their nodes so far with aliases expanded.
        var open: [(entry: Int, start: Int, anchor: String?, offset: Int, nodes: Int)] = []
        /// Anchors by name (the last one of a name wins, over the whole stream, as in Yams): the
        /// node, and its nodes with aliases expanded.
        var anchors: [String: (index: Int, nodes: Int)] = [:]
        /// Aliases read, and the nodes they stood for (see `ManifestLimits.aliasedNodes`).
        var aliases = 0
        var aliasedNodes = 0
        /// Where the last scalar, alias or flow collection ended (a block collection ends there too).
        var lastEnd = 0

        mutating func read(_ bytes: UnsafeBufferPointer<UInt8>) throws(YAMLError) {
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { throw .outOfMemory }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
            entries.reserveCapacity(bytes.count / 12)
            children.reserveCapacity(bytes.count / 12)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.error(of: parser) }
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT: return
                case YAML_SCALAR_EVENT:
                    let data = event.data.scalar
                    // libyaml hands out UTF-8 (the input is), which may hold NUL characters: counted, not C text.
                    try scalar(UnsafeBufferPointer(start: data.value, count: data.length),
                               plain: data.style == YAML_PLAIN_SCALAR_STYLE,
                               tag: data.quoted_implicit == 1 ? YAMLTree.stringTagIndex : tagIndex(Self.string(data.tag)),
                               anchor: Self.string(data.anchor), line: Self.line(event.start_mark),
                               start: event.start_mark.index, end: event.end_mark.index)
                case YAML_ALIAS_EVENT: try alias(event)
                case YAML_SEQUENCE_START_EVENT:
                    let start = event.data.sequence_start
                    try begin(.sequence, tag: start.implicit != 0 ? 0 : tagIndex(Self.string(start.tag)),
                              anchor: Self.string(start.anchor), line: Self.line(event.start_mark), start: event.start_mark.index)
                case YAML_MAPPING_START_EVENT:
                    let start = event.data.mapping_start
                    try begin(.mapping, tag: start.implicit != 0 ? 0 : tagIndex(Self.string(start.tag)),
                              anchor: Self.string(start.anchor), line: Self.line(event.start_mark), start: event.start_mark.index)
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    // A flow collection ends at its `]` or `}`; libyaml ends a block one where the next token
                    // starts (comments and blank lines after it included), so it ends with its last node.
                    try end(at: event.end_mark.index > event.start_mark.index ? event.end_mark.index : nil)
                default: continue // stream and document starts and ends
                }
            }
        }

        private static func line(_ mark: yaml_mark_t) -> Int { Int(mark.line) + 1 }

        static let depthProblem = "nested deeper than \(ManifestLimits.depth) levels (the limit)"

        private func checkNodes(line: Int) throws(YAMLError) {
            guard entries.count < ManifestLimits.nodes else {
                throw .limit("more than \(ManifestLimits.nodes.grouped) nodes (the limit per file); split it into several files",
                             line: line)
            }
        }

        /// The index of `tag` in `tags` (added the first time); 0 for none.
        mutating func tagIndex(_ tag: String?) -> UInt32 {
            guard let tag else { return 0 }
            if let index = tagIndices[tag] { return index }
            tags.append(tag)
            tagIndices[tag] = UInt32(tags.count - 1)
            return UInt32(tags.count - 1)
        }

        /// A scalar of UTF-8 `bytes` at `line`, from character `start` to `end` of the text; `tag`
        /// is an index from `tagIndex(_:)`.
        mutating func scalar(_ bytes: UnsafeBufferPointer<UInt8>, ascii: Bool? = nil, plain: Bool, tag: UInt32, anchor: String? = nil,
                             line: Int, start: Int, end: Int) throws(YAMLError) {
            let index = entries.count
            try checkNodes(line: line)
            // Offsets are 32 bits; a text that large is far over the file and body limits anyway.
            guard text.count + bytes.count <= Int(UInt32.max) else { throw .limit("more than 4 GiB of text", line: line) }
            entries.append(Entry(kind: .scalar, isPlain: plain, isASCII: ascii ?? bytes.allSatisfy { $0 < 0x80 }, tagIndex: tag,
                                 lineNumber: UInt32(clamping: line),
                                 length: UInt32(clamping: end - start), first: UInt32(text.count), count: UInt32(bytes.count)))
            text.append(contentsOf: bytes)
            if let anchor { anchors[anchor] = (index, 1) }
            lastEnd = end
            try add(index, nodes: 1, line: line)
        }

        /// An alias is its anchor's node again: counted with the nodes it stands for, which every
        /// reader of the tree goes through again.
        private mutating func alias(_ event: yaml_event_t) throws(YAMLError) {
            let name = String(cString: event.data.alias.anchor)
            let line = Self.line(event.start_mark)
            guard let (target, nodes) = anchors[name] else { throw .undefinedAlias(line: line) }
            lastEnd = event.end_mark.index
            aliases += 1
            aliasedNodes += nodes
            guard aliases <= ManifestLimits.aliases else {
                throw .limit("more than \(ManifestLimits.aliases.grouped) aliases (the limit per file)", line: line)
            }
            guard aliasedNodes <= ManifestLimits.aliasedNodes else {
                throw .limit("aliases stand for more than \(ManifestLimits.aliasedNodes.grouped) nodes (the limit per file, "
                             + "counting an alias' nodes each time it is used)", line: line)
            }
            try add(target, nodes: nodes, line: line)
        }

        /// A collection that starts at `line`, at character `start` of the text; `tag` is an index
        /// from `tagIndex(_:)`.
        mutating func begin(_ kind: Entry.Kind, tag: UInt32 = 0, anchor: String? = nil, line: Int, start: Int) throws(YAMLError) {
            // Counted from the events: libyaml has no limit, and scanning deeper costs more per character.
            guard open.count < ManifestLimits.depth else {
                throw .limit(Self.depthProblem, line: line)
            }
            try checkNodes(line: line)
            open.append((entries.count, pending.count, anchor, start, 1))
            entries.append(Entry(kind: kind, isPlain: false, isASCII: true, tagIndex: tag, lineNumber: UInt32(clamping: line),
                                 length: 0, first: 0, count: 0))
        }

        /// The innermost open collection ends: at character `end` when it ends with a bracket, else
        /// where its last node ends.
        mutating func end(at end: Int?) throws(YAMLError) {
            let (index, start, anchor, offset, nodes) = open.removeLast()
            // Below `ManifestLimits.nodes` children, which 32 bits hold.
            entries[index].first = UInt32(children.count)
            entries[index].count = UInt32(pending.count - start)
            if let end { lastEnd = end }
            entries[index].length = UInt32(clamping: lastEnd - offset)
            children.append(contentsOf: pending[start...])
            pending.removeSubrange(start...)
            if entries[index].kind == .mapping { try checkDuplicates(index) }
            if let anchor { anchors[anchor] = (index, nodes) }
            try add(index, nodes: nodes, line: entries[index].line)
        }

        /// A node is complete: it is a child of the innermost open collection, or a document. A
        /// mapping's key must be a scalar no longer than `ManifestLimits.keyBytes`.
        private mutating func add(_ index: Int, nodes: Int, line: Int) throws(YAMLError) {
            let last = open.count - 1
            guard last >= 0 else { documents.append(index); return }
            if entries[open[last].entry].kind == .mapping, (pending.count - open[last].start) % 2 == 0 {
                guard entries[index].kind == .scalar else { throw .complexKey(line: line) }
                let bytes = Int(entries[index].count)
                guard bytes <= ManifestLimits.keyBytes else {
                    throw .limit("a key of \(bytes.grouped) bytes, longer than \(ManifestLimits.keyBytes.grouped) (the limit)", line: line)
                }
            }
            pending.append(UInt32(index))
            open[last].nodes += nodes
        }

        /// The text of the scalar at `index`.
        private func string(_ index: Int) -> String {
            YAMLTree.withText(of: entries[index], in: text) { text, _ in String(decoding: text, as: UTF8.self) }
        }

        /// Throws when a key of the mapping repeats: Kubernetes objects never repeat one, and which
        /// of the two would count is a guess the user should not have to make. Keys are scalars:
        /// two are the same when their text and resolved tag are.
        private func checkDuplicates(_ mapping: Int) throws(YAMLError) {
            let first = Int(entries[mapping].first), pairs = Int(entries[mapping].count) / 2
            guard pairs > 1 else { return }
            let keys = (0..<pairs).lazy.map { Int(children[first + 2 * $0]) }
            func same(_ a: Int, _ b: Int) -> Bool {
                let x = entries[a], y = entries[b]
                let sameText = YAMLTree.withText(of: x, in: text) { first, firstIsASCII in
                    YAMLTree.withText(of: y, in: text) { second, secondIsASCII in
                        YAMLTree.sameText(first, ascii: firstIsASCII, second, ascii: secondIsASCII)
                    }
                }
                return sameText && (x.tagIndex == y.tagIndex
                    || YAMLTree.resolvedTag(YAMLTree.tag(x.tagIndex, in: tags), kind: .scalar) == YAMLTree.resolvedTag(YAMLTree.tag(y.tagIndex, in: tags), kind: .scalar))
            }
            var duplicates: [Int] = []
            if pairs <= 16 {
                // A Kubernetes mapping has a handful of keys: each is compared with the ones before it, in place.
                for later in 1..<pairs {
                    let key = keys[later]
                    guard let other = keys[..<later].first(where: { same($0, key) }) else { continue }
                    // The first occurrence is the one reported.
                    if !duplicates.contains(where: { same($0, other) }) { duplicates.append(other) }
                }
            } else {
                // Many keys (labels, a hostile file): by text, so the work grows with the keys, not their square.
                var byText: [String: [Int]] = [:]
                for key in keys {
                    let text = string(key)
                    let earlier = byText[text, default: []]
                    if let other = earlier.first(where: { same($0, key) }) {
                        if !duplicates.contains(where: { same($0, other) }) { duplicates.append(other) }
                    } else {
                        byText[text, default: []].append(key)
                    }
                }
            }
            guard !duplicates.isEmpty else { return }
            // As Yams reports them: sorted by text, at the first one's line.
            let sorted = duplicates.map { (string($0), $0) }.sorted { $0.0 < $1.0 }
            throw .duplicatedKeys(sorted.map(\.0), line: entries[sorted[0].1].line)
        }

        private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            pointer.map { String(cString: $0) }
        }

        private static func error(of parser: yaml_parser_t) -> YAMLError {
            switch parser.error {
            case YAML_MEMORY_ERROR: return .outOfMemory
            case YAML_READER_ERROR:
                return .characters(problem: parser.problem.map { String(cString: $0) } ?? "unreadable text",
                                   offset: parser.problem_offset)
            default:
                let problem = parser.problem.map { String(cString: $0) } ?? "not YAML"
                // A libyaml with a depth limit of its own (newer than 0.2.5; Yams' copy) may see
                // the nesting before the events reach `ManifestLimits.depth`, which is lower.
                if problem.hasPrefix("Maximum nesting level reached") {
                    return .limit(depthProblem, line: Int(parser.problem_mark.line) + 1)
                }
                return .syntax(problem: problem,
                               context: parser.context.map { String(cString: $0) },
                               contextLine: parser.context == nil ? nil : Int(parser.context_mark.line) + 1,
                               line: Int(parser.problem_mark.line) + 1)
            }
        }
    }
}
