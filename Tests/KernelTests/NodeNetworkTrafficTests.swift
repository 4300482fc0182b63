import Foundation
import IPVS
import NodeNetwork
import XCTest

/// A VIP bound on the dummy interface is a local address: a server listening on the wildcard
/// address accepts connections to it, and removing the VIP makes it unreachable again.
final class NodeNetworkTrafficTests: XCTestCase {
    private let dummy = "kube-ipvs0"

    func testTrafficToAVIPOnTheDummyInterfaceIsAcceptedLocally() throws {
        try KernelTest.requireKernel()
        let links = try LinkManager()
        try links.ensureDummyInterface(named: dummy)
        for (vip, wildcard) in [("10.96.0.10", "0.0.0.0"), ("fd00::10", "::")] {
            let address = try XCTUnwrap(IPAddress(vip))
            let listener = try TCPListener(address: try XCTUnwrap(IPAddress(wildcard)))
            defer { listener.close() }

            XCTAssertThrowsError(try listener.roundTrip(to: address), "\(vip) answers before it is bound")
            try links.addAddress(address, to: dummy)
            XCTAssertEqual(try listener.roundTrip(to: address), "pong", vip)
            try links.removeAddress(address, from: dummy)
            XCTAssertThrowsError(try listener.roundTrip(to: address), "\(vip) answers after it is removed")
        }
    }
}

/// A TCP listener on an ephemeral port, and a client that sends "ping" and expects "pong".
private final class TCPListener {
    private let descriptor: Int32
    private let family: Int32
    let port: UInt16

    struct Failure: Error, CustomStringConvertible {
        var step: String
        var code: Int32
        var description: String { "\(step): \(String(cString: strerror(code)))" }
    }

    init(address: IPAddress) throws {
        let family = address.family == .inet ? AF_INET : AF_INET6
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(step: "socket", code: errno) }
        var storage = Self.socketAddress(address, port: 0)
        var length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else {
            let code = errno
            _ = Glibc.close(descriptor)
            throw Failure(step: "bind/listen", code: code)
        }
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.family = family
        self.descriptor = descriptor
        self.port = withUnsafeBytes(of: &storage) { raw in UInt16(raw[2]) << 8 | UInt16(raw[3]) }
    }

    func close() { _ = Glibc.close(descriptor) }

    /// Connects to `address` on the listener's port, exchanges "ping"/"pong", returns the answer.
    func roundTrip(to address: IPAddress) throws -> String {
        let client = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard client >= 0 else { throw Failure(step: "socket", code: errno) }
        defer { _ = Glibc.close(client) }
        var storage = Self.socketAddress(address, port: port)
        let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
        let connected = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) }
        }
        guard connected == 0 else { throw Failure(step: "connect to \(address.withPort(port))", code: errno) }
        let server = accept(descriptor, nil, nil)
        guard server >= 0 else { throw Failure(step: "accept", code: errno) }
        defer { _ = Glibc.close(server) }
        var buffer = [UInt8](repeating: 0, count: 16)
        _ = send(client, "ping", 4, 0)
        let received = recv(server, &buffer, buffer.count, 0)
        guard received == 4, buffer[0..<4] == Array("ping".utf8)[...] else { throw Failure(step: "receive ping", code: EIO) }
        _ = send(server, "pong", 4, 0)
        let answered = recv(client, &buffer, buffer.count, 0)
        guard answered > 0 else { throw Failure(step: "receive pong", code: errno) }
        return String(decoding: buffer[0..<answered], as: UTF8.self)
    }

    private static func socketAddress(_ address: IPAddress, port: UInt16) -> sockaddr_storage {
        var storage = sockaddr_storage()
        let bytes = address.bytes
        withUnsafeMutableBytes(of: &storage) { raw in
            let family = UInt16(address.family == .inet ? AF_INET : AF_INET6)
            raw.storeBytes(of: family, toByteOffset: 0, as: UInt16.self)
            raw[2] = UInt8(port >> 8)
            raw[3] = UInt8(port & 0xFF)
            // sin_addr at offset 4; sin6_addr at offset 8 (after sin6_flowinfo).
            let offset = address.family == .inet ? 4 : 8
            for (index, byte) in bytes.enumerated() { raw[offset + index] = byte }
        }
        return storage
    }
}
