import CSpawn
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - ExecProbe

/// Runs the check program on a thread of the checker's thread pool (the wait blocks that thread, never an
/// event loop); the event loop kills the program's process group at the timeout.
struct ExecProbe: HealthProbe {
    let check: ExecHealthCheck
    let threadPool: NIOThreadPool
    let environment: [String]

    func check(on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<CheckOutcome> {
        let deadline = NIODeadline.now() + timeout
        let check = self.check
        let environment = self.environment
        return threadPool.runIfActive(eventLoop: eventLoop) { () -> CheckOutcome in
            guard NIODeadline.now() < deadline else {
                return .failure(reason: "\(ProbeFailure.timeout(timeout)) waiting for a free exec thread")
            }
            let child: SpawnedProcess
            do {
                child = try SpawnedProcess(arguments: check.arguments, environment: environment, user: check.user)
            } catch {
                return .failure(reason: "\(error)")
            }
            let killer = eventLoop.scheduleTask(deadline: deadline) { child.kill() }
            let status = child.wait()
            killer.cancel()
            return Self.outcome(status, killed: child.wasKilled, dynamicWeight: check.dynamicWeight, timeout: timeout)
        }
        .recover { error in .failure(reason: "exec: \(error)") }
    }

    /// The verdict for a wait status, following keepalived's `misc_dynamic` for exit statuses 2 to 255.
    static func outcome(_ status: ExitStatus, killed: Bool, dynamicWeight: Bool, timeout: TimeAmount) -> CheckOutcome {
        if killed { return .failure(reason: "\(ProbeFailure.timeout(timeout)), killed") }
        switch status {
        case .exited(0):
            return .success(reason: "exit status 0")
        case .exited(let code) where dynamicWeight && code >= 2:
            return .success(reason: "exit status \(code)", weight: Int32(code - 2))
        case .exited(let code):
            return .failure(reason: "exit status \(code)")
        case .signaled(let signal):
            return .failure(reason: "killed by signal \(signal)")
        case .unknown(let text):
            return .failure(reason: text)
        }
    }
}

// MARK: - SpawnedProcess

/// How a child process ended.
enum ExitStatus: Hashable, Sendable {
    case exited(Int32)
    case signaled(Int32)
    case unknown(String)
}

/// A child started in its own process group (``cspawn_start``), stdio on `/dev/null`, default signal handling,
/// as the check's user when it names one.
///
/// ``wait()`` first waits without reaping (`waitid` with `WNOWAIT`), marks the child as exited under the lock,
/// and only then reaps it: ``kill()`` therefore never signals a process group whose id was reused.
final class SpawnedProcess: Sendable {
    let pid: pid_t
    private let state = NIOLockedValueBox((exited: false, killed: false))

    struct SpawnError: Error, CustomStringConvertible {
        var program: String
        var code: CInt
        var description: String { "exec \(program): \(ProbeFailure.errnoText(code))" }
    }

    init(arguments: [String], environment: [String], user: ProcessUser? = nil) throws {
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = cspawn_start(arguments[0], argv, envp, user == nil ? 0 : 1, user?.uid ?? 0, user?.gid ?? 0, &pid)
        guard result == 0 else { throw SpawnError(program: arguments[0], code: result) }
        self.pid = pid
    }

    /// Whether ``kill()`` signalled the child before it exited.
    var wasKilled: Bool { state.withLockedValue { $0.killed } }

    /// Sends `SIGKILL` to the child's process group, unless it has exited already.
    func kill() {
        state.withLockedValue { state in
            guard !state.exited else { return }
            state.killed = true
            _ = Glibc.kill(-pid, SIGKILL)
        }
    }

    /// Blocks until the child exits, then reaps it.
    func wait() -> ExitStatus {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
            if errno != EINTR { break }
        }
        state.withLockedValue { $0.exited = true }
        var status: CInt = 0
        var reaped: pid_t
        repeat { reaped = waitpid(pid, &status, 0) } while reaped < 0 && errno == EINTR
        guard reaped == pid else { return .unknown("wait: \(ProbeFailure.errnoText(errno))") }
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }
}
