import Foundation

// MARK: - Measurement

/// What one run of the health workload measured.
struct Measurement {
    /// The checker process's CPU over the window, as a percentage of one core.
    var cpuPercent: Double
    /// Its resident memory at the end of the window.
    var rssMiB: Double
    /// Checks finished per second over the window (should be backends / interval).
    var checksPerSecond: Double
    /// Checks per second the configuration asks for: backends / interval.
    var targetRate: Double
    /// Kill-to-down times of the killed backends that went down, sorted, in seconds.
    var latencies: [Double]
    /// Killed backends never reported down.
    var missed: Int
    /// Backends reported down that were not killed.
    var falseDowns: Int
    /// `fall × interval + timeout`, in seconds.
    var boundSeconds: Double
    var intervalSeconds: Double
    var timeoutSeconds: Double
    var fall: Int
    var rise: Int

    var settings: String {
        "interval \(Int(intervalSeconds * 1_000)) ms, timeout \(Int(timeoutSeconds * 1_000)) ms, fall \(fall), rise \(rise)"
    }

    /// CPU time per check, in microseconds.
    var cpuMicrosecondsPerCheck: Double { checksPerSecond > 0 ? cpuPercent / 100 / checksPerSecond * 1e6 : 0 }

    /// The CPU the checker would use at the configured rate, as a percentage of one core: what a starved
    /// process (fewer checks per second than asked for, on a loaded host) would have needed.
    var projectedCPUPercent: Double { cpuMicrosecondsPerCheck * targetRate / 1e4 }

    /// The nearest-rank percentile `p` (0 to 100) of the latencies.
    func percentile(_ p: Double) -> Double? {
        guard !latencies.isEmpty else { return nil }
        let rank = Int((p / 100 * Double(latencies.count)).rounded(.up))
        return latencies[min(latencies.count - 1, max(0, rank - 1))]
    }

    /// results.tsv rows for Benchmarks/report.py: workload `health`.
    func tsv(size: Int, repetition: Int) -> String {
        func ms(_ seconds: Double?) -> String { seconds.map { String(format: "%.1f", $0 * 1_000) } ?? "nan" }
        let rows: [(String, String, String)] = [
            ("cpu", String(format: "%.2f", cpuPercent), "percent-of-core"),
            ("cpu-per-check", String(format: "%.2f", cpuMicrosecondsPerCheck), "us"),
            ("cpu-projected", String(format: "%.2f", projectedCPUPercent), "percent-of-core"),
            ("rss", String(format: "%.1f", rssMiB), "MiB"),
            ("checks-per-second", String(format: "%.0f", checksPerSecond), "checks/s"),
            ("target-rate", String(format: "%.0f", targetRate), "checks/s"),
            ("detect-p50", ms(percentile(50)), "ms"),
            ("detect-p99", ms(percentile(99)), "ms"),
            ("detect-max", ms(latencies.last), "ms"),
            ("detect-bound", ms(boundSeconds), "ms"),
            ("interval", ms(intervalSeconds), "ms"),
            ("timeout", ms(timeoutSeconds), "ms"),
            ("fall", String(fall), "checks"),
            ("rise", String(rise), "checks"),
            ("killed", String(latencies.count + missed), "backends"),
            ("missed", String(missed), "backends"),
            ("false-down", String(falseDowns), "backends"),
        ]
        return rows.map { "health\t\($0.0)\t\(size)\t\(repetition)\t\($0.1)\t\($0.2)" }.joined(separator: "\n")
    }

    /// A human-readable summary.
    func table(backends: Int, killed: Int) -> String {
        func ms(_ seconds: Double?) -> String { seconds.map { String(format: "%.0f ms", $0 * 1_000) } ?? "n/a" }
        return """
            health-bench: \(backends) TCP backends, \(settings)
              CPU                \(String(format: "%.1f", cpuPercent))% of one core (target < 25%)
              CPU per check      \(String(format: "%.1f", cpuMicrosecondsPerCheck)) us; \
            at \(String(format: "%.0f", targetRate)) checks/s: \(String(format: "%.1f", projectedCPUPercent))% of one core
              RSS                \(String(format: "%.1f", rssMiB)) MiB
              checks             \(String(format: "%.0f", checksPerSecond)) per second (asked for \(String(format: "%.0f", targetRate)))
              detection (\(killed) killed)  p50 \(ms(percentile(50))), p99 \(ms(percentile(99))), max \(ms(latencies.last)); \
            bound \(ms(boundSeconds)), target p99 <= \(ms(boundSeconds + intervalSeconds))
              missed             \(missed)
              false downs        \(falseDowns)
            """
    }
}

// MARK: - FloorMeasurement

/// What the C floor (`health-floor.c`: bare connects, one epoll set, no state) measured on the same backends.
struct FloorMeasurement {
    var cpuPercent: Double
    var checksPerSecond: Double
    var failures: Int
    var targetRate: Double

    var cpuMicrosecondsPerCheck: Double { checksPerSecond > 0 ? cpuPercent / 100 / checksPerSecond * 1e6 : 0 }
    var projectedCPUPercent: Double { cpuMicrosecondsPerCheck * targetRate / 1e4 }

    func tsv(size: Int, repetition: Int) -> String {
        let rows: [(String, String, String)] = [
            ("floor-cpu", String(format: "%.2f", cpuPercent), "percent-of-core"),
            ("floor-cpu-per-check", String(format: "%.2f", cpuMicrosecondsPerCheck), "us"),
            ("floor-cpu-projected", String(format: "%.2f", projectedCPUPercent), "percent-of-core"),
            ("floor-checks-per-second", String(format: "%.0f", checksPerSecond), "checks/s"),
        ]
        return rows.map { "health\t\($0.0)\t\(size)\t\(repetition)\t\($0.1)\t\($0.2)" }.joined(separator: "\n")
    }

    var table: String {
        """
        health-floor (C: bare connects on one epoll set) on the same backends
          CPU                \(String(format: "%.1f", cpuPercent))% of one core, \(String(format: "%.0f", checksPerSecond)) checks per second, \(failures) failed
          CPU per check      \(String(format: "%.1f", cpuMicrosecondsPerCheck)) us; at \(String(format: "%.0f", targetRate)) checks/s: \
        \(String(format: "%.1f", projectedCPUPercent))% of one core
        """
    }
}
