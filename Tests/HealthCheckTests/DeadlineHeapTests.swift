import NIOCore
import XCTest

@testable import HealthCheck

/// The poller's deadline heap: entries come out in deadline order, each with its value.
final class DeadlineHeapTests: XCTestCase {
    func testDeadlineHeapPopsInDeadlineOrder() {
        var heap = DeadlineHeap<Int>()
        let base = NIODeadline.now()
        let offsets: [Int64] = [50, 10, 40, 10, 30, 0, 20, 60, 5]
        for (index, offset) in offsets.enumerated() {
            heap.push(base + .milliseconds(offset), index)
        }
        var popped: [Int64] = []
        while let entry = heap.pop() {
            popped.append((entry.deadline - base).nanoseconds / 1_000_000)
            XCTAssertEqual(offsets[entry.value], popped.last, "each deadline keeps its value")
        }
        XCTAssertEqual(popped, offsets.sorted())
        XCTAssertEqual(heap.count, 0)
    }
}
