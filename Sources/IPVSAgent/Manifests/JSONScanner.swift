/// JSON text (RFC 8259) read into a `YAMLTree`, the tree the manifests' decoder reads: what the API
/// server sends.
///
/// Why not libyaml, which reads JSON too (JSON is YAML): at start the API source reads a large
/// cluster's lists, tens of megabytes of JSON, and libyaml, made for YAML's far larger grammar, spent
/// several times this reader's time on them. Why not a JSON library from
/// Debian: json-c and jansson build a tree of their own that would be copied into this one again, and
/// keep the last of a repeated key without a word; yajl, which streams like this reader, is unmaintained
/// since 2014 and gives its callbacks no positions, which the tree keeps (lines, and lengths for the object-size
/// limit). The nodes go through `YAMLTree.Builder`, so the reading limits, the key rules and duplicate
/// keys are checked in one place for both readers; `JSONScannerTests` holds the trees to libyaml's.
///
/// Where JSON and libyaml's YAML differ, this reader follows JSON: a surrogate pair in `\u` escapes
/// is one character (libyaml refuses it), and a raw tab or line break inside a string is refused
/// (libyaml takes it).
///
/// Fields no decoder reads (`Skip`) can be left out: their values are still checked (syntax,
/// characters, the nesting limit), but neither they nor their keys become nodes.
struct JSONScanner {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var line = 1
    /// UTF-8 continuation bytes before `position`: the tree's positions are in characters, as libyaml's.
    private var continuations = 0
    private var builder = YAMLTree.Builder()
    private let skip: Skip?
    /// With `skip`: the path to the value being read, one `Skip.number(of:)` per key (`Skip.entry`
    /// for a list's entry).
    private var path: [UInt8] = []
    /// The collections open inside a field being left out, plus one (0: none is being left out).
    private var skipping = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>, skip: Skip?) {
        self.bytes = bytes
        self.skip = skip
    }

    /// Reads the one value of `bytes` (none when they are only white space), without the fields `skip` names.
    static func read(_ bytes: UnsafeBufferPointer<UInt8>, skip: Skip? = nil) throws(YAMLError) -> YAMLTree {
        var scanner = JSONScanner(bytes, skip: skip)
        scanner.builder.entries.reserveCapacity(bytes.count / 12)
        scanner.builder.children.reserveCapacity(bytes.count / 12)
        scanner.builder.text.reserveCapacity(bytes.count)
        // A byte order mark, which JSON forbids writers and allows readers to skip.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            scanner.position = 3
            scanner.continuations = 2
        }
        scanner.skipSpace()
        if scanner.position < bytes.count {
            try scanner.value()
            scanner.skipSpace()
            guard scanner.position == bytes.count else { throw scanner.problem("more text after the JSON value") }
        }
        return YAMLTree(scanner.builder)
    }

    private var next: UInt8 { position < bytes.count ? bytes[position] : 0 }
    private var characterIndex: Int { position - continuations }

    private mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"): position += 1
            case UInt8(ascii: "\n"):
                position += 1
                line += 1
            case UInt8(ascii: "\r"):
                // `\r\n` is one line break, a lone `\r` one too (as libyaml counts them).
                position += 1
                if next != UInt8(ascii: "\n") { line += 1 }
            default: return
            }
        }
    }

    /// One value; its collections' values in turn (as deep as `YAMLTree.Builder.begin` lets them go).
    private mutating func value() throws(YAMLError) {
        switch next {
        case UInt8(ascii: "{"): try collection(.mapping, closing: UInt8(ascii: "}"))
        case UInt8(ascii: "["): try collection(.sequence, closing: UInt8(ascii: "]"))
        case UInt8(ascii: "\""): try string()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: throw problem("expected a value")
        }
    }

    private mutating func collection(_ kind: YAMLTree.Entry.Kind, closing: UInt8) throws(YAMLError) {
        if skipping > 0 {
            // Left out, but nested no deeper than a node may be.
            guard builder.open.count + skipping - 1 < ManifestLimits.depth else { throw .limit(YAMLTree.Builder.depthProblem, line: line) }
            skipping += 1
        } else {
            try builder.begin(kind, line: line, start: characterIndex)
        }
        position += 1
        skipSpace()
        if next == closing {
            position += 1
            return try end()
        }
        let what = kind == .mapping ? "an object" : "an array"
        // Whether the path is followed here, to find the fields to leave out.
        let follow = skip != nil && skipping == 0
        while true {
            var component = Skip.entry, leftOut = false
            if kind == .mapping {
                guard next == UInt8(ascii: "\"") else { throw problem("expected a key in double quotes in \(what)") }
                if follow, let skip, skip.leavesOut(keyAt: position, of: bytes, after: path) {
                    leftOut = true
                    skipping = 1
                }
                let name = try string()
                if follow, !leftOut, let skip { component = skip.number(of: name, in: bytes) }
                skipSpace()
                guard next == UInt8(ascii: ":") else { throw problem("expected ':' after a key") }
                position += 1
                skipSpace()
            }
            if follow, !leftOut { path.append(component) }
            try value()
            if leftOut {
                skipping = 0
            } else if follow {
                path.removeLast()
            }
            guard try another(closing: closing, what: what) else { return try end() }
        }
    }

    /// After a value in a collection: `true` after a ',' (another value follows), `false` after
    /// the collection's `closing` bracket.
    private mutating func another(closing: UInt8, what: String) throws(YAMLError) -> Bool {
        skipSpace()
        switch next {
        case UInt8(ascii: ","):
            position += 1
            skipSpace()
            return true
        case closing:
            position += 1
            return false
        default:
            throw problem("expected ',' or '\(Character(Unicode.Scalar(closing)))' after a value in \(what)")
        }
    }

    /// The collection whose closing bracket was just read ends.
    private mutating func end() throws(YAMLError) {
        if skipping > 0 {
            skipping -= 1
        } else {
            try builder.end(at: characterIndex)
        }
    }

    /// A string; returns where its text is in `bytes` when it has no escapes (else `nil`).
    @discardableResult
    private mutating func string() throws(YAMLError) -> Range<Int>? {
        let startLine = line, start = characterIndex
        position += 1 // the opening quote
        var run = position
        var ascii = true
        var escaped = false
        var unescaped: [UInt8] = [] // once an escape is met: the text so far, without its escapes
        while true {
            guard position < bytes.count else { throw problem("the text ends inside a string", line: startLine) }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                unescaped += UnsafeBufferPointer(rebasing: bytes[run..<position])
                try escape(into: &unescaped)
                run = position
                continue
            }
            guard byte >= 0x20 else { throw problem("a control character inside a string (JSON writes it as an escape, such as \\n or \\u0009)") }
            if byte >= 0x80 {
                ascii = false
                if byte < 0xC0 { continuations += 1 }
            }
            position += 1
        }
        let end = position
        position += 1 // the closing quote
        if escaped {
            unescaped += UnsafeBufferPointer(rebasing: bytes[run..<end])
            guard ascii || String(validating: unescaped, as: UTF8.self) != nil else { throw .characters(problem: "a string that is not UTF-8", offset: run) }
            guard skipping == 0 else { return nil } // left out, checked all the same
            try unescaped.withUnsafeBufferPointer { text throws(YAMLError) in
                // `\u` escapes may have written text beyond ASCII: the builder looks.
                try builder.scalar(text, plain: false, tag: YAMLTree.stringTagIndex, line: startLine, start: start, end: characterIndex)
            }
            return nil
        } else {
            let text = UnsafeBufferPointer(rebasing: bytes[run..<end])
            guard ascii || String(validating: text, as: UTF8.self) != nil else { throw .characters(problem: "a string that is not UTF-8", offset: run) }
            guard skipping == 0 else { return nil }
            try builder.scalar(text, ascii: ascii, plain: false, tag: YAMLTree.stringTagIndex, line: startLine, start: start, end: characterIndex)
            return run..<end
        }
    }

    /// The escape at `position` (its backslash), appended to `text` as UTF-8.
    private mutating func escape(into text: inout [UInt8]) throws(YAMLError) {
        position += 1
        guard position < bytes.count else { throw problem("the text ends inside a string") }
        let letter = next
        position += 1
        switch letter {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(letter)
        case UInt8(ascii: "b"): text.append(0x08)
        case UInt8(ascii: "f"): text.append(0x0C)
        case UInt8(ascii: "n"): text.append(0x0A)
        case UInt8(ascii: "r"): text.append(0x0D)
        case UInt8(ascii: "t"): text.append(0x09)
        case UInt8(ascii: "u"):
            var code = try hex()
            if (0xD800..<0xDC00).contains(code) {
                // A character beyond the first 65,536 is written as two escapes, a surrogate pair.
                guard next == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                    throw problem("a \\u escape of half a surrogate pair, without its other half")
                }
                position += 2
                let low = try hex()
                guard (0xDC00..<0xE000).contains(low) else { throw problem("a \\u escape of half a surrogate pair, without its other half") }
                code = 0x10000 + (code - 0xD800) << 10 + (low - 0xDC00)
            }
            guard let scalar = Unicode.Scalar(code) else { throw problem("a \\u escape of half a surrogate pair, without its other half") }
            text.append(contentsOf: UTF8.encode(scalar)!)
        default:
            position -= 1
            throw problem("an unknown escape in a string (JSON has \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t and \\u followed by 4 hexadecimal digits)")
        }
    }

    /// The 4 hexadecimal digits of a `\u` escape.
    private mutating func hex() throws(YAMLError) -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            let digit: UInt32 = switch next {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(next - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(next - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(next - UInt8(ascii: "A") + 10)
            default: throw problem("a \\u escape needs 4 hexadecimal digits")
            }
            code = code << 4 | digit
            position += 1
        }
        return code
    }

    /// A number as JSON writes it (`-`, integer part without leading zeros, fraction, exponent),
    /// kept as its text, a plain scalar as libyaml reads it.
    private mutating func number() throws(YAMLError) {
        let first = position, start = characterIndex
        func digits(_ scanner: inout JSONScanner) throws(YAMLError) {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(scanner.next) else { throw scanner.problem("expected a digit in a number") }
            while (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(scanner.next) { scanner.position += 1 }
        }
        if next == UInt8(ascii: "-") { position += 1 }
        if next == UInt8(ascii: "0") { position += 1 } else { try digits(&self) }
        if next == UInt8(ascii: ".") {
            position += 1
            try digits(&self)
        }
        if next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            position += 1
            if next == UInt8(ascii: "+") || next == UInt8(ascii: "-") { position += 1 }
            try digits(&self)
        }
        guard skipping == 0 else { return }
        try builder.scalar(UnsafeBufferPointer(rebasing: bytes[first..<position]), ascii: true, plain: true, tag: 0, line: line, start: start, end: characterIndex)
    }

    private mutating func literal(_ word: StaticString) throws(YAMLError) {
        let start = characterIndex
        let letters = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - position >= letters.count,
              UnsafeBufferPointer(rebasing: bytes[position..<position + letters.count]).elementsEqual(letters) else {
            throw problem("expected a value")
        }
        position += letters.count
        guard skipping == 0 else { return }
        try builder.scalar(letters, ascii: true, plain: true, tag: 0, line: line, start: start, end: characterIndex)
    }

    /// A syntax error at the current position: what was expected, and what was found at which byte.
    private func problem(_ what: String, line: Int? = nil) -> YAMLError {
        let found = position >= bytes.count ? "the end of the text"
            : (0x21..<0x7F).contains(bytes[position]) ? "'\(Character(Unicode.Scalar(bytes[position])))'"
            : "byte 0x" + String(bytes[position], radix: 16, uppercase: true)
        return .syntax(problem: "\(what); found \(found) at byte \(position + 1)", context: nil, contextLine: nil, line: line ?? self.line)
    }
}

extension JSONScanner {
    /// Fields to leave out of the tree, each named by the end of its path: keys, and `[]` for any
    /// entry of a list (`["metadata", "managedFields"]` leaves out `managedFields` in every mapping
    /// that is the value of a `metadata` key).
    struct Skip: Sendable {
        /// A list's entry in a path.
        static let entry: UInt8 = 0xFF
        /// The keys the paths name, in UTF-8: a key's number is its place here plus one (0: another key).
        private let names: [[UInt8]]
        /// Each path as numbers, its last one the key left out.
        private let paths: [[UInt8]]

        init(_ paths: [[String]]) {
            var names: [[UInt8]] = []
            self.paths = paths.map { path in
                path.map { component in
                    if component == "[]" { return Self.entry }
                    if let index = names.firstIndex(of: Array(component.utf8)) { return UInt8(index + 1) }
                    names.append(Array(component.utf8))
                    return UInt8(names.count)
                }
            }
            self.names = names
        }

        /// The number of the key whose text is `range` of `bytes` (0 for any other key, or one written with escapes).
        func number(of range: Range<Int>?, in bytes: UnsafeBufferPointer<UInt8>) -> UInt8 {
            guard let range else { return 0 }
            for (index, name) in names.enumerated() where name.count == range.count {
                if name.withUnsafeBufferPointer({ $0.elementsEqual(bytes[range]) }) { return UInt8(index + 1) }
            }
            return 0
        }

        /// Whether the key whose opening quote is at `position` of `bytes`, in the mapping at
        /// `path`, is to be left out: some path ends with `path`'s end and this key (written
        /// without escapes).
        func leavesOut(keyAt position: Int, of bytes: UnsafeBufferPointer<UInt8>, after path: [UInt8]) -> Bool {
            for skipped in paths where path.count >= skipped.count - 1 && path.suffix(skipped.count - 1).elementsEqual(skipped.dropLast()) {
                let name = names[Int(skipped.last!) - 1], end = position + 1 + name.count
                if end < bytes.count, bytes[end] == UInt8(ascii: "\""),
                   name.withUnsafeBufferPointer({ $0.elementsEqual(bytes[(position + 1)..<end]) }) {
                    return true
                }
            }
            return false
        }
    }
}

extension YAMLTree {
    /// Reads the JSON `bytes` (see `JSONScanner`) without the fields `skip` names, or throws the
    /// first syntax error, reading limit or duplicated key.
    static func parseJSON(_ bytes: [UInt8], skip: JSONScanner.Skip? = nil) throws(YAMLError) -> YAMLTree {
        try bytes.withUnsafeBufferPointer { buffer in Result { () throws(YAMLError) in try JSONScanner.read(buffer, skip: skip) } }.get()
    }
}
