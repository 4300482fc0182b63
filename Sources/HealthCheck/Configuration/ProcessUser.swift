#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The unprivileged user an exec check runs as: keepalived's `script_user`, looked up once by name.
public struct ProcessUser: Hashable, Sendable, CustomStringConvertible {
    /// The user's name, as given.
    public var name: String
    /// Its user id.
    public var uid: UInt32
    /// Its primary group id; supplementary groups are dropped.
    public var gid: UInt32

    public init(name: String, uid: UInt32, gid: UInt32) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    /// Looks up `name` in the user database (`getpwnam_r`).
    ///
    /// - Throws: ``Problem`` when there is no such user, or when it is root: exec checks never run as root.
    public static func named(_ name: String) throws(Problem) -> ProcessUser {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let code = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard code == 0, result != nil else {
            throw Problem(description: code == 0
                ? "there is no user \"\(name)\" on this node; create one for health checks (e.g. useradd --system --no-create-home \(name)) or name another"
                : "cannot look up the user \"\(name)\": \(ProbeFailure.errnoText(code))")
        }
        guard entry.pw_uid != 0 else {
            throw Problem(description: "\"\(name)\" is root (uid 0); exec checks run as an unprivileged user")
        }
        return ProcessUser(name: name, uid: entry.pw_uid, gid: entry.pw_gid)
    }

    /// `nobody (65534:65534)`.
    public var description: String { "\(name) (\(uid):\(gid))" }

    /// Why a user cannot run exec checks.
    public struct Problem: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }
}
