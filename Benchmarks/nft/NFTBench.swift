import Foundation
import IPVS
import PacketFilter

/// `nft-bench [SERVICES] [REPS]` (root): in a new network namespace, writes the agent's nftables table for
/// SERVICES ClusterIP Services (default 10,000; one VIP, one port and two endpoints each, masqueraded from
/// outside the cluster CIDR), one part per Service as the agent gives them, then changes one endpoint REPS
/// times (default 20) by updating that Service's part, and prints the wall time of the first sync, the
/// median and worst of the one-endpoint updates with their median CPU time, the CPU time of an update
/// that changes nothing (the agent's side alone: element texts and counts, no nftables call), and the
/// median of whole-state syncs of the same change (every part given, as the sync period's path does).
/// With `--tsv` (make bench, in the VM) it prints each measurement as a line of guest-bench.sh's
/// results (`nft`, what, SERVICES, repetition, microseconds, `us`) instead.
@main
struct NFTBench {
    /// Whether measurements are printed as results lines.
    nonisolated(unsafe) static var tsv = false

    static func main() throws {
        var words = Array(CommandLine.arguments.dropFirst())
        if words.first == "--tsv" { tsv = true; words.removeFirst() }
        let arguments = words.map { Int($0) }
        guard arguments.count <= 2, !arguments.contains(nil) else {
            FileHandle.standardError.write(Data("usage: nft-bench [--tsv] [SERVICES] [REPS]\n".utf8))
            exit(2)
        }
        let services = arguments.first.flatMap { $0 } ?? 10_000, reps = arguments.dropFirst().first.flatMap { $0 } ?? 20
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            typealias Unshare = @convention(c) (CInt) -> CInt
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare"),
                  unsafeBitCast(symbol, to: Unshare.self)(0x4000_0000) == 0 else { // CLONE_NEWNET
                FileHandle.standardError.write(Data("nft-bench: unshare(CLONE_NEWNET) failed: run as root\n".utf8))
                exit(2)
            }
            do { try run(services: services, reps: reps) } catch {
                FileHandle.standardError.write(Data("nft-bench: \(error)\n".utf8))
                exit(1)
            }
        }
        thread.start()
        done.wait()
    }

    /// Service `index`'s part; Service 0's first endpoint moves with `changed`.
    static func part(_ index: Int, changed: Int) -> PacketFilterState {
        let vip = Frontend(IPAddress.v4(0x0A60_0000 + UInt32(index) + 1), .tcp, 80)
        var state = PacketFilterState(guardedAddresses: [vip.address], accepted: [vip], masqueradeOutsideCluster: [vip])
        for endpoint in 0..<2 {
            let pod = UInt32(index * 2 + endpoint) + (index == 0 && endpoint == 0 ? UInt32(changed) * 100_000 : 0)
            state.hairpin.insert(Frontend(IPAddress.v4(0x0AF4_0000 + pod % 0xFFFF + 2), .tcp, 8080))
        }
        return state
    }

    static func parts(services: Int, changed: Int) -> [String: PacketFilterState] {
        var parts = ["cluster": PacketFilterState(clusterPrefixes: [AddressPrefix("10.244.0.0/16")!])]
        for index in 0..<services { parts["svc-\(index)"] = part(index, changed: changed) }
        return parts
    }

    /// A results line (`--tsv`): `nft`, what, services, repetition, microseconds.
    static func record(_ what: String, _ services: Int, _ rep: Int, seconds: Double) {
        if tsv { print("nft\t\(what)\t\(services)\t\(rep)\t\(Int((seconds * 1e6).rounded()))\tus") }
    }

    static func record(_ what: String, _ services: Int, _ rep: Int, _ duration: Duration) {
        record(what, services, rep, seconds: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// A line for people (without `--tsv`).
    static func say(_ text: String) {
        if !tsv { print(text) }
    }

    static func run(services: Int, reps: Int) throws {
        let filter = try PacketFilter(table: "nft-bench")
        let first = ContinuousClock.now
        try filter.sync(parts: parts(services: services, changed: 0))
        record("first-sync", services, 1, ContinuousClock.now - first)
        say("first sync: \(milliseconds(ContinuousClock.now - first)) ms for \(services) services")
        var times: [Duration] = [], cpu: [Double] = []
        for rep in 1...reps {
            let start = ContinuousClock.now, startCPU = processCPUSeconds()
            let result = try filter.update(["svc-0": part(0, changed: rep % 2)])
            times.append(ContinuousClock.now - start)
            cpu.append(processCPUSeconds() - startCPU)
            record("update", services, rep, times.last!)
            record("update-cpu", services, rep, seconds: cpu.last!)
            guard case .updated = result else { throw BenchError(description: "update \(rep) was \(result), not an update") }
        }
        times.sort()
        cpu.sort()
        say("one endpoint changed: median \(milliseconds(times[times.count / 2])) ms, worst \(milliseconds(times.last!)) ms over \(reps) updates; "
              + "CPU (user + system) median \(String(format: "%.2f", cpu[cpu.count / 2] * 1000)) ms")
        // The same part again: no transaction, so this is the agent's side of an update alone.
        let sameCPU = processCPUSeconds()
        guard try filter.update(["svc-0": part(0, changed: reps % 2)]) == .unchanged else {
            throw BenchError(description: "an unchanged part was written")
        }
        record("unchanged-cpu", services, 1, seconds: processCPUSeconds() - sameCPU)
        say("unchanged part (element texts and counts, no nftables call): CPU \(String(format: "%.3f", (processCPUSeconds() - sameCPU) * 1000)) ms")
        var whole: [Duration] = []
        for rep in 1...max(1, reps / 4) {
            let next = parts(services: services, changed: (reps + rep) % 2), start = ContinuousClock.now
            guard case .updated = try filter.sync(parts: next) else { throw BenchError(description: "whole sync \(rep) was not an update") }
            whole.append(ContinuousClock.now - start)
            record("whole-sync", services, rep, whole.last!)
        }
        whole.sort()
        say("one endpoint changed, every part given (whole-state sync): median \(milliseconds(whole[whole.count / 2])) ms over \(whole.count) syncs")
        try filter.delete()
    }

    /// User and system CPU of the whole process (libnftables and the kernel's netlink work included).
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }

    struct BenchError: Error, CustomStringConvertible { var description: String }
}
