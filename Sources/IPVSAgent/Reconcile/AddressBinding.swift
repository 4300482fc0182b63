import Dispatch
import Foundation
import IPVS
import Synchronization

/// Binds a list of VIPs, either at once on the caller's thread or on a thread of its own while the
/// caller goes on (the reconciler programs IPVS meanwhile); `results()` waits for it either way.
final class AddressBinding: Sendable {
    private let finished = DispatchGroup()
    private let outcome = Mutex<[Result<Void, any Error>]>([])

    init(_ vips: any VIPBackend, _ addresses: [IPAddress], _ interface: String, concurrently: Bool) {
        guard concurrently else {
            outcome.withLock { $0 = vips.add(addresses, to: interface) }
            return
        }
        // A thread of its own, not a task nor a Dispatch queue: `add` blocks in netlink system calls
        // for as long as the kernel takes (seconds for thousands of addresses), and must neither
        // hold a thread of Swift's cooperative pool nor wait for a free one.
        finished.enter()
        let thread = Thread { [self] in
            let results = vips.add(addresses, to: interface)
            outcome.withLock { $0 = results }
            finished.leave()
        }
        thread.name = "bind VIPs"
        thread.start()
    }

    /// One result per address, in order, once every address was tried.
    func results() -> [Result<Void, any Error>] {
        finished.wait()
        return outcome.withLock { $0 }
    }
}
