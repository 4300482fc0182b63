#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// Where a run of ipvsctl reads and writes: the process's own streams and the kernel, or
/// replacements in tests.
public struct ControlEnvironment {
    /// Connects to IPVS (called only when a command needs the kernel).
    public var openBackend: () throws -> any IPVSBackend
    /// All of standard input (for `-R`).
    public var readStandardInput: () throws -> [UInt8]
    /// A whole file (for `/proc/net/ip_vs_conn`).
    public var readFile: (String) throws -> String
    /// Writes to standard output.
    public var writeOutput: ([UInt8]) -> Void
    /// Writes to standard error.
    public var writeError: (String) -> Void
    /// Schedulers the running kernel has, for messages and checks.
    public var schedulerCatalog: () -> SchedulerCatalog
    /// The body of ipvs-agent's `/status` at `HOST:PORT` (for `ipvsctl status`).
    public var fetchAgentStatus: (String) throws -> [UInt8]
    /// Seconds since 1970 (for "3m ago" in `ipvsctl status`).
    public var currentTime: () -> Int

    public init(
        openBackend: @escaping () throws -> any IPVSBackend,
        readStandardInput: @escaping () throws -> [UInt8],
        readFile: @escaping (String) throws -> String,
        writeOutput: @escaping ([UInt8]) -> Void,
        writeError: @escaping (String) -> Void,
        schedulerCatalog: @escaping () -> SchedulerCatalog,
        fetchAgentStatus: @escaping (String) throws -> [UInt8] = ControlEnvironment.fetchAgentStatusOverHTTP,
        currentTime: @escaping () -> Int = { time(nil) }
    ) {
        self.fetchAgentStatus = fetchAgentStatus
        self.currentTime = currentTime
        self.openBackend = openBackend
        self.readStandardInput = readStandardInput
        self.readFile = readFile
        self.writeOutput = writeOutput
        self.writeError = writeError
        self.schedulerCatalog = schedulerCatalog
    }
}
