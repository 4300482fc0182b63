#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// The IPVS schedulers a kernel has: loaded or built in (`/sys/module/ip_vs_<name>`), or
/// installed as modules the kernel loads on first use (`/lib/modules/<release>`).
public struct SchedulerCatalog: Sendable, Equatable {
    /// Names of the schedulers found.
    public var available: [String]
    /// Whether the module tree of the running kernel was readable, so that a scheduler missing
    /// from `available` is really missing (else only the loaded ones are known).
    public var isComplete: Bool
    /// The running kernel's release, for messages.
    public var kernelRelease: String

    public init(available: [String], isComplete: Bool, kernelRelease: String) {
        self.available = available
        self.isComplete = isComplete
        self.kernelRelease = kernelRelease
    }

    /// Whether `name` is known to be unavailable.
    public func lacks(_ name: String) -> Bool { isComplete && !available.contains(name) }

    /// The catalog of the running kernel.
    public static func current() -> SchedulerCatalog {
        var names = Set<String>()
        for entry in directoryEntries("/sys/module") {
            if let name = schedulerName(entry) { names.insert(name) }
        }
        var release = utsname()
        uname(&release)
        let kernel = withUnsafeBytes(of: release.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let tree = "/lib/modules/\(kernel)"
        let complete = access(tree + "/modules.dep", R_OK) == 0
        if complete {
            for entry in directoryEntries(tree + "/kernel/net/netfilter/ipvs") {
                if let dot = entry.firstIndex(of: "."), let name = schedulerName(String(entry[..<dot])) { names.insert(name) }
            }
            let descriptor = open(tree + "/modules.builtin", O_RDONLY | O_CLOEXEC)
            if descriptor >= 0 {
                defer { close(descriptor) }
                let text = String(decoding: (try? SystemIO.readAll(descriptor: descriptor, what: "modules.builtin")) ?? [], as: UTF8.self)
                for line in text.split(separator: "\n") where line.contains("/ipvs/ip_vs_") {
                    let file = line.split(separator: "/").last.map(String.init) ?? ""
                    if let dot = file.firstIndex(of: "."), let name = schedulerName(String(file[..<dot])) { names.insert(name) }
                }
            }
        }
        let known = Scheduler.allKnown.map(\.rawValue)
        let ordered = known.filter(names.contains) + names.subtracting(known).sorted()
        return SchedulerCatalog(available: ordered, isComplete: complete, kernelRelease: kernel)
    }

    /// `rr` for `ip_vs_rr`; `nil` for IPVS modules that are not schedulers.
    private static func schedulerName(_ module: String) -> String? {
        guard module.hasPrefix("ip_vs_") else { return nil }
        let name = String(module.dropFirst(6))
        guard !name.isEmpty, name != "ftp", !name.hasPrefix("pe_"), !name.hasPrefix("proto") else { return nil }
        return name
    }

    private static func directoryEntries(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// The message for a scheduler the kernel refused with "not found".
    func unavailableMessage(_ name: String) -> String {
        var text = "the kernel has no \"\(name)\" scheduler: module ip_vs_\(name) is not built into, loaded in or installed for kernel \(kernelRelease)"
        if !available.isEmpty {
            text += isComplete ? ". Schedulers this kernel has: " : ". Schedulers loaded now: "
            text += available.joined(separator: ", ")
        }
        text += ". Known IPVS schedulers: " + Scheduler.knownNames
        return text
    }
}
