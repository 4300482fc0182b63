import IPVS

/// ipvsctl: the ipvsadm-compatible command line, as a library so tests run whole command lines.
///
/// ```swift
/// let status = IPVSControl.run(["-Ln"])          // prints like `ipvsadm -Ln`
/// let status = IPVSControl.run(["-L", "--output", "json"])
/// ```
public enum IPVSControl {
    /// The name used in messages.
    public static let programName = "ipvsctl"
    /// `ipvsctl --version`: first ipvsadm's line, in its shape (`ipvsadm v1.31 2019/12/24 (compiled with
    /// popt and IPVS v1.2.1)`, the release whose behaviour ipvsctl follows; scripts that read it keep
    /// working), with ipvsctl in the option parser's place, then ipvsctl's own version.
    public static let version = """
        ipvsadm v1.31 2019/12/24 (compiled with \(programName) and IPVS v\(ProjectVersion.ipvsProtocol.versionString))
        \(programName) \(ProjectVersion.current) (swift-ipvs)
        """

    /// Runs one command line (`arguments` without the program name) and returns the exit status.
    public static func run(_ arguments: [String], environment: ControlEnvironment = .system) -> Int32 {
        if arguments.contains(where: { $0 == "--generate-completion-script" || $0.hasPrefix("--generate-completion-script=") }) {
            return CompletionCommand.run(arguments, environment: environment)
        }
        // Not an ipvsadm command line: ipvsadm takes no operand first.
        if arguments.first == "status" {
            return AgentStatusCommand.run(Array(arguments.dropFirst()), environment: environment)
        }
        let invocation: Invocation
        do {
            invocation = try InvocationParser.parse(arguments)
        } catch {
            var message = "\(programName): \(error.message)\n"
            if error.suggestHelp { message += "Try `\(programName) -h' or '\(programName) --help' for more information.\n" }
            environment.writeError(message)
            return error.status
        }
        let runner = CommandRunner(environment: environment)
        do {
            try runner.execute(invocation)
            return ExitStatus.success
        } catch let error as UsageError {
            environment.writeError("\(programName): \(error.message)\n")
            return ExitStatus.usage
        } catch let failure as ControlFailure {
            environment.writeError(failure.message.isEmpty ? "" : "\(programName): \(failure.message)\n")
            return failure.status
        } catch {
            environment.writeError("\(programName): \(error)\n")
            return ExitStatus.changeFailed
        }
    }
}
