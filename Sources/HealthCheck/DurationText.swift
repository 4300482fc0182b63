// MARK: - Duration text

/// Parses and prints durations the way annotations and logs write them: `500ms`, `2s`, `1.5s`, `1m30s`, `1h`.
enum DurationText {
    /// Parses one or more `<number><unit>` parts (units `ms`, `s`, `m`, `h`); `nil` when the text is not of
    /// that form. A bare number is rejected because its unit would be a guess.
    static func parse(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingWhitespace())
        guard !rest.isEmpty else { return nil }
        var total = Duration.zero
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, let value = Double(number), value.isFinite else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { $0.isASCII && $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let millisecondsPerUnit: Double
            switch unit {
            case "ms": millisecondsPerUnit = 1
            case "s": millisecondsPerUnit = 1_000
            case "m": millisecondsPerUnit = 60_000
            case "h": millisecondsPerUnit = 3_600_000
            default: return nil
            }
            let milliseconds = value * millisecondsPerUnit
            guard milliseconds < 1e12 else { return nil }
            total += .microseconds(Int64((milliseconds * 1_000).rounded()))
        }
        return total
    }

    /// `500ms`, `2s`, `1.5s`, `1m`, `90s`: the shortest exact form in ms or s (minutes when whole).
    static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1_000 + attoseconds / 1_000_000_000_000_000
        if milliseconds % 60_000 == 0, milliseconds != 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1_000 == 0, milliseconds != 0 { return "\(milliseconds / 1_000)s" }
        if milliseconds >= 1_000 {
            return "\(milliseconds / 1_000).\(String(String(milliseconds % 1_000 + 1_000).dropFirst()).trimmingTrailingZeros())s"
        }
        if milliseconds == 0, attoseconds > 0 {
            return "\(attoseconds / 1_000_000_000_000)us"
        }
        return "\(milliseconds)ms"
    }
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The duration in whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product + attoseconds / 1_000_000_000
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map(index(after:)) ?? start
        return self[start..<Swift.max(start, end)]
    }

    fileprivate func trimmingTrailingZeros() -> String {
        var text = String(self)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}
