import IPVS
import NodeNetwork
import XCTest
@testable import IPVSAgent

/// How `AddressWatch` turns the dummy interface's events into one address verification.
final class AddressWatchTests: XCTestCase {
    private func host(_ text: String) -> InterfaceAddress { InterfaceAddress(host: ip(text)) }

    func testABurstOfRemovalsBecomesOneVerificationOfThoseAddresses() {
        let pending = AddressWatch.PendingDrift()
        XCTAssertNil(pending.take())
        XCTAssertFalse(pending.record(.addressAdded(host("10.96.0.10"))), "an addition takes nothing away")
        XCTAssertNil(pending.take())
        XCTAssertTrue(pending.record(.addressRemoved(host("10.96.0.10"))))
        XCTAssertTrue(pending.record(.addressRemoved(host("fd00::10"))))
        // Not a VIP binding (VIPs are /32 and /128): someone else's address.
        XCTAssertFalse(pending.record(.addressRemoved(InterfaceAddress(address: ip("10.97.0.0"), prefixLength: 24))))
        let drift = pending.take()
        XCTAssertEqual(drift?.removed, [ip("10.96.0.10"), ip("fd00::10")])
        XCTAssertEqual(drift?.interfaceWentDown, false)
        XCTAssertNil(pending.take(), "taken once")
    }

    func testTheInterfaceGoneOrDownOrLostNotificationsCheckEveryAddress() {
        let pending = AddressWatch.PendingDrift()
        for event: AddressMonitor.Event in [.interfaceRemoved, .overflow] {
            XCTAssertTrue(pending.record(.addressRemoved(host("10.96.0.10"))))
            XCTAssertTrue(pending.record(event))
            XCTAssertTrue(pending.record(.addressRemoved(host("10.96.0.11"))))
            let drift = pending.take()
            XCTAssertNotNil(drift)
            XCTAssertNil(drift?.removed, "\(event)")
            XCTAssertEqual(drift?.interfaceWentDown, false)
        }
        XCTAssertTrue(pending.record(.interfaceDown))
        XCTAssertTrue(pending.record(.addressRemoved(host("fd00::10"))))
        XCTAssertTrue(pending.record(.overflow))
        let down = pending.take()
        XCTAssertNil(down?.removed)
        XCTAssertEqual(down?.interfaceWentDown, true)
        // `ip link del` sets the interface down first: it is created again, not set up.
        XCTAssertTrue(pending.record(.interfaceDown))
        XCTAssertTrue(pending.record(.interfaceRemoved))
        XCTAssertEqual(pending.take()?.interfaceWentDown, false)
    }
}
