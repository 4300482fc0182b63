#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// A log handler printing one JSON object per line on standard error (`--log-format json`), its keys sorted:
/// `{"label":"ipvs-agent","level":"info","message":"…","service":"TCP 10.96.0.10:80","time":"2026-12-03T09:30:00.123Z"}`.
///
/// Written by hand rather than with `ISO8601DateFormatter` and `JSONSerialization`: the reconciler logs
/// inside the pass it times (a drain starting, a drained endpoint removed), and making a formatter and a
/// serializer per line cost as much as the rest of an endpoint change.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var fields = self.metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var line = Self.line(seconds: Int(now.tv_sec), milliseconds: Int(now.tv_nsec) / 1_000_000, level: event.level,
                             label: label, message: event.message.description, metadata: fields)
        line.append("\n")
        Self.writeToStandardError(line)
    }

    // MARK: - Encoding

    /// One log line without its newline: `time` (UTC, milliseconds), `level`, `label`, `message` and every
    /// metadata value as a string, keys in sorted order. A metadata key of the same name replaces a
    /// standard one.
    static func line(seconds: Int, milliseconds: Int, level: Logger.Level, label: String, message: String,
                     metadata: Logger.Metadata) -> String {
        var fields: [(key: String, value: String)] = [
            ("label", label), ("level", level.rawValue), ("message", message),
            ("time", timestamp(seconds: seconds, milliseconds: milliseconds)),
        ]
        for (key, value) in metadata {
            let text = "\(value)"
            if let index = fields.firstIndex(where: { $0.key == key }) { fields[index].value = text } else { fields.append((key, text)) }
        }
        fields.sort { $0.key < $1.key }
        var line = "{"
        for (index, field) in fields.enumerated() {
            if index > 0 { line.append(",") }
            appendQuoted(field.key, to: &line)
            line.append(":")
            appendQuoted(field.value, to: &line)
        }
        line.append("}")
        return line
    }

    /// `2026-12-03T09:30:00.123Z`: ISO 8601 in UTC with milliseconds.
    static func timestamp(seconds: Int, milliseconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func digits(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return digits(parts.tm_year + 1900, 4) + "-" + digits(parts.tm_mon + 1, 2) + "-" + digits(parts.tm_mday, 2)
            + "T" + digits(parts.tm_hour, 2) + ":" + digits(parts.tm_min, 2) + ":" + digits(parts.tm_sec, 2)
            + "." + digits(Int32(milliseconds), 3) + "Z"
    }

    /// Appends `text` as a JSON string: quotes, backslashes and control characters escaped, the rest as is.
    static func appendQuoted(_ text: String, to line: inout String) {
        line.append("\"")
        var plain = true
        for unit in text.utf8 where unit < 0x20 || unit == 0x22 || unit == 0x5C {
            plain = false
            break
        }
        guard !plain else {
            line.append(text)
            line.append("\"")
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line.append("\\\"")
            case "\\": line.append("\\\\")
            case "\n": line.append("\\n")
            case "\r": line.append("\\r")
            case "\t": line.append("\\t")
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                line.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line.append("\"")
    }

    /// One `write` per line, so lines from several threads never interleave; errors are ignored (a log
    /// with nowhere to go must not stop the agent).
    private static func writeToStandardError(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
