import ArgumentParser
import Logging

/// The log output format (`--log-format`).
public enum LogFormat: String, CaseIterable, Sendable {
    case text
    case json
}

enum LogSetup {
    /// Bootstraps swift-log once per process (the executable's job).
    static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in handler(format: format, level: level, label: label) }
    }

    /// The handler of one logger: both formats escape what a value could forge a line with.
    static func handler(format: LogFormat, level: Logger.Level, label: String) -> any LogHandler {
        var handler: any LogHandler = switch format {
        case .json: JSONLogHandler(label: label)
        case .text: TextLogHandler(label: label)
        }
        handler.logLevel = level
        return handler
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}
