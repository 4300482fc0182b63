import Logging

/// The text log (`--log-format text`): swift-log's `StreamLogHandler` on standard error, with the
/// control characters of the message and of every metadata value escaped (`\n`, `\u{1B}`), so
/// that a value from a manifest (an object's name, a file's) can never start a line of its own or
/// drive the terminal. The JSON log escapes them as JSON.
struct TextLogHandler: LogHandler {
    private var stream: StreamLogHandler
    /// Kept here, not in `stream`, so that its values are escaped with the event's.
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) {
        stream = StreamLogHandler.standardError(label: label)
    }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var escaped = event
        escaped.message = "\(Self.escaped(event.message.description))"
        escaped.metadata = fields.isEmpty ? nil : fields.mapValues { .string(Self.escaped("\($0)")) }
        stream.log(event: escaped)
    }

    /// `text` with control characters (C0, DEL, C1), line and paragraph separators, format
    /// characters (bidirectional overrides) and backslashes escaped as Swift writes them.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if needsEscape(scalar) { result += scalar.escaped(asASCII: true) } else { result.unicodeScalars.append(scalar) }
        }
        return result
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\\" }
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator, .format: return true
        default: return false
        }
    }
}
