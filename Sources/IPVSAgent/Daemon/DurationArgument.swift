import ArgumentParser
import HealthCheck

/// A duration on the command line, in the grammar of annotations and the configuration file
/// (``HealthCheck/DurationText``): `500ms`, `30s`, `1m30s`, `1h`.
public struct DurationArgument: ExpressibleByArgument, Sendable, Hashable, CustomStringConvertible {
    public var duration: Duration

    public init(_ duration: Duration) { self.duration = duration }

    public init?(argument: String) {
        guard let duration = DurationText.parse(argument) else { return nil }
        self.duration = duration
    }

    public var description: String { DurationText.format(duration) }
    public var defaultValueDescription: String { description }
}
