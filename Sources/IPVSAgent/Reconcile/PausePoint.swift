import Foundation

/// Points of a start where a kernel test stops the agent to `kill -9` it exactly there
/// (Tests/KernelTests/AgentOwnershipTests): with `IPVS_AGENT_PAUSE_AT=<point>` in its environment,
/// the first thread to reach the point says so on standard error and sleeps until the process
/// ends. Without the variable, `reached()` costs one comparison. Test-only: never set it on a node.
enum PausePoint: String, Sendable {
    /// VIPs claimed in the state file, not bound yet (`AddressBinding`).
    case bindingClaimed = "binding-claimed"
    /// The first batch of VIPs bound early, before the first reconcile (`AddressBinding`).
    case boundEarly = "bound-early"
    /// The first batch of virtual services added early, before the first reconcile (`EarlyProgramming`).
    case programmedEarly = "programmed-early"
    /// A reconcile's kernel changes made, its state file write not yet (`Reconciler`).
    case applied

    private static let requested = ProcessInfo.processInfo.environment["IPVS_AGENT_PAUSE_AT"].flatMap(PausePoint.init(rawValue:))

    func reached() {
        guard Self.requested == self else { return }
        FileHandle.standardError.write(Data("ipvs-agent: paused at \(rawValue) (IPVS_AGENT_PAUSE_AT)\n".utf8))
        while true { sleep(3600) }
    }
}
