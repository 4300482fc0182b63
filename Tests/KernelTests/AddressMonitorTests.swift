import Foundation
import IPVS
import NodeNetwork
import XCTest

/// `AddressMonitor` on a real kernel: the rtnetlink notifications of one interface, with `ip`
/// (iproute2) playing "someone else" who changes it.
final class AddressMonitorTests: XCTestCase {
    private let dummy = "kube-ipvs0"

    private func host(_ text: String) -> InterfaceAddress { InterfaceAddress(host: IPAddress(text)!) }

    func testAddressesAddedAndRemovedAreReportedForTheWatchedInterfaceOnly() throws {
        try KernelTest.requireKernel()
        try LinkManager().ensureDummyInterface(named: dummy)
        try KernelTest.shell("ip link add other0 type dummy && ip link set other0 up")
        let monitor = try AddressMonitor(interface: dummy)
        defer { monitor.stop() }
        let log = AddressEventLog(monitor)

        try KernelTest.shell("""
            ip addr add 10.250.0.1/32 dev other0 && ip addr del 10.250.0.1/32 dev other0 && \
            ip addr add 10.96.0.1/32 dev \(dummy) && ip addr add fd00::96:1/128 dev \(dummy) nodad && \
            ip addr add 10.97.0.0/24 dev \(dummy) && \
            ip addr del 10.96.0.1/32 dev \(dummy) && ip addr del fd00::96:1/128 dev \(dummy)
            """)
        try log.waitFor([.addressAdded(host("10.96.0.1")), .addressAdded(host("fd00::96:1")),
                         .addressAdded(InterfaceAddress(address: IPAddress("10.97.0.0")!, prefixLength: 24)),
                         .addressRemoved(host("10.96.0.1")), .addressRemoved(host("fd00::96:1"))])
        XCTAssertFalse(log.all.contains(.addressAdded(host("10.250.0.1"))), "an address of another interface: \(log.all)")
        XCTAssertFalse(log.all.contains(.addressRemoved(host("10.250.0.1"))), "an address of another interface: \(log.all)")
        XCTAssertFalse(log.all.contains(.overflow), "\(log.all)")
    }

    func testInterfaceSetDownDeletedAndCreatedAgainIsFollowed() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        try links.addAddress(IPAddress("10.96.0.1")!, to: dummy)
        try links.addAddress(IPAddress("fd00::96:1")!, to: dummy)
        let monitor = try AddressMonitor(interface: dummy)
        defer { monitor.stop() }
        let log = AddressEventLog(monitor)

        // Down: the kernel removes the IPv6 addresses itself (keep_addr_on_down is off by default).
        try KernelTest.shell("ip link set \(dummy) down")
        try log.waitFor([.interfaceDown, .addressRemoved(host("fd00::96:1"))])
        XCTAssertFalse(log.all.contains(.interfaceRemoved), "\(log.all)")
        var mark = log.count
        try KernelTest.shell("ip link set \(dummy) up")

        // Deleted: its addresses go with it, then the interface.
        try KernelTest.shell("ip link del \(dummy)")
        try log.waitFor([.interfaceDown, .addressRemoved(host("10.96.0.1")), .interfaceRemoved], after: mark)
        mark = log.count

        // Created again (another index): its addresses are followed, another interface's are not.
        try links.ensureDummyInterface(named: dummy)
        try KernelTest.shell("ip link add \(dummy)x type dummy && ip addr add 10.96.0.3/32 dev \(dummy)x && ip addr add 10.96.0.2/32 dev \(dummy)")
        try log.waitFor([.addressAdded(host("10.96.0.2"))], after: mark)
        XCTAssertFalse(log.all.contains(.addressAdded(host("10.96.0.3"))), "\(log.all)")
    }

    func testAFullReceiveBufferIsReportedAsAnOverflow() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        // The smallest buffer the kernel allows holds a few notifications; one pipelined send of
        // 2,000 bindings makes 2,000 while the socket is read on another thread.
        let monitor = try AddressMonitor(interface: dummy, receiveBufferSize: 1)
        defer { monitor.stop() }
        let log = AddressEventLog(monitor)
        let addresses = (0..<2000).map { IPAddress("10.98.\($0 / 250).\($0 % 250 + 1)")! }
        for result in links.addAddresses(addresses, to: dummy) { try result.get() }
        try log.waitFor([.overflow])

        // After an overflow, notifications still arrive.
        let mark = log.count
        try KernelTest.shell("ip addr del 10.98.0.1/32 dev \(dummy)")
        try log.waitFor([.addressRemoved(host("10.98.0.1"))], after: mark)
    }
}
