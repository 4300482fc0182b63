// MARK: - Duration text

/// Durations as Go's `time.ParseDuration` reads them and `time.Duration.String` writes them: `500ms`, `30s`,
/// `1m0s`, `1h2m3s`, `1.5s`. Kubernetes and kubeadm write durations this way (`syncPeriod: 30s`), so flags,
/// the configuration file and annotations all use this one grammar.
public enum DurationText {
    /// The grammar in one phrase, for error messages.
    public static let expected = "use a number and a unit (ns, us, ms, s, m, h), as Go writes durations: 500ms, 30s, 1m30s"

    /// Parses a sequence of `<decimal><unit>` parts (`1h2m3.5s`), or `0` alone; `nil` for anything else.
    /// A bare number other than `0` is refused because its unit would be a guess; so is a negative duration
    /// (no setting takes one) and one beyond about 292 years (Go's limit).
    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingWhitespace())
        if rest.first == "+" { rest = rest.dropFirst() }
        if rest == "0" { return .zero }
        guard !rest.isEmpty else { return nil }
        var total: Int64 = 0
        while !rest.isEmpty {
            let whole = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(whole.count)
            var fraction = Substring()
            if rest.first == "." {
                rest = rest.dropFirst()
                fraction = rest.prefix { $0.isASCII && $0.isNumber }
                rest = rest.dropFirst(fraction.count)
            }
            guard !whole.isEmpty || !fraction.isEmpty else { return nil }
            let unit = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            rest = rest.dropFirst(unit.count)
            guard let perUnit = nanosecondsPerUnit[String(unit)],
                  let part = nanoseconds(whole: whole, fraction: fraction, perUnit: perUnit) else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(part)
            guard !overflow else { return nil }
            total = sum
        }
        return .nanoseconds(total)
    }

    /// Go's spelling of `duration`: `0s`, `1.5µs`, `500ms`, `2s`, `1.05s`, `1m30s`, `2m0s`, `1h0m0s`.
    public static func format(_ duration: Duration) -> String {
        let total = duration.nanoseconds
        guard total != 0 else { return "0s" }
        let sign = total < 0 ? "-" : ""
        let magnitude = total.magnitude
        if magnitude < 1_000_000_000 {
            // Below a second Go picks the largest unit that keeps an integer part: ns, µs or ms.
            let (unit, scale): (String, UInt64) = magnitude < 1_000 ? ("ns", 1) : magnitude < 1_000_000 ? ("µs", 1_000) : ("ms", 1_000_000)
            return sign + decimal(magnitude, scale: scale) + unit
        }
        let hours = magnitude / 3_600_000_000_000
        let minutes = magnitude / 60_000_000_000 % 60
        let seconds = decimal(magnitude % 60_000_000_000, scale: 1_000_000_000) + "s"
        if hours > 0 { return "\(sign)\(hours)h\(minutes)m\(seconds)" }
        if minutes > 0 { return "\(sign)\(minutes)m\(seconds)" }
        return sign + seconds
    }

    // MARK: - Parts

    private static let nanosecondsPerUnit: [String: Int64] = [
        "ns": 1, "us": 1_000, "\u{00B5}s": 1_000, "\u{03BC}s": 1_000, "ms": 1_000_000,
        "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]

    /// `whole.fraction` units in nanoseconds, digits past a nanosecond dropped as Go drops them; nil on overflow.
    private static func nanoseconds(whole: Substring, fraction: Substring, perUnit: Int64) -> Int64? {
        var value: Int64 = 0
        for digit in whole {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.addingReportingOverflow(Int64(digit.asciiValue! - 48))
            guard !o1, !o2 else { return nil }
            value = next
        }
        let (scaled, overflow) = value.multipliedReportingOverflow(by: perUnit)
        guard !overflow else { return nil }
        var part: Int64 = 0
        var place = perUnit
        for digit in fraction {
            place /= 10
            guard place > 0 else { break }
            part += Int64(digit.asciiValue! - 48) * place
        }
        let (sum, o3) = scaled.addingReportingOverflow(part)
        return o3 ? nil : sum
    }

    /// `value / scale` with the fraction's trailing zeros dropped: `1500, 1000` is `1.5`.
    private static func decimal(_ value: UInt64, scale: UInt64) -> String {
        let fraction = value % scale
        guard fraction != 0 else { return "\(value / scale)" }
        var digits = String(fraction + scale).dropFirst()
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(value / scale).\(digits)"
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
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? .max : sum
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map(index(after:)) ?? start
        return self[start..<Swift.max(start, end)]
    }
}
