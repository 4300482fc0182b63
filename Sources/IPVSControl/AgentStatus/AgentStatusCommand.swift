#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `ipvsctl status`: the health of the backends that ipvs-agent checks, read from the agent's
/// `/status` over HTTP. Not an ipvsadm command: it is recognised only as the first word, where
/// ipvsadm accepts no operand, so every ipvsadm command line keeps its meaning.
struct AgentStatusCommand: Equatable {
    /// ipvs-agent's default `--metrics-address`.
    static let defaultAddress = "127.0.0.1:10249"

    var address = defaultAddress
    var output = OutputFormat.text
    /// Show only the Services matching this (`namespace/name`, `namespace/name:port`, `10.96.0.10:80`).
    var service: String?
    var wantsHelp = false

    static let help = """
    Usage:
      ipvsctl status [--agent-address HOST:PORT] [--service SERVICE] [--output text|json]

    Shows what ipvs-agent's health checks decided, per virtual service: each backend's weight in the
    kernel, its check, state (up, down or unknown), since when, the last check's result and latency,
    and the Service's quorum (health-quorum) with its fallback server. Read from the agent's /status
    (served on its --metrics-address); nothing is changed.

    Options:
      --agent-address HOST:PORT   the agent's --metrics-address (default \(defaultAddress))
      --service SERVICE           only Services matching namespace/name, namespace/name:port or VIP:port
      --output text|json          a table (default) or JSON (snake_case, stable field order)
      --help, -h                  this help

    Examples:
      ipvsctl status
      ipvsctl status --agent-address [fd00::1]:10249 --service default/web
      ipvsctl status --output json | jq '.services[].backends[] | select(.state != "up")'

    Exit status: 0 when the status was shown, 1 when the agent could not be reached or answered
    something else than its status, 2 for a bad command line.

    """

    /// Parses the words after `status`.
    static func parse(_ arguments: [String]) throws(UsageError) -> AgentStatusCommand {
        var command = AgentStatusCommand()
        var seen: Set<String> = []
        var words = arguments[...]
        while let word = words.popFirst() {
            var name = word
            var value: String?
            if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
                name = String(word[..<equals])
                value = String(word[word.index(after: equals)...])
            }
            func argument() throws(UsageError) -> String {
                if let value { return value }
                guard let next = words.popFirst() else { throw UsageError("status: \(name) needs a value", suggestHelp: true) }
                return next
            }
            if ["--agent-address", "--output", "--service"].contains(name) {
                guard seen.insert(name).inserted else { throw UsageError("status: \(name) given more than once") }
            }
            switch name {
            case "-h", "--help":
                command.wantsHelp = true
            case "--agent-address":
                let address = try argument()
                guard AgentHTTPClient.split(address) != nil else {
                    throw UsageError("status: --agent-address: expected HOST:PORT (127.0.0.1:10249, [::1]:10249), got \"\(address)\"")
                }
                command.address = address
            case "--output":
                let text = try argument()
                guard let output = OutputFormat(rawValue: text) else {
                    throw UsageError("status: --output: expected text or json, got \"\(text)\"")
                }
                command.output = output
            case "--service":
                command.service = try argument()
            default:
                throw UsageError("status: unknown option or argument \"\(word)\"; see `\(IPVSControl.programName) status --help'",
                                 suggestHelp: word.hasPrefix("-"))
            }
        }
        return command
    }

    /// Runs `ipvsctl status …` and returns the exit status.
    static func run(_ arguments: [String], environment: ControlEnvironment) -> Int32 {
        let command: AgentStatusCommand
        do {
            command = try parse(arguments)
        } catch {
            environment.writeError("\(IPVSControl.programName): \(error.message)\n")
            return error.status
        }
        if command.wantsHelp {
            environment.writeOutput(Array(help.utf8))
            return ExitStatus.success
        }
        do {
            let body = try environment.fetchAgentStatus(command.address)
            let json: JSONValue
            do {
                json = try JSONValue.parse(body)
            } catch {
                throw AgentFetchError(message: "\(command.address) answered GET /status with something else than JSON (\(error)); is it ipvs-agent's --metrics-address?")
            }
            let report = try AgentStatusReader.read(json)
            let formatter = AgentStatusFormatter(report: report, address: command.address, filter: command.service,
                                                 now: environment.currentTime())
            environment.writeOutput(command.output == .json ? formatter.json().bytes : formatter.text().bytes)
            return ExitStatus.success
        } catch let error as AgentFetchError {
            environment.writeError("\(IPVSControl.programName): \(error.message)\n")
            return ExitStatus.listingFailed
        } catch {
            environment.writeError("\(IPVSControl.programName): \(error)\n")
            return ExitStatus.listingFailed
        }
    }
}
