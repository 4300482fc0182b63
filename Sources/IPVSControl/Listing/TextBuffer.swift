/// Output text built as bytes, with the `printf` paddings ipvsadm uses (`%-28s`, `%8s`).
struct TextBuffer {
    private(set) var bytes: [UInt8] = []

    init() {}

    mutating func write(_ text: String) { bytes.append(contentsOf: text.utf8) }
    mutating func write(_ text: Substring) { bytes.append(contentsOf: text.utf8) }
    mutating func write(bytes more: some Sequence<UInt8>) { bytes.append(contentsOf: more) }

    /// `%-<width>s`: `text`, then spaces up to `width` bytes.
    mutating func left(_ text: String, _ width: Int) {
        let count = text.utf8.count
        write(text)
        if count < width { bytes.append(contentsOf: repeatElement(0x20, count: width - count)) }
    }

    /// `%<width>s`: spaces up to `width` bytes, then `text`.
    mutating func right(_ text: String, _ width: Int) {
        let count = text.utf8.count
        if count < width { bytes.append(contentsOf: repeatElement(0x20, count: width - count)) }
        write(text)
    }

    mutating func clear() { bytes.removeAll(keepingCapacity: true) }

    /// `text` cut to at most `count` bytes, as ipvsadm cuts its fixed C buffers.
    static func truncated(_ text: String, to count: Int) -> String {
        text.utf8.count <= count ? text : String(decoding: text.utf8.prefix(count), as: UTF8.self)
    }
}
