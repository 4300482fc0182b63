import NIOCore

// MARK: - DeadlineHeap

/// A binary min-heap of deadlines, each with its value: connects in progress (completed checks leave their
/// entry until it comes up: cheaper than finding and removing it, and bounded by the checks started within
/// one timeout) and repeating checks due.
struct DeadlineHeap<Value> {
    struct Entry {
        var deadline: NIODeadline
        var value: Value
    }

    private var entries: [Entry] = []

    var first: Entry? { entries.first }
    var firstDeadline: NIODeadline? { entries.first?.deadline }
    var count: Int { entries.count }

    // Entries move through a hole, each once, in place: `swapAt` on the array copies them, which for a class
    // reference is a retain and a release per move, and a sift makes one move per level of the heap.

    mutating func push(_ deadline: NIODeadline, _ value: Value) {
        entries.append(Entry(deadline: deadline, value: value))
        entries.withUnsafeMutableBufferPointer { heap in
            let base = heap.baseAddress!
            var hole = heap.count - 1
            let entry = (base + hole).move()
            while hole > 0 {
                let parent = (hole - 1) / 2
                guard deadline < base[parent].deadline else { break }
                (base + hole).moveInitialize(from: base + parent, count: 1)
                hole = parent
            }
            (base + hole).initialize(to: entry)
        }
    }

    @discardableResult
    mutating func pop() -> Entry? {
        guard let last = entries.popLast() else { return nil }
        guard !entries.isEmpty else { return last }
        return entries.withUnsafeMutableBufferPointer { heap in
            let base = heap.baseAddress!
            let top = base.move()
            var hole = 0
            while true {
                var child = 2 * hole + 1
                guard child < heap.count else { break }
                if child + 1 < heap.count, base[child + 1].deadline < base[child].deadline { child += 1 }
                guard base[child].deadline < last.deadline else { break }
                (base + hole).moveInitialize(from: base + child, count: 1)
                hole = child
            }
            (base + hole).initialize(to: last)
            return top
        }
    }

    /// Pops the first entry if its deadline is `deadline` or earlier.
    mutating func pop(dueBy deadline: NIODeadline) -> Entry? {
        guard let first = firstDeadline, first <= deadline else { return nil }
        return pop()
    }
}
