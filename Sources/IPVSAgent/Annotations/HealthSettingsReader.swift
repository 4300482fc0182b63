import Foundation
import HealthCheck
import IPVS

// MARK: - HealthSettingsReader

/// The values of one set of health settings, read one type at a time; a bad value becomes an error naming
/// the setting.
struct HealthSettingsReader {
    let values: [HealthSetting: String]
    let source: HealthSettingsSource

    func has(_ setting: HealthSetting) -> Bool { values[setting] != nil }

    func raw(_ setting: HealthSetting) -> String? { values[setting] }

    /// Calls `body` with the setting's value when it is present.
    func value(_ setting: HealthSetting, _ body: (String) throws(HealthSettingsError) -> Void) throws(HealthSettingsError) {
        if let value = values[setting] { try body(value) }
    }

    func error(_ setting: HealthSetting, _ value: String, _ problem: String) -> HealthSettingsError {
        .setting(setting, value: value, problem: problem)
    }

    /// `text` without the white space around it.
    static func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

    // MARK: - Values

    func duration(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> Duration {
        guard let duration = DurationText.parse(text) else {
            throw error(setting, text, "is not a duration; \(DurationText.expected)")
        }
        return duration
    }

    func integer(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> Int {
        guard let value = Int(Self.trimmed(text)) else {
            throw error(setting, text, "is not a whole number; use e.g. \"2\"")
        }
        return value
    }

    func port(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> UInt16 {
        guard let value = UInt16(Self.trimmed(text)), value != 0 else {
            throw error(setting, text, "is not a port number; use 1 to 65535")
        }
        return value
    }

    /// `0.1` or `10%`.
    func fraction(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> Double {
        let trimmed = Self.trimmed(text)
        let value = trimmed.hasSuffix("%") ? Double(trimmed.dropLast()).map { $0 / 100 } : Double(trimmed)
        guard let value, value >= 0, value <= 1 else {
            throw error(setting, text, "is not a fraction between 0 and 1; use e.g. 0.1 or 10%")
        }
        return value
    }

    func boolean(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> Bool {
        switch Self.trimmed(text).lowercased() {
        case "true": return true
        case "false": return false
        default: throw error(setting, text, "is not a boolean; use true or false")
        }
    }

    func choice<Choice: RawRepresentable<String>>(_ text: String, _ setting: HealthSetting, _ choices: [Choice]) throws(HealthSettingsError) -> Choice {
        guard let choice = Choice(rawValue: Self.trimmed(text).lowercased()) else {
            throw error(setting, text, "is not one of \(choices.map(\.rawValue).joined(separator: ", "))")
        }
        return choice
    }

    /// `200-399` or `200`.
    func statusRange(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> ClosedRange<Int> {
        let parts = Self.trimmed(text).split(separator: "-", omittingEmptySubsequences: false)
        let numbers = parts.compactMap { Int(Self.trimmed(String($0))) }
        guard numbers.count == parts.count, (1...2).contains(numbers.count),
              let low = numbers.first, let high = numbers.last, low <= high
        else {
            throw error(setting, text, "is not a status range; use e.g. 200-399 or 200")
        }
        return low...high
    }

    /// A JSON array of strings, or words separated by spaces (no quoting).
    func argv(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> [String] {
        guard let arguments = Self.commandLine(text) else {
            throw error(setting, text, "is not a JSON array of strings; use e.g. [\"/usr/local/bin/check\", \"--fast\"]")
        }
        return arguments
    }

    /// `10.0.0.9:8080` or `[fd00::9]:8080`.
    func endpoint(_ text: String, _ setting: HealthSetting) throws(HealthSettingsError) -> FallbackServer {
        guard let server = FallbackServer(endpoint: text) else {
            throw error(setting, text, "is not an address and port; use e.g. 10.0.0.9:8080 or [fd00::9]:8080")
        }
        return server
    }

    /// The program and arguments of `text`: a JSON array of strings, or words separated by spaces (no quoting);
    /// `nil` for a `[` that does not start a JSON array of strings.
    static func commandLine(_ text: String) -> [String]? {
        let trimmed = trimmed(text)
        if trimmed.hasPrefix("[") {
            return try? JSONDecoder().decode([String].self, from: Data(trimmed.utf8))
        }
        return trimmed.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    // MARK: - Validation errors

    /// A ``HealthCheckConfiguration/validate()`` error as the error of the setting that set the field, when
    /// one did; an error in a default value is the defaults' error.
    func settingError(for validation: HealthCheckConfigurationError) -> HealthSettingsError {
        guard let setting = HealthSetting(validationField: validation.field), let value = raw(setting) else {
            return .defaults(validation)
        }
        return error(setting, value, validation.problem)
    }
}
