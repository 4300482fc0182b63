import Foundation

// MARK: - ProcessUsage

/// This process's CPU time (user + system, every thread) and memory, from getrusage and /proc/self/status.
struct ProcessUsage {
    /// User + system CPU time so far, in seconds.
    var cpuSeconds: Double
    /// Monotonic wall time of the reading, in seconds.
    var wallSeconds: Double

    static func now() -> ProcessUsage {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        var clock = timespec()
        clock_gettime(CLOCK_MONOTONIC, &clock)
        return ProcessUsage(
            cpuSeconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            wallSeconds: Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9)
    }

    /// CPU used between `start` and `self`, as a percentage of one core.
    func cpuPercent(since start: ProcessUsage) -> Double {
        (cpuSeconds - start.cpuSeconds) / (wallSeconds - start.wallSeconds) * 100
    }

    /// A field of /proc/self/status in MiB (`VmRSS`, `VmHWM`); 0 when absent.
    static func memoryMiB(_ field: String) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kib = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Double($0) } ?? 0
            return kib / 1024
        }
        return 0
    }
}
