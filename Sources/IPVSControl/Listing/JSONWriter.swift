/// A small streaming JSON writer: objects and arrays in the order written, so field order is
/// stable, and 64-bit counters written as exact integers.
struct JSONWriter {
    private(set) var out = TextBuffer()
    /// Per open container: whether it already has a member.
    private var hasMember: [Bool] = []
    private var indentation: Int { hasMember.count }
    private var pendingKey = false

    init() {}

    mutating func beginObject(_ key: String? = nil) { open(key, "{") }
    mutating func endObject() { close("}") }
    mutating func beginArray(_ key: String? = nil) { open(key, "[") }
    mutating func endArray() { close("]") }

    mutating func field(_ key: String, _ value: String?) { member(key) { $0.write(value.map(Self.quoted) ?? "null") } }
    mutating func field(_ key: String, _ value: UInt64?) { member(key) { $0.write(value.map(String.init) ?? "null") } }
    mutating func field(_ key: String, _ value: Int64?) { member(key) { $0.write(value.map(String.init) ?? "null") } }
    mutating func field(_ key: String, _ value: Bool) { member(key) { $0.write(value ? "true" : "false") } }
    /// A number with three decimals (`0.412`), or `null`.
    mutating func field(_ key: String, thousandths value: Double?) {
        member(key) { $0.write(value.map(Self.thousandths) ?? "null") }
    }
    mutating func field(_ key: String, strings: [String]) {
        member(key) { $0.write("[" + strings.map(Self.quoted).joined(separator: ", ") + "]") }
    }

    /// The document, with a final newline.
    mutating func finish() -> TextBuffer {
        out.write("\n")
        return out
    }

    // MARK: - Private

    private mutating func member(_ key: String?, _ body: (inout TextBuffer) -> Void) {
        separator()
        if let key { out.write(Self.quoted(key) + ": ") }
        body(&out)
    }

    private mutating func open(_ key: String?, _ bracket: String) {
        member(key) { $0.write(bracket) }
        hasMember.append(false)
    }

    private mutating func close(_ bracket: String) {
        let had = hasMember.removeLast()
        if had {
            out.write("\n")
            out.write(String(repeating: "  ", count: indentation))
        }
        out.write(bracket)
    }

    private mutating func separator() {
        guard !hasMember.isEmpty else { return }
        if hasMember[hasMember.count - 1] { out.write(",") }
        hasMember[hasMember.count - 1] = true
        out.write("\n")
        out.write(String(repeating: "  ", count: indentation))
    }

    /// `text` as a JSON string.
    /// `12.345`: a non-negative number rounded to three decimals, without Foundation's formatting.
    static func thousandths(_ value: Double) -> String {
        let scaled = Int((max(0, value) * 1000).rounded())
        let fraction = String(scaled % 1000)
        return "\(scaled / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
