#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Kernel parameters under /proc/sys, by their sysctl(8) names.
///
/// Names are accepted in either form sysctl(8) accepts: `net.ipv4.vs.conntrack` or
/// `net/ipv4/vs/conntrack`. In the dotted form a `/` stands for a dot inside one component, as
/// in `net.ipv4.conf.eth0/100.rp_filter` for the VLAN interface `eth0.100`.
///
/// The `net.*` parameters belong to the caller's network namespace; the IPVS ones
/// (`net.ipv4.vs.*`) exist only once the `ip_vs` module is loaded. Writing needs root.
public enum Sysctl {
    /// Reads the parameter `name`, without the trailing newline.
    public static func read(_ name: String) throws(NodeNetworkError) -> String {
        let parameter = try Parameter(name)
        do {
            return try String(SysctlFiles.readFile(parameter.path).trimmingTrailingNewlines())
        } catch {
            throw parameter.error(error, operation: "read")
        }
    }

    /// Writes `value` to the parameter `name`.
    public static func write(_ name: String, _ value: String) throws(NodeNetworkError) {
        let parameter = try Parameter(name)
        let value = try parameter.validated(value)
        do {
            try SysctlFiles.writeFile(parameter.path, value + "\n")
        } catch {
            throw parameter.error(error, operation: "write \(value.debugDescription) to", value: value)
        }
    }

    /// Sets the parameter `name` to `value` unless it already has that value.
    ///
    /// Returns the previous value when it changed it, `nil` when the value was already set.
    /// Values are compared word by word, so `4096 87380` matches the kernel's tab-separated
    /// `4096\t87380`.
    @discardableResult
    public static func ensure(_ name: String, _ value: String) throws(NodeNetworkError) -> String? {
        let current = try read(name)
        guard words(current) != words(value) else { return nil }
        try write(name, value)
        return current
    }

    /// The running kernel's release, as `uname -r` prints it: `6.1.0-56-amd64`.
    public static var kernelRelease: String { SysctlFiles.kernelRelease() }

    private static func words(_ text: String) -> [Substring] {
        text.split(whereSeparator: { $0.isWhitespace })
    }
}

// MARK: - Names and paths

/// A parameter name checked and turned into its /proc/sys path.
struct Parameter {
    /// The components, with the dots they contain: `["net", "ipv4", "conf", "eth0.100", "rp_filter"]`.
    var components: [String]

    init(_ name: String) throws(NodeNetworkError) {
        // sysctl(8): the first separator decides the form; the dotted form swaps '.' and '/'.
        let firstSeparator = name.first { $0 == "." || $0 == "/" }
        let separator: Character = firstSeparator == "." ? "." : "/"
        let parts = name.split(separator: separator, omittingEmptySubsequences: false).map { part in
            separator == "." ? part.replacingSlashesWithDots() : String(part)
        }
        let invalid = name.isEmpty || parts.contains { $0.isEmpty || $0 == "." || $0 == ".." }
            || name.utf8.contains { $0 < 0x21 || $0 == 0x7F }
        guard !invalid else {
            throw NodeNetworkError(kind: .invalidArgument, operation: "use", object: "sysctl name \(name.debugDescription)",
                                   errno: EINVAL, detail: "not a parameter name",
                                   hint: "write it as sysctl(8) does, such as net.ipv4.vs.conntrack or net/ipv4/vs/conntrack")
        }
        components = parts
    }

    /// The dotted name sysctl(8) prints: `net.ipv4.conf.eth0/100.rp_filter`.
    var name: String { components.map { $0.replacingDotsWithSlashes() }.joined(separator: ".") }

    /// `/proc/sys/net/ipv4/vs/conntrack`.
    var path: String { "/proc/sys/" + components.joined(separator: "/") }

    /// Whether the parameter belongs to IPVS (`net.ipv4.vs.*`).
    var isIPVS: Bool { components.starts(with: ["net", "ipv4", "vs"]) }

    /// `value` without surrounding white space; throws when it is empty or spans lines.
    func validated(_ value: String) throws(NodeNetworkError) -> String {
        let trimmed = value.trimmingWhitespace()
        guard !trimmed.isEmpty, !trimmed.contains(where: \.isNewline) else {
            throw NodeNetworkError(kind: .invalidArgument, operation: "write \(value.debugDescription) to",
                                   object: "sysctl \(name)", errno: EINVAL,
                                   detail: "a value is one line of text, such as 1")
        }
        return trimmed
    }

    /// A failed read or write, in words, with what to do.
    func error(_ failure: SystemFailure, operation: String, value: String? = nil) -> NodeNetworkError {
        let hint: String? = switch failure.errno {
        case ENOENT where isIPVS:
            "IPVS parameters exist only once the ip_vs module is loaded (modprobe ip_vs), in each network namespace"
        case ENOENT:
            "this kernel has no such parameter; check the name (sysctl -a lists them) and, for a per-interface one, that the interface exists"
        case EACCES, EPERM:
            value == nil ? "the parameter is not readable by this user" : "writing kernel parameters needs root"
        case EROFS:
            "/proc/sys is mounted read-only (an unprivileged container); run privileged or set it on the host"
        case EINVAL, ERANGE:
            "the kernel rejected \(value.map(\.debugDescription) ?? "the value"); see the kernel documentation of \(name)"
        default:
            nil
        }
        var error = NodeNetworkError(failure, operation: operation, object: "sysctl \(name)", hint: hint)
        if failure.errno == ENOENT { error.kind = .notFound }
        return error
    }
}

// MARK: - Text helpers

extension StringProtocol {
    fileprivate func trimmingTrailingNewlines() -> SubSequence {
        var end = endIndex
        while end > startIndex, self[index(before: end)].isNewline { end = index(before: end) }
        return self[startIndex..<end]
    }

    fileprivate func trimmingWhitespace() -> String {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return String(self[start..<Swift.max(start, end)])
    }

    fileprivate func replacingSlashesWithDots() -> String {
        String(map { $0 == "/" ? "." : $0 })
    }

    fileprivate func replacingDotsWithSlashes() -> String {
        String(map { $0 == "." ? "/" : $0 })
    }
}
