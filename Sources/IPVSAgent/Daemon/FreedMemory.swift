import Glibc

/// Hands the memory a whole load freed back to the system. The lists of the API server (or the
/// manifest files) are parsed into trees that are freed once decoded, but glibc keeps freed memory
/// in its arenas, so the agent's resident memory would stay at its peak; `malloc_trim(0)` returns
/// the free pages. Looked up at run time: Swift's `Glibc` module does not export `<malloc.h>`,
/// and a C library without it (musl) simply keeps its memory.
enum FreedMemory {
    private static let trim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()

    /// Returns the free memory of every arena to the system.
    static func release() {
        _ = trim?(0)
    }
}
