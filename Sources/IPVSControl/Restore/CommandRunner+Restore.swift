import IPVS

/// `-R`: the script is read and checked (`RestoreScript`), then walked over the kernel's table
/// as one dump gave it (`RestoreCheck`), then sent in batches; if the kernel still refuses a
/// line, the table read before is put back (`TableRollback`), so `-R` applies all or nothing.
extension CommandRunner {
    func restore() throws {
        let input: [UInt8]
        do {
            input = try environment.readStandardInput()
        } catch {
            throw ControlFailure(message: "\(error)", status: ExitStatus.listingFailed)
        }
        let script: RestoreScript
        do {
            script = try RestoreScript.parse(input, catalog: environment.schedulerCatalog())
        } catch {
            throw UsageError(Self.problemList(error.messages)
                + "\n\(IPVSControl.programName): nothing was applied (\(Self.count(error.messages.count, "bad line")))")
        }
        let backend = try open()
        let saved = try reading { try backend.table() }
        let changesTimeouts = script.steps.contains { if case .setTimeouts = $0.step { true } else { false } }
        let savedTimeouts = changesTimeouts ? try reading { try backend.timeouts() } : nil

        let refusals = RestoreCheck.refusals(of: script, against: saved)
        if !refusals.isEmpty {
            let lines = RestoreScript.lines(input)
            throw ControlFailure(
                message: Self.problemList(refusals.map { "\(RestoreScript.location($0.line, lines[$0.line - 1])): \($0.error)" })
                    + "\n\(IPVSControl.programName): nothing was applied: \(Self.count(refusals.count, "line")) would be refused"
                    + " by the IPVS table as it is now",
                status: ExitStatus.changeFailed)
        }

        var failures: [(line: Int, message: String)] = []
        var zeroed = false, deleted = false
        var pending: [(line: Int, operation: IPVSOperation)] = []
        func flush() {
            guard !pending.isEmpty else { return }
            let results = backend.apply(pending.map(\.operation))
            for (entry, result) in zip(pending, results) {
                switch result {
                case .success:
                    switch entry.operation {
                    case .zero: zeroed = true
                    case .flush, .deleteService, .deleteRealServer: deleted = true
                    default: break
                    }
                case .failure(let error):
                    failures.append((entry.line, message(for: error, operation: entry.operation)))
                }
            }
            pending.removeAll()
        }
        for (line, step) in script.steps {
            switch step {
            case .change(let operation):
                pending.append((line, operation))
            case .setTimeouts(let timeouts):
                flush()
                guard failures.isEmpty else { break }
                do {
                    try backend.setTimeouts(timeouts)
                } catch {
                    failures.append((line, "\(error)"))
                }
            }
            if !failures.isEmpty { break }
        }
        flush()
        guard !failures.isEmpty else { return }

        let lines = RestoreScript.lines(input)
        let refused = Self.problemList(failures.map { "\(RestoreScript.location($0.line, lines[$0.line - 1])): \($0.message)" })
        let outcome = undo(backend, to: saved, timeouts: savedTimeouts, zeroed: zeroed, deleted: deleted)
        throw ControlFailure(
            message: refused + "\n\(IPVSControl.programName): the kernel refused \(Self.count(failures.count, "line")) of "
                + "\(script.steps.count); " + outcome,
            status: ExitStatus.changeFailed)
    }

    /// Puts `saved` (and `timeouts`, when the script set them) back; says what became of the table.
    /// `zeroed` and `deleted`: whether the lines applied zeroed counters or deleted services or
    /// real servers (whose counters the kernel drops).
    private func undo(_ backend: any IPVSBackend, to saved: [ServiceTableEntry], timeouts: Timeouts?,
                      zeroed: Bool, deleted: Bool) -> String {
        var problems: [String] = []
        do {
            let rollback = TableRollback(from: try backend.table(), to: saved)
            for (operation, result) in zip(rollback.operations, backend.apply(rollback.operations)) {
                if case .failure(let error) = result { problems.append(message(for: error, operation: operation)) }
            }
            if let timeouts { try backend.setTimeouts(timeouts) }
            // Read back: the claim below is about the kernel's table, not about the answers.
            let left = TableRollback(from: try backend.table(), to: saved).operations
            if !left.isEmpty {
                problems.append("\(Self.count(left.count, "change")) still needed to restore the table, the first: \(left[0])")
            }
            if let timeouts, try backend.timeouts() != timeouts { problems.append("the timeouts differ from before") }
        } catch {
            problems.append("\(error)")
        }
        guard problems.isEmpty else {
            return "undoing the lines applied failed, so the IPVS table is not as it was before -R (list it with -Sn):\n"
                + "\(IPVSControl.programName): " + Self.problemList(problems)
        }
        var text = "every change of this -R was undone: the IPVS table is as it was before"
        switch (deleted, zeroed) {
        case (true, true): text += ", except for counters: those of what -C, -D and -d deleted, and those -Z zeroed, start again from zero"
        case (true, false): text += ", except for counters: those of what -C, -D and -d deleted start again from zero"
        case (false, true): text += ", except for counters: those -Z zeroed start again from zero"
        case (false, false): break
        }
        return text
    }

    /// Messages joined for printing, one per line after the program name, the first 50 of them.
    private static func problemList(_ messages: [String]) -> String {
        let shown = messages.prefix(50)
        var text = shown.joined(separator: "\n\(IPVSControl.programName): ")
        if messages.count > shown.count { text += "\n\(IPVSControl.programName): … and \(messages.count - shown.count) more" }
        return text
    }

    /// `1 line`, `3 lines`.
    private static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }
}
