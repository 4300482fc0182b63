#if canImport(Glibc)
import Glibc
#endif

/// The running kernel's version, for expectations that differ between kernels.
struct KernelVersion: Comparable {
    var major: Int
    var minor: Int
    init(_ major: Int, _ minor: Int) { self.major = major; self.minor = minor }

    static var current: KernelVersion {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return KernelVersion(parts.first ?? 0, parts.dropFirst().first ?? 0)
    }

    static func < (a: Self, b: Self) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
}

