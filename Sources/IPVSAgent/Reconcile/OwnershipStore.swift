import Foundation
import IPVS

/// What the agent owns in the kernel: the virtual services and VIPs it created or adopted. Only
/// these are ever deleted; everything else in the kernel is left alone.
public struct Ownership: Hashable, Sendable {
    public var services: Set<ServiceKey>
    public var addresses: Set<IPAddress>
    /// The Kubernetes Service each owned virtual service came from, so that an invalid manifest
    /// object holds its Service's kernel state instead of removing it.
    public var origins: [ServiceKey: ObjectName]
    /// The dummy interface the agent created (`nil` when it found it there): `--cleanup` deletes
    /// it once nothing else is bound on it.
    public var interface: String?

    public init(services: Set<ServiceKey> = [], addresses: Set<IPAddress> = [], origins: [ServiceKey: ObjectName] = [:],
                interface: String? = nil) {
        self.services = services
        self.addresses = addresses
        self.origins = origins
        self.interface = interface
    }
}

/// Keeps `Ownership` in a JSON file (`--state-file`, by default under /run, which is cleared at boot
/// exactly like the kernel's IPVS table). Written atomically (temporary file, then rename).
public struct OwnershipStore: Sendable {
    public var path: String

    public init(path: String) {
        self.path = path
    }

    struct File: Codable {
        struct Service: Codable {
            var `protocol`: String
            var address: String
            var port: UInt16
            var origin: String?
        }
        var version: Int
        var services: [Service]
        var addresses: [String]
        /// Missing in files of earlier versions, and when the agent did not create the interface.
        var interface: String?
    }

    /// The recorded ownership; empty when the file does not exist.
    public func load() throws -> Ownership {
        guard FileManager.default.fileExists(atPath: path) else { return Ownership() }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw AgentError("cannot read the state file \(path): \(error.localizedDescription)")
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw AgentError("the state file \(path) is not valid (\(error)); move it away to start over (the agent then adopts only desired services)")
        }
        var ownership = Ownership()
        for service in file.services {
            guard let transport = TransportProtocol(name: service.protocol), let address = IPAddress(service.address) else {
                throw AgentError("the state file \(path) lists an invalid service \(service.protocol) \(service.address):\(service.port)")
            }
            let key = ServiceKey.address(transport, address, port: service.port)
            ownership.services.insert(key)
            if let origin = service.origin?.split(separator: "/", maxSplits: 1), origin.count == 2 {
                ownership.origins[key] = ObjectName(namespace: String(origin[0]), name: String(origin[1]))
            }
        }
        for text in file.addresses {
            guard let address = IPAddress(text) else { throw AgentError("the state file \(path) lists an invalid address \(text)") }
            ownership.addresses.insert(address)
        }
        ownership.interface = file.interface
        return ownership
    }

    /// Records `ownership`, creating the folder when needed.
    public func save(_ ownership: Ownership) throws {
        do {
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
            try Data(Self.json(Self.file(ownership))).write(to: temporary)
            if rename(temporary.path, url.path) != 0 { throw AgentError(String(cString: strerror(errno))) }
        } catch {
            throw AgentError("cannot write the state file \(path): \(error); the agent needs a writable folder there (--state-file)")
        }
    }

    static func file(_ ownership: Ownership) -> File {
        var services: [File.Service] = []
        services.reserveCapacity(ownership.services.count)
        for key in ownership.services.sorted() {
            guard case .address(let transport, let address, let port) = key else { continue }
            services.append(File.Service(protocol: transport.description, address: address.description, port: port,
                                         origin: ownership.origins[key]?.description))
        }
        return File(version: 1, services: services, addresses: ownership.addresses.sorted().map(\.description), interface: ownership.interface)
    }

    /// The file's text, as `JSONEncoder` with `[.prettyPrinted, .sortedKeys]` writes it (byte for
    /// byte, see `OwnershipStoreTests`), put together by hand: the file is written whenever the set
    /// of owned services changes, and at 10,000 services the encoder took 100 ms per write (40 ms
    /// without its formatting). It is read back with `JSONDecoder`.
    static func json(_ ownership: Ownership) -> String { String(decoding: json(file(ownership)), as: UTF8.self) }

    static func json(_ file: File) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(100 + file.addresses.count * 24 + file.services.count * 120)
        out += "{\n  \"addresses\" : [".utf8
        for (index, address) in file.addresses.enumerated() {
            out += (index == 0 ? "\n    " : ",\n    ").utf8
            appendString(address, to: &out)
        }
        out += (file.addresses.isEmpty ? "\n\n  ],\n" : "\n  ],\n").utf8
        if let interface = file.interface {
            out += "  \"interface\" : ".utf8
            appendString(interface, to: &out)
            out += ",\n".utf8
        }
        out += "  \"services\" : [".utf8
        for (index, service) in file.services.enumerated() {
            out += (index == 0 ? "\n    {\n      \"address\" : " : ",\n    {\n      \"address\" : ").utf8
            appendString(service.address, to: &out)
            if let origin = service.origin {
                out += ",\n      \"origin\" : ".utf8
                appendString(origin, to: &out)
            }
            out += ",\n      \"port\" : \(service.port),\n      \"protocol\" : ".utf8
            appendString(service.protocol, to: &out)
            out += "\n    }".utf8
        }
        out += (file.services.isEmpty ? "\n\n  ],\n  \"version\" : " : "\n  ],\n  \"version\" : ").utf8
        out += "\(file.version)\n}".utf8
        return out
    }

    /// A JSON string literal, escaped as `JSONEncoder` escapes (`/` included). UTF-8 bytes of
    /// non-ASCII characters are all 0x80 or more, so they pass through unchanged.
    private static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out += [UInt8(ascii: "\\"), byte]
            case 0x0A: out += "\\n".utf8
            case 0x0D: out += "\\r".utf8
            case 0x09: out += "\\t".utf8
            case 0x08: out += "\\b".utf8
            case 0x0C: out += "\\f".utf8
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += "\\u00".utf8
                out += [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// An error of the agent with a sentence for the user.
public struct AgentError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
