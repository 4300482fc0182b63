import IPVS
import Logging
import NodeNetwork
import ServiceLifecycle
import Synchronization

/// Repairs the VIPs as soon as they are taken away: watches the dummy interface's rtnetlink
/// notifications (`AddressMonitor`) and, after each burst of changes, has the reconciler verify
/// the addresses alone (`Reconciler.verifyAddresses`). IPVS announces nothing, so its drift is
/// still found by the verification every `--sync-period`, which checks the VIPs too.
struct AddressWatch: Service {
    let interface: String
    let reconciler: Reconciler
    let logger: Logger

    /// How long a change waits for the rest of its burst (`ip link del` removes every address,
    /// then the interface), so the burst becomes one verification.
    static let coalescing: Duration = .milliseconds(20)

    func run() async throws {
        let monitor: AddressMonitor
        do {
            monitor = try AddressMonitor(interface: interface)
        } catch {
            logger.error("cannot watch the dummy interface; a deleted VIP is repaired at the next --sync-period only",
                         metadata: ["interface": "\(interface)", "error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        defer { monitor.stop() }
        let pending = PendingDrift()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let reconciler = reconciler, logger = logger, interface = interface

        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in monitor.events {
                        logger.debug("dummy interface changed", metadata: ["interface": "\(interface)", "event": "\(event)"])
                        if pending.record(event) { wake.yield() }
                    }
                }
                group.addTask {
                    for await _ in wakeups {
                        try? await Task.sleep(for: Self.coalescing)
                        guard let drift = pending.take() else { continue }
                        let report = await reconciler.verifyAddresses(removed: drift.removed, interfaceWentDown: drift.interfaceWentDown)
                        for failure in report.failures { logger.error("\(failure)") }
                        if report.repairs > 0 {
                            logger.warning("repaired drift", metadata: ["repairs": "\(report.repairs)", "interface": "\(interface)",
                                                                        "trigger": "\(drift.reason)"])
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
        wake.finish()
    }
}

extension AddressWatch {
    /// The interface changes seen and not verified yet, so a burst becomes one verification.
    final class PendingDrift: Sendable {
        struct Drift {
            /// The addresses announced removed; `nil`: check every address.
            var removed: Set<IPAddress>? = []
            var interfaceWentDown = false
            /// Words for the log: what was announced.
            var reason: String {
                if interfaceWentDown { return "interface set down" }
                return removed.map { "\($0.count) address(es) removed" } ?? "interface deleted or notifications lost"
            }
        }

        private let state = Mutex<Drift?>(nil)

        /// Records `event`; returns whether it may take a VIP away (additions do not).
        func record(_ event: AddressMonitor.Event) -> Bool {
            state.withLock { drift in
                switch event {
                case .addressAdded:
                    return false
                case .addressRemoved(let binding):
                    // VIPs are host prefixes; another binding of the address is not the agent's.
                    guard binding.isHostPrefix else { return false }
                    var changed = drift ?? Drift()
                    changed.removed?.insert(binding.address)
                    drift = changed
                case .interfaceRemoved:
                    // Deleting an interface sets it down first; it is created again, not set up.
                    drift = Drift(removed: nil, interfaceWentDown: false)
                case .overflow:
                    drift = Drift(removed: nil, interfaceWentDown: drift?.interfaceWentDown ?? false)
                case .interfaceDown:
                    drift = Drift(removed: nil, interfaceWentDown: true)
                }
                return true
            }
        }

        /// What was recorded since the last call, or `nil` for nothing.
        func take() -> Drift? {
            state.withLock { drift in
                defer { drift = nil }
                return drift
            }
        }
    }
}
