import Foundation
import NIOCore

// MARK: - ConnectAddress

/// A check target's address as `connect` takes it, held inline (`SocketAddress` boxes it), with what the poller
/// needs to know of it worked out once.
struct ConnectAddress {
    /// Room for an address of either family (a `sockaddr_in` is the shorter).
    private let storage: sockaddr_in6
    private let length: socklen_t
    /// ``TCPSocket/family(of:)``.
    let family: CInt
    /// ``TCPSocket/mayConnectToItself(_:)``.
    let mayConnectToItself: Bool

    init(_ address: SocketAddress) {
        family = TCPSocket.family(of: address)
        mayConnectToItself = TCPSocket.mayConnectToItself(address)
        var storage = sockaddr_in6()
        var length = 0
        if family != AF_UNSPEC {
            address.withSockAddr { pointer, size in
                length = min(size, MemoryLayout<sockaddr_in6>.size)
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: length)) }
            }
        }
        self.storage = storage
        self.length = socklen_t(length)
    }

    func withSockAddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }
}
