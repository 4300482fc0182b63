import Foundation
import XCTest

/// Runs `body` on a thread of its own that first moves into a new, empty network namespace
/// (`unshare(CLONE_NEWNET)`), so that nftables changes never reach the host's tables. Objects
/// created there (a libnftables context) keep working in that namespace from any thread.
func inNewNetworkNamespace<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) throws -> Result {
    let outcome = LockedOutcome<Result>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        defer { done.signal() }
        typealias Unshare = @convention(c) (CInt) -> CInt
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare"),
              unsafeBitCast(symbol, to: Unshare.self)(0x4000_0000) == 0 else { // CLONE_NEWNET
            outcome.set(.failure(NamespaceError(errno: errno)))
            return
        }
        outcome.set(Swift.Result { try body() })
    }
    thread.start()
    done.wait()
    return try outcome.get()
}

private final class LockedOutcome<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Swift.Result<Value, any Error>?
    func set(_ result: Swift.Result<Value, any Error>) { lock.withLock { value = result } }
    func get() throws -> Value { try lock.withLock { value! }.get() }
}

/// `unshare(CLONE_NEWNET)` failed: these tests need root (CAP_SYS_ADMIN).
struct NamespaceError: Error, CustomStringConvertible {
    var errno: CInt
    var description: String { "unshare(CLONE_NEWNET) failed with errno \(errno): run the tests as root" }
}
