import Foundation
import IPVS
import PacketFilter

/// `nft-bench [SERVICES] [REPS]` (root): in a new network namespace, writes the agent's nftables table for
/// SERVICES ClusterIP Services (default 10,000; one VIP, one port and two endpoints each, masqueraded from
/// outside the cluster CIDR), then changes one endpoint REPS times (default 20), and prints the wall time
/// of the first sync and the median and worst of the one-endpoint syncs (the state's element texts included),
/// and their median CPU time, then the CPU time of a sync that changes nothing (no nftables call).
@main
struct NFTBench {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst().map { Int($0) }
        guard arguments.count <= 2, !arguments.contains(nil) else {
            FileHandle.standardError.write(Data("usage: nft-bench [SERVICES] [REPS]\n".utf8))
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

    static func state(services: Int, changed: Int) -> PacketFilterState {
        var state = PacketFilterState(clusterPrefixes: [AddressPrefix("10.244.0.0/16")!])
        for index in 0..<services {
            let vip = Frontend(IPAddress.v4(0x0A60_0000 + UInt32(index) + 1), .tcp, 80)
            state.guardedAddresses.insert(vip.address)
            state.accepted.insert(vip)
            state.masqueradeOutsideCluster.insert(vip)
            for endpoint in 0..<2 {
                let pod = UInt32(index * 2 + endpoint) + (index == 0 && endpoint == 0 ? UInt32(changed) * 100_000 : 0)
                state.hairpin.insert(Frontend(IPAddress.v4(0x0AF4_0000 + pod % 0xFFFF + 2), .tcp, 8080))
            }
        }
        return state
    }

    static func run(services: Int, reps: Int) throws {
        let filter = try PacketFilter(table: "nft-bench")
        let first = ContinuousClock.now
        try filter.sync(state(services: services, changed: 0))
        print("first sync: \(milliseconds(ContinuousClock.now - first)) ms for \(services) services")
        var times: [Duration] = [], cpu: [Double] = []
        for rep in 1...reps {
            let next = state(services: services, changed: rep % 2)
            let start = ContinuousClock.now, startCPU = processCPUSeconds()
            let result = try filter.sync(next)
            times.append(ContinuousClock.now - start)
            cpu.append(processCPUSeconds() - startCPU)
            guard case .updated = result else { throw BenchError(description: "sync \(rep) was \(result), not an update") }
        }
        times.sort()
        cpu.sort()
        print("one endpoint changed: median \(milliseconds(times[times.count / 2])) ms, worst \(milliseconds(times.last!)) ms over \(reps) syncs; "
              + "CPU (user + system) median \(String(format: "%.1f", cpu[cpu.count / 2] * 1000)) ms")
        // The same state again: no transaction, so this is the cost of the element texts and their diff alone.
        let same = state(services: services, changed: reps % 2), sameCPU = processCPUSeconds()
        guard try filter.sync(same) == .unchanged else { throw BenchError(description: "an unchanged state was written") }
        print("unchanged state (element texts and diff, no nftables call): CPU \(String(format: "%.1f", (processCPUSeconds() - sameCPU) * 1000)) ms")
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
