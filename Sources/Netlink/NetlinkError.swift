#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An error from the kernel or from the netlink transport.
///
/// `errno` carries the positive error number (`EEXIST`, `ENOENT`, …) when the kernel answered
/// with one; match on it with `catch let error as NetlinkError where error.errno == EEXIST`.
public struct NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The positive error number the kernel or the C library reported, or 0 when there is none.
    public var errno: Int32
    /// What was being attempted, in words ("send to the kernel", "resolve generic netlink family IPVS").
    public var operation: String
    /// The kernel's extended acknowledgement message, when it sent one.
    public var kernelMessage: String?

    public init(errno: Int32, operation: String, kernelMessage: String? = nil, libraryMessage: String? = nil) {
        self.errno = errno
        self.operation = operation
        self.kernelMessage = kernelMessage
        self.libraryMessage = libraryMessage
    }

    /// libnl's own text for a failure that happened inside libnl rather than in the kernel.
    public var libraryMessage: String?

    /// The C library's text for `errno` ("File exists"), or libnl's text.
    public var reason: String {
        if let libraryMessage { return libraryMessage }
        guard errno != 0, let text = strerror(errno) else { return "unknown error" }
        return String(cString: text)
    }

    public var description: String {
        var text = "\(operation): \(reason)"
        if let kernelMessage, !kernelMessage.isEmpty { text += " (kernel: \(kernelMessage))" }
        return text
    }
}

/// A message or attribute that does not have the shape netlink requires: too short, a length
/// that runs past the end of its buffer, or a payload of the wrong size for its type.
public struct NetlinkDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being decoded and what was wrong with it.
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { "malformed netlink data: \(reason)" }
}
