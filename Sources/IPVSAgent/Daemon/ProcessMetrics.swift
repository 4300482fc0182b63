import Foundation
import Metrics

/// The `process_*` metrics Prometheus's client libraries export (swift-prometheus has none), read
/// from `/proc/self` before each scrape: CPU time, resident and virtual memory, open and maximum
/// file descriptors, and the start time.
final class ProcessMetrics: @unchecked Sendable {
    private let cpu = FloatingPointCounter(label: "process_cpu_seconds_total")
    private let resident = Gauge(label: "process_resident_memory_bytes")
    private let virtual = Gauge(label: "process_virtual_memory_bytes")
    private let openFiles = Gauge(label: "process_open_fds")
    private let maxFiles = Gauge(label: "process_max_fds")
    private let startTime = Gauge(label: "process_start_time_seconds")
    private let lock = NSLock()
    /// The CPU seconds counted so far: the counter grows by what `/proc/self/stat` adds to it.
    private var cpuCounted = 0.0

    init() {
        if let start = Self.read()?.startTime { startTime.record(start) }
    }

    /// Reads `/proc/self` into the gauges.
    func update() {
        guard let sample = Self.read() else { return }
        lock.withLock {
            if sample.cpuSeconds > cpuCounted {
                cpu.increment(by: sample.cpuSeconds - cpuCounted)
                cpuCounted = sample.cpuSeconds
            }
        }
        resident.record(sample.residentBytes)
        virtual.record(sample.virtualBytes)
        openFiles.record(sample.openFiles)
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFiles.record(Double(limit.rlim_cur)) }
    }

    struct Sample: Hashable {
        var cpuSeconds: Double
        var residentBytes: Double
        var virtualBytes: Double
        var openFiles: Int
        var startTime: Double
    }

    /// This process's figures, from `/proc/self/stat` (proc(5): utime, stime, starttime, vsize, rss),
    /// `/proc/self/fd` and the boot time in `/proc/stat`; `nil` where `/proc` cannot be read.
    static func read() -> Sample? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name, which may hold spaces: field 3 (state) is the first here.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double? { fields.count > number - 3 ? Double(fields[number - 3]) : nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        guard ticks > 0, let user = field(14), let system = field(15), let started = field(22), let vsize = field(23), let rss = field(24) else {
            return nil
        }
        let boot = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("btime ") }
            .flatMap { Double($0.dropFirst("btime ".count)) } ?? 0
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? 1) - 1 // the listing's own
        return Sample(cpuSeconds: (user + system) / ticks, residentBytes: rss * page, virtualBytes: vsize, openFiles: files,
                      startTime: boot + started / ticks)
    }
}
