import Foundation
import XCTest
@testable import IPVSAgent

final class FreedMemoryTests: XCTestCase {
    /// Resident memory of this process, in KiB.
    func residentKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try XCTUnwrap(Int(line.split(separator: " ")[1]))
    }

    func testFreedMemoryGoesBackToTheSystem() throws {
        // 64 MiB in small blocks (from the heap, not mapped one by one), all freed but the last, which
        // keeps the heap's top in use: free() alone gives none of it back.
        let blocks = (0..<16_384).map { _ -> UnsafeMutableRawPointer in
            let block = malloc(4_096)!
            memset(block, 1, 4_096)
            return block
        }
        defer { free(blocks.last) }
        for block in blocks.dropLast() { free(block) }
        let before = try residentKiB()
        FreedMemory.release()
        let after = try residentKiB()
        XCTAssertLessThan(after, before - 32 * 1024, "at least half of the 64 MiB freed is returned: \(before) KiB before, \(after) KiB after")
    }
}
