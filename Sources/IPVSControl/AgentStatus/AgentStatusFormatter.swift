import AgentStatus

/// Prints ipvs-agent's `/status` per virtual service: each backend's kernel weight next to its
/// health verdict, and the Service's quorum.
struct AgentStatusFormatter {
    /// One virtual service with everything known about it.
    struct Group {
        var service: String
        var kubernetesService: String?
        var scheduler: String?
        var quorum: ServiceQuorumStatus?
        var rows: [Row]
    }

    /// One real server or checked backend.
    struct Row {
        var address: String
        var weight: Int?
        var draining = false
        var health: BackendHealthStatus?
        var isFallback = false
    }

    let report: AgentStatus
    let address: String
    let filter: String?
    /// Seconds since 1970, for ages; `nil` leaves them out.
    let now: Int?

    // MARK: - Grouping

    /// The virtual services in the agent's order, then those only known to the checker.
    var groups: [Group] {
        var groups: [Group] = report.services.map { service in
            Group(service: service.service, kubernetesService: service.kubernetesService, scheduler: service.scheduler,
                  quorum: nil, rows: service.realServers.map { Row(address: $0.address, weight: Int($0.weight), draining: $0.draining) })
        }
        func index(_ service: String, _ kubernetesService: String) -> Int {
            if let found = groups.firstIndex(where: { $0.service == service }) { return found }
            groups.append(Group(service: service, kubernetesService: kubernetesService, scheduler: nil, quorum: nil, rows: []))
            return groups.count - 1
        }
        for backend in report.health {
            let group = index(backend.service, backend.kubernetesService)
            if groups[group].kubernetesService == nil || groups[group].kubernetesService?.isEmpty == true {
                groups[group].kubernetesService = backend.kubernetesService
            }
            if let row = groups[group].rows.firstIndex(where: { $0.address == backend.backend }) {
                groups[group].rows[row].health = backend
            } else {
                groups[group].rows.append(Row(address: backend.backend, weight: nil, health: backend))
            }
        }
        for quorum in report.quorum {
            let group = index(quorum.service, quorum.kubernetesService)
            groups[group].quorum = quorum
            for row in groups[group].rows.indices where groups[group].rows[row].address == quorum.fallback {
                groups[group].rows[row].isFallback = true
            }
        }
        guard let filter else { return groups }
        return groups.filter { Self.matches($0, filter) }
    }

    /// `default/web` matches every port of the Service; `default/web:http`, `10.96.0.10:80` and
    /// `TCP 10.96.0.10:80` match one virtual service.
    static func matches(_ group: Group, _ filter: String) -> Bool {
        if group.service == filter || group.service.split(separator: " ").last.map(String.init) == filter { return true }
        guard let name = group.kubernetesService else { return false }
        return name == filter || name.hasPrefix(filter + ":")
    }

    // MARK: - Text

    func text() -> TextBuffer {
        let groups = groups
        var out = TextBuffer()
        let checked = groups.flatMap(\.rows).compactMap(\.health)
        let states = Dictionary(grouping: checked, by: \.state).mapValues(\.count)
        let counts = ["up", "down", "unknown"].compactMap { state in states[state].map { "\($0) \(state)" } }
        out.write("ipvs-agent at \(address): \(groups.count) virtual service\(groups.count == 1 ? "" : "s"), "
                  + "\(checked.count) backend\(checked.count == 1 ? "" : "s") checked"
                  + (counts.isEmpty ? "" : " (\(counts.joined(separator: ", ")))") + "\n")
        if let filter = report.packetFilter { out.write(Self.packetFilterLine(filter) + "\n") }
        if groups.isEmpty, let filter { out.write("no virtual service matches \"\(filter)\"\n") }
        for group in groups {
            out.write("\n\(group.service)")
            let details = [group.kubernetesService, group.scheduler].compactMap { $0 }.filter { !$0.isEmpty }
            if !details.isEmpty { out.write("  \(details.joined(separator: "  "))") }
            out.write("\n")
            if let quorum = group.quorum { out.write("  \(Self.quorumLine(quorum))\n") }
            let header = ["BACKEND", "WEIGHT", "CHECK", "STATE", "SINCE", "LATENCY", "LAST RESULT"]
            let lines = [header] + group.rows.map(cells)
            let widths = header.indices.map { column in lines.map { $0[column].utf8.count }.max() ?? 0 }
            for line in lines {
                out.write("  ")
                for column in line.indices.dropLast() { out.left(line[column], widths[column] + 2) }
                out.write(line[line.count - 1] + "\n")
            }
        }
        return out
    }

    /// `nftables table inet ipvs-agent: in step; 1 whole write, 4 updates, 0 refused; elements: accepted-v4 3, vips-v4 2`.
    static func packetFilterLine(_ filter: PacketFilterStatus) -> String {
        let state = filter.synced ? "in step" : "NOT in step (the next sync writes it whole)"
        let elements = filter.elements.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        return "nftables table \(filter.table): \(state); \(filter.replacements) whole write\(filter.replacements == 1 ? "" : "s"), "
            + "\(filter.updates) update\(filter.updates == 1 ? "" : "s"), \(filter.failures) refused; "
            + "elements: \(elements.isEmpty ? "none" : elements.joined(separator: ", "))"
    }

    /// `quorum 2 (fallback 10.244.9.9:8080): LOST, 1 of 3 healthy; serving from the fallback only`.
    static func quorumLine(_ quorum: ServiceQuorumStatus) -> String {
        let policy = quorum.fallback.map { "fallback \($0)" } ?? quorum.policy
        let state = "\(quorum.healthy) of \(quorum.configured) healthy"
        guard quorum.quorumLost else { return "quorum \(quorum.minimumHealthy) (\(policy)): met, \(state)" }
        let effect = quorum.fallback == nil ? "every backend kept at its configured weight" : "serving from the fallback only"
        return "quorum \(quorum.minimumHealthy) (\(policy)): LOST, \(state); \(effect)"
    }

    private func cells(_ row: Row) -> [String] {
        let weight = row.weight.map { "\($0)" + (row.draining ? " draining" : "") } ?? "absent"
        guard let health = row.health else {
            return [row.address, weight, "-", "-", "-", "-", row.isFallback ? "(fallback server)" : "(not checked)"]
        }
        let since = health.since.isEmpty ? "-" : health.since + (age(health.since).map { " (\($0) ago)" } ?? "")
        let latency = health.lastLatencyMilliseconds.map { JSONWriter.thousandths($0) + " ms" } ?? "-"
        return [row.address, weight, health.check, health.state, since, latency, health.lastReason ?? "-"]
    }

    /// `3m12s`: the time since an ISO 8601 UTC instant (`2026-11-30T23:10:15Z`).
    func age(_ instant: String) -> String? {
        guard let now, let then = Self.epochSeconds(instant) else { return nil }
        let seconds = max(0, now - then)
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(seconds % 60)s" }
        if seconds < 86400 { return "\(seconds / 3600)h\(seconds % 3600 / 60)m" }
        return "\(seconds / 86400)d\(seconds % 86400 / 3600)h"
    }

    /// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SSZ` (fractions ignored); `nil` for anything else.
    static func epochSeconds(_ instant: String) -> Int? {
        let digits = instant.utf8.map { Int($0) - 48 }
        guard digits.count >= 20, instant.hasSuffix("Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard (0...9).contains(digits[index]) else { return nil }
                value = value * 10 + digits[index]
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146097 + dayOfEra - 719468
        return days * 86400 + hour * 3600 + minute * 60 + second
    }

    // MARK: - JSON

    func json() -> TextBuffer {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("agent", address)
        writer.beginArray("services")
        for group in groups {
            writer.beginObject()
            writer.field("service", group.service)
            writer.field("kubernetes_service", group.kubernetesService)
            writer.field("scheduler", group.scheduler)
            if let quorum = group.quorum {
                writer.beginObject("quorum")
                writer.field("minimum_healthy", Int64(quorum.minimumHealthy))
                writer.field("healthy", Int64(quorum.healthy))
                writer.field("configured", Int64(quorum.configured))
                writer.field("policy", quorum.policy)
                writer.field("fallback", quorum.fallback)
                writer.field("lost", quorum.quorumLost)
                writer.endObject()
            } else {
                writer.field("quorum", nil as String?)
            }
            writer.beginArray("backends")
            for row in group.rows {
                writer.beginObject()
                writer.field("address", row.address)
                writer.field("weight", row.weight.map(Int64.init))
                writer.field("draining", row.draining)
                writer.field("fallback", row.isFallback)
                writer.field("check", row.health?.check)
                writer.field("state", row.health?.state)
                writer.field("since", row.health?.since)
                writer.field("last_result", row.health?.lastReason)
                writer.field("latency_ms", thousandths: row.health?.lastLatencyMilliseconds)
                writer.field("consecutive_successes", row.health.map { Int64($0.consecutiveSuccesses) })
                writer.field("consecutive_failures", row.health.map { Int64($0.consecutiveFailures) })
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        if let filter = report.packetFilter {
            writer.beginObject("nftables")
            writer.field("table", filter.table)
            writer.field("synced", filter.synced)
            writer.beginObject("elements")
            for (name, count) in filter.elements.sorted(by: { $0.key < $1.key }) { writer.field(name, Int64(count)) }
            writer.endObject()
            writer.field("replacements", Int64(filter.replacements))
            writer.field("updates", Int64(filter.updates))
            writer.field("failures", Int64(filter.failures))
            writer.endObject()
        } else {
            writer.field("nftables", nil as String?)
        }
        writer.endObject()
        return writer.finish()
    }
}
