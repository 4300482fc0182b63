// Helpers shared by the test targets.
import Foundation

/// Bytes from hex text; spaces and newlines are ignored.
public func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { $0.isHexDigit }
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// A small deterministic generator (SplitMix64), so failures of randomised tests reproduce.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The two manifests of issue 23 that kept the agent busy for minutes, reproduced.
public enum HostileManifests {
    /// 989 bytes: two chains of lists, each level ten aliases of the one before, and the last of
    /// each chain used as a key. The two keys are equal, and comparing them went through 10⁹ pairs
    /// of nodes: minutes, during which no other file's change was applied.
    public static let aliasBomb: String = {
        func chain(_ name: String) -> String {
            var text = "\(name)0: &\(name)0 [x,x,x,x,x,x,x,x,x,x]\n"
            for level in 1...8 {
                let previous = Array(repeating: "*\(name)\(level - 1)", count: 10).joined(separator: ",")
                text += "\(name)\(level): &\(name)\(level) [\(previous)]\n"
            }
            return text
        }
        let body = chain("a") + chain("b") + "? *a8\n: 1\n? *b8\n: 2\n"
        let comment = "# Two equal complex keys made of aliases (issue 23)."
        return comment + String(repeating: " ", count: 989 - body.utf8.count - comment.utf8.count - 1) + "\n" + body
    }()

    /// 200 KB: 100,000 nested `[` (and their `]`). libyaml 0.2.5 has no depth limit, and its
    /// scanner's cost per token grows with the depth: 115 s.
    public static let deepBrackets = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
}

/// A path inside the repository (`Examples/cluster.yaml`), found from this file's own place
/// (Tests/TestSupport), so tests read the files the README points to wherever the checkout is.
public func repositoryPath(_ relative: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(relative).path
}
