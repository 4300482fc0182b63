/// A command line or input that ipvsctl refuses before talking to the kernel.
///
/// Exits with status 2, as ipvsadm does for the values it checks itself; an unknown option or a
/// missing option value (which ipvsadm's option library reports) exits with 255, as there.
struct UsageError: Error, Equatable, Sendable, CustomStringConvertible {
    var message: String
    /// Whether to suggest `--help` after the message (for malformed option syntax).
    var suggestHelp: Bool

    init(_ message: String, suggestHelp: Bool = false) {
        self.message = message
        self.suggestHelp = suggestHelp
    }

    /// The exit status: 255 for option syntax errors, 2 for everything else.
    var status: Int32 { suggestHelp ? ExitStatus.badOption : ExitStatus.usage }

    var description: String { message }
}

/// An operation that failed after the command line was accepted (the kernel refused, a file was
/// unreadable), with the exit status ipvsadm uses for that case.
struct ControlFailure: Error, Sendable, CustomStringConvertible {
    var message: String
    var status: Int32

    /// ipvsadm exits 255 when the kernel refuses a change.
    static let changeFailedStatus: Int32 = 255
    /// ipvsadm exits 1 when a listing fails.
    static let listingFailedStatus: Int32 = 1

    var description: String { message }
}

/// Exit statuses of `ipvsctl`, the same as ipvsadm's.
public enum ExitStatus {
    /// Success.
    public static let success: Int32 = 0
    /// A listing (or reading a file) failed.
    public static let listingFailed: Int32 = ControlFailure.listingFailedStatus
    /// The command line or the `-R` input is invalid; nothing was changed.
    public static let usage: Int32 = 2
    /// The kernel refused a change; with `-R`, would refuse one (nothing was applied) or refused
    /// one (what was applied was undone, or the message says what was not).
    public static let changeFailed: Int32 = ControlFailure.changeFailedStatus
    /// An unknown option, or an option without its value (ipvsadm's popt errors).
    public static let badOption: Int32 = 255
}
