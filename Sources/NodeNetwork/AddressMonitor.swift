import Foundation
import Synchronization

/// Watches one network interface for the changes the kernel announces on rtnetlink
/// (`RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV6_IFADDR`): addresses added and removed,
/// the interface deleted or set down. A caller that keeps addresses bound repairs a deletion as
/// soon as it happens instead of at its next periodic check.
///
/// The blocking `poll`/`recv` loop runs on a thread of its own, never on Swift's cooperative
/// pool; events arrive as an `AsyncStream`. Notifications are subscribed to before the
/// interface is first looked up, so no change after `init` returns is missed, except when the
/// kernel drops notifications (the receive buffer is full): then `.overflow` says that the
/// interface must be read again.
///
/// ```swift
/// let monitor = try AddressMonitor(interface: "kube-ipvs0")
/// for await event in monitor.events {
///     if case .addressRemoved(let address) = event { print("\(address) was removed") }
/// }
/// ```
public final class AddressMonitor: Sendable {
    /// A change of the watched interface.
    public enum Event: Hashable, Sendable {
        /// An address was bound on the interface (`RTM_NEWADDR`).
        case addressAdded(InterfaceAddress)
        /// An address was removed from the interface (`RTM_DELADDR`), by a request or because the
        /// interface went down (IPv6) or away.
        case addressRemoved(InterfaceAddress)
        /// The interface was deleted (`RTM_DELLINK`).
        case interfaceRemoved
        /// The interface was set down: `IFF_UP` cleared (`RTM_NEWLINK`).
        case interfaceDown
        /// The kernel dropped notifications because the socket's receive buffer was full
        /// (`ENOBUFS`): any change may have been missed.
        case overflow
    }

    /// The watched interface's events, in the kernel's order. Ends after `stop()`.
    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let isStopped = Mutex(false)

    /// The receive buffer `init` asks for by default: room for the notifications of thousands of
    /// address changes made in one burst (the node's own bindings) while the thread is not reading.
    public static let defaultReceiveBufferSize = 4 << 20

    /// Subscribes to the notifications and starts the thread that reads them.
    ///
    /// - Parameters:
    ///   - interface: the interface to watch; it need not exist yet (its creation is seen).
    ///   - receiveBufferSize: the socket's receive buffer in bytes.
    public init(interface: String, receiveBufferSize: Int = AddressMonitor.defaultReceiveBufferSize) throws(NodeNetworkError) {
        try LinkManager.validateInterfaceName(interface)
        let socket: NotificationSocket
        let index: Int32?
        let isUp: Bool
        do {
            socket = try NotificationSocket(receiveBufferSize: receiveBufferSize)
            // Looked up after subscribing: a change made meanwhile is in the socket's queue.
            let link = try RouteSocket().link(named: interface)
            (index, isUp) = (link?.index, link?.isUp ?? false)
        } catch {
            throw NodeNetworkError(error, operation: "watch", object: "interface \(interface) for changes (rtnetlink notifications)")
        }
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        let reader = Reader(socket: socket, interface: interface, index: index, isUp: isUp)
        let thread = Thread { [self, reader] in run(reader) }
        thread.name = "watch \(interface)"
        thread.start()
    }

    /// Ends the stream and the thread (within half a second).
    public func stop() {
        isStopped.withLock { $0 = true }
    }

    private func run(_ reader: Reader) {
        while !isStopped.withLock({ $0 }) {
            guard reader.socket.wait(milliseconds: 500) else { continue }
            do {
                for event in reader.events(try reader.socket.read()) { continuation.yield(event) }
            } catch {
                // ENOBUFS: the kernel dropped notifications. Any other failure loses them as well.
                if error.errno != ENOBUFS { Thread.sleep(forTimeInterval: 0.1) }
                reader.lookUp()
                continuation.yield(.overflow)
            }
        }
        continuation.finish()
    }
}

// MARK: - Reader

/// The socket and what the thread knows of the watched interface; used by that thread only.
private final class Reader: @unchecked Sendable {
    let socket: NotificationSocket
    let interface: String
    /// The interface's index, `nil` while it does not exist; from the notifications of its name.
    var index: Int32?
    var isUp: Bool

    init(socket: NotificationSocket, interface: String, index: Int32?, isUp: Bool) {
        self.socket = socket
        self.interface = interface
        self.index = index
        self.isUp = isUp
    }

    /// Looks the interface up again, after notifications of it may have been lost.
    func lookUp() {
        do {
            let link = try RouteSocket().link(named: interface)
            (index, isUp) = (link?.index, link?.isUp ?? false)
        } catch {
            // Kept as it was; the next notification of the name corrects it.
        }
    }

    /// The events of the watched interface among `notifications`.
    func events(_ notifications: [RouteNotification]) -> [AddressMonitor.Event] {
        var events: [AddressMonitor.Event] = []
        for notification in notifications {
            switch notification {
            case .link(let link, removed: true) where link.index == index || link.name == interface:
                index = nil
                isUp = false
                events.append(.interfaceRemoved)
            case .link(let link, removed: false) where link.name == interface:
                // Created, renamed to the name or changed: the index of the name is this one now.
                index = link.index
                if isUp && !link.isUp { events.append(.interfaceDown) }
                isUp = link.isUp
            case .link(let link, removed: false) where link.index == index:
                // Renamed away from the name: another interface now.
                index = nil
                isUp = false
                events.append(.interfaceRemoved)
            case .address(let record, let removed) where record.interfaceIndex == index:
                let address = InterfaceAddress(address: record.address, prefixLength: record.prefixLength)
                events.append(removed ? .addressRemoved(address) : .addressAdded(address))
            default:
                break
            }
        }
        return events
    }
}
