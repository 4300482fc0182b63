#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// The values of options, read as ipvsadm reads them, with messages naming the option.
extension InvocationParser {
    /// ipvsadm's limit on timeouts: 31 days.
    static let maximumTimeout = 86400 * 31

    /// A decimal integer in `range`, as ipvsadm reads them (`strtol`, the whole word).
    static func number(_ text: String, _ range: ClosedRange<Int>, _ spelling: String, what: String) throws(UsageError) -> Int {
        guard let value = integer(text), range.contains(value) else {
            throw UsageError("\(spelling): \(what) must be an integer \(range.lowerBound)..\(range.upperBound), got \"\(text)\"")
        }
        return value
    }

    /// `strtol(text, &end, 10)` accepting only when all of `text` was read.
    static func integer(_ text: String) -> Int? {
        text.withCString { start -> Int? in
            var end: UnsafeMutablePointer<CChar>?
            errno = 0
            let value = strtol(start, &end, 10)
            guard let end, end != UnsafeMutablePointer(mutating: start), end.pointee == 0, errno != ERANGE else { return nil }
            return value
        }
    }

    static func fwmark(_ text: String, _ spelling: String) throws(UsageError) -> UInt32 {
        guard let value = integer(text), value != 0, value >= Int(Int32.min), value <= Int(UInt32.max) else {
            throw UsageError("\(spelling): firewall mark must be an integer 1..4294967295, got \"\(text)\"")
        }
        return value < 0 ? UInt32(bitPattern: Int32(value)) : UInt32(value)
    }

    /// A scheduler or persistence engine name: what the kernel accepts (at most 15 characters).
    static func kernelName(_ text: String, _ spelling: String, what: String) throws(UsageError) -> String {
        guard !text.isEmpty, text.utf8.count <= 15,
              text.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }) else {
            throw UsageError("\(spelling): \"\(text)\" is not a \(what) name (lower-case letters, digits, _ or -, at most 15)")
        }
        return text
    }

    /// `-b`: `flag-1,flag-2,flag-3`, or sh-fallback/sh-port for sh, mh-fallback/mh-port for mh
    /// (`ServiceFlags.schedulerFlagNames`); a name of another scheduler is refused, as ipvsadm does.
    static func schedulerFlags(_ text: String, scheduler: String) throws(UsageError) -> ServiceFlags {
        var flags = ServiceFlags()
        let names = text.split(separator: ",", omittingEmptySubsequences: true)
        guard !names.isEmpty else { throw UsageError("-b (--sched-flags): no flag given") }
        for name in names {
            guard let known = ServiceFlags.schedulerFlag(named: name) else {
                let valid = ServiceFlags.schedulerFlagNames.map { entry in entry.scheduler.map { "\(entry.name) (\($0))" } ?? entry.name }
                throw UsageError("-b (--sched-flags): unknown flag \"\(name)\"; valid: \(valid.joined(separator: ", "))")
            }
            if let needed = known.scheduler, needed.rawValue != scheduler {
                throw UsageError("-b (--sched-flags): \(name) applies to the \(needed) scheduler, not \(scheduler) (add -s \(needed))")
            }
            flags.insert(known.flag)
        }
        return flags
    }
}
