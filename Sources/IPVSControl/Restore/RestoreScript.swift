import IPVS

/// The input of `-R`: one ipvsadm command per line, as `-S` prints them.
///
/// Unlike ipvsadm, which runs each line as it reads it and stops at the first malformed one
/// (leaving the lines before it applied), the whole input is checked first; any problem is
/// reported with its line number and text (`location`) and nothing is applied. Blank lines are
/// skipped; `#` starts a comment (ipvsadm rejects comments); a leading `ipvsadm` or `ipvsctl`
/// word is ignored.
struct RestoreScript: Equatable {
    /// One accepted line.
    enum Step: Equatable {
        case change(IPVSOperation)
        case setTimeouts(Timeouts)
    }

    var steps: [(line: Int, step: Step)]

    static func == (lhs: RestoreScript, rhs: RestoreScript) -> Bool {
        lhs.steps.map(\.line) == rhs.steps.map(\.line) && lhs.steps.map(\.step) == rhs.steps.map(\.step)
    }

    /// Everything wrong with an input, one message per bad line.
    struct Problems: Error, Equatable {
        var messages: [String]
    }

    /// Parses and checks all of `input`; throws every problem found, each naming its line.
    static func parse(_ input: [UInt8], catalog: SchedulerCatalog? = nil) throws(Problems) -> RestoreScript {
        var steps: [(line: Int, step: Step)] = []
        var problems: [String] = []
        var lineNumber = 0
        for rawLine in lines(input) {
            lineNumber += 1
            // The common lines take the fast path; the rest, and every error, the general parser.
            let fast = RestoreFastPath.operation(rawLine)
            let words = fast == nil ? tokens(rawLine) : []
            guard fast != nil || !words.isEmpty else { continue }
            do throws(UsageError) {
                let invocation: Invocation
                if let fast { invocation = .change(fast) } else { invocation = try InvocationParser.parse(words) }
                switch invocation {
                case .change(let operation):
                    if let catalog, case .addService(let s) = operation, catalog.lacks(s.scheduler.rawValue) {
                        throw UsageError(catalog.unavailableMessage(s.scheduler.rawValue))
                    }
                    if let catalog, case .updateService(let s) = operation, catalog.lacks(s.scheduler.rawValue) {
                        throw UsageError(catalog.unavailableMessage(s.scheduler.rawValue))
                    }
                    steps.append((lineNumber, .change(operation)))
                case .setTimeouts(let timeouts):
                    steps.append((lineNumber, .setTimeouts(timeouts)))
                default:
                    throw UsageError("only -A -E -D -a -e -d -C -Z and --set belong in restore input, not \"\(words.joined(separator: " "))\"")
                }
            } catch {
                problems.append("\(location(lineNumber, rawLine)): \(error.message)")
            }
        }
        if !problems.isEmpty { throw Problems(messages: problems) }
        return RestoreScript(steps: steps)
    }

    /// The lines of `input`; line N is at index N - 1.
    static func lines(_ input: [UInt8]) -> [ArraySlice<UInt8>] {
        input.split(separator: 0x0A, omittingEmptySubsequences: false)
    }

    /// `line 12 (-a -t 10.0.0.1:80 -r 10.1.0.5 -w x)`: where a problem of the input is, for every
    /// message of `-R`. The text is trimmed, cut after 120 characters and shows control characters
    /// as `?`.
    static func location(_ number: Int, _ text: ArraySlice<UInt8>) -> String {
        let isBlank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0D }
        var trimmed = text.drop(while: isBlank)
        while let last = trimmed.last, isBlank(last) { trimmed = trimmed.dropLast() }
        var shown = String(decoding: trimmed, as: UTF8.self).unicodeScalars.map { scalar in
            scalar.value < 0x20 || scalar.value == 0x7F ? "?" : Character(scalar)
        }
        if shown.count > 120 { shown = shown.prefix(120) + ["…"] }
        return "line \(number) (\(String(shown)))"
    }

    /// The words of a line: split at blanks, a comment and a leading program name removed.
    static func tokens(_ line: ArraySlice<UInt8>) -> [String] {
        var words: [String] = []
        for word in line.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
            if word.first == 0x23 { break }  // '#'
            words.append(String(decoding: word, as: UTF8.self))
        }
        if let first = words.first, first == "ipvsadm" || first == "ipvsctl" { words.removeFirst() }
        return words
    }
}
