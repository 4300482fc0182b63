import ArgumentParser

/// A duration on the command line: `30s`, `500ms`, `2m`, `1h`, or plain seconds (`30`).
public struct DurationText: ExpressibleByArgument, Sendable, Hashable, CustomStringConvertible {
    public var duration: Duration
    private let text: String

    public init?(argument: String) {
        let units: [(String, Duration)] = [("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600))]
        for (suffix, unit) in units where argument.hasSuffix(suffix) {
            guard let value = Double(argument.dropLast(suffix.count)), value >= 0 else { return nil }
            duration = unit * value
            text = argument
            return
        }
        guard let seconds = Double(argument), seconds >= 0 else { return nil }
        duration = .seconds(seconds)
        text = argument
    }

    public var description: String { text }
    public var defaultValueDescription: String { text }
}
