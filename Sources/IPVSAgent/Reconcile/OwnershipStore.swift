import Foundation
import IPVS

/// What the agent owns in the kernel: the virtual services and VIPs it created or adopted. Only
/// these are ever deleted; everything else in the kernel is left alone.
public struct Ownership: Hashable, Sendable {
    public var services: Set<ServiceKey>
    public var addresses: Set<IPAddress>
    /// The Kubernetes Service each owned (or claimed) virtual service came from, so that an
    /// invalid manifest object holds its Service's kernel state instead of removing it.
    public var origins: [ServiceKey: ObjectName]
    /// The dummy interface the agent created (`nil` when it found it there): `--cleanup` deletes
    /// it once nothing else is bound on it.
    public var interface: String?
    /// Virtual services and VIPs the agent was about to create when this was recorded
    /// (`OwnershipStore.claim`): the next start owns those the kernel holds, and forgets the rest.
    public var claimedServices: Set<ServiceKey> = []
    public var claimedAddresses: Set<IPAddress> = []

    public init(services: Set<ServiceKey> = [], addresses: Set<IPAddress> = [], origins: [ServiceKey: ObjectName] = [:],
                interface: String? = nil) {
        self.services = services
        self.addresses = addresses
        self.origins = origins
        self.interface = interface
    }
}

/// Keeps `Ownership` in a JSON file (`--state-file`, by default under /run, which is cleared at boot
/// exactly like the kernel's IPVS table). Written atomically and durably (a temporary file, fsynced,
/// then renamed), by one writer at a time: the reconciler, and the threads of a first start that
/// bind VIPs and program IPVS while the manifests load.
///
/// Ownership is recorded before the kernel change it covers: whoever is about to create virtual
/// services or VIPs first `claim`s them (one write per batch), and the reconciler settles each
/// claim when it saves the outcome. A `kill -9` in between leaves the claim in the file, and the
/// next start owns exactly what the kernel holds of it (`Reconciler.start`). Only what is missing
/// from the kernel is ever claimed, so nothing that was there before (someone else's) is taken.
public final class OwnershipStore: @unchecked Sendable {
    public let path: String
    /// Guards `recorded` and `claims`, and makes one write at a time.
    private let lock = NSLock()
    /// The ownership last saved.
    private var recorded = Ownership()
    /// Claims not settled yet (services, their origins and addresses), written beside `recorded`.
    private var claims = Ownership()

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
        /// Missing in files of earlier versions, and when nothing is claimed.
        var claimedServices: [Service]?
        var claimedAddresses: [String]?
    }

    /// The recorded ownership, claims included; empty when the file does not exist. The claims
    /// stay claimed (written with every later save) until a save settles them.
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
        ownership.services = try services(file.services, origins: &ownership.origins)
        ownership.addresses = try addresses(file.addresses)
        ownership.interface = file.interface
        ownership.claimedServices = try services(file.claimedServices ?? [], origins: &ownership.origins)
        ownership.claimedAddresses = try addresses(file.claimedAddresses ?? [])
        lock.withLock {
            recorded = ownership
            recorded.claimedServices = []
            recorded.claimedAddresses = []
            claims = Ownership(services: ownership.claimedServices, addresses: ownership.claimedAddresses,
                               origins: ownership.origins.filter { ownership.claimedServices.contains($0.key) })
        }
        return ownership
    }

    private func services(_ services: [File.Service], origins: inout [ServiceKey: ObjectName]) throws -> Set<ServiceKey> {
        var keys: Set<ServiceKey> = []
        for service in services {
            guard let transport = TransportProtocol(name: service.protocol), let address = IPAddress(service.address) else {
                throw AgentError("the state file \(path) lists an invalid service \(service.protocol) \(service.address):\(service.port)")
            }
            let key = ServiceKey.address(transport, address, port: service.port)
            keys.insert(key)
            if let origin = service.origin?.split(separator: "/", maxSplits: 1), origin.count == 2 {
                origins[key] = ObjectName(namespace: String(origin[0]), name: String(origin[1]))
            }
        }
        return keys
    }

    private func addresses(_ texts: [String]) throws -> Set<IPAddress> {
        try Set(texts.map { text in
            guard let address = IPAddress(text) else { throw AgentError("the state file \(path) lists an invalid address \(text)") }
            return address
        })
    }

    /// Records `ownership` (its own claims aside) with the claims not settled yet, creating the
    /// folder when needed. The claims of `settled` (services and addresses) are settled first:
    /// their outcome is in `ownership` now. The claims in memory are updated even when the
    /// write fails, so the next write is complete.
    public func save(_ ownership: Ownership, settling settled: Ownership = Ownership()) throws {
        try lock.withLock {
            recorded = ownership
            recorded.claimedServices = []
            recorded.claimedAddresses = []
            claims.services.subtract(settled.services)
            for key in settled.services { claims.origins[key] = nil }
            claims.addresses.subtract(settled.addresses)
            try write()
        }
    }

    /// Records durably that the agent is about to create the virtual services `services` (from
    /// the Kubernetes Services in `origins`) and to bind `addresses`: call it before the kernel
    /// change, and act only when it succeeded. The claims stay until a `save` settles them.
    public func claim(services: some Sequence<ServiceKey>, origins: [ServiceKey: ObjectName] = [:],
                      addresses: some Sequence<IPAddress>) throws {
        try lock.withLock {
            claims.services.formUnion(services)
            claims.origins.merge(origins) { _, new in new }
            claims.addresses.formUnion(addresses)
            try write()
        }
    }

    /// Writes `recorded` with `claims`; called with `lock` held.
    private func write() throws {
        var ownership = recorded
        ownership.claimedServices = claims.services
        ownership.claimedAddresses = claims.addresses
        ownership.origins.merge(claims.origins) { recorded, _ in recorded }
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = (folder.isEmpty ? "" : folder + "/") + ".\((path as NSString).lastPathComponent).tmp"
        do {
            try FileManager.default.createDirectory(atPath: folder.isEmpty ? "." : folder, withIntermediateDirectories: true)
            try Self.writeDurably(Self.json(Self.file(ownership)), to: temporary)
            guard rename(temporary, path) == 0 else { throw AgentError("rename: \(String(cString: strerror(errno)))") }
            // The rename itself is durable once the folder is.
            let directory = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if directory >= 0 {
                _ = fsync(directory)
                close(directory)
            }
        } catch {
            throw AgentError("cannot write the state file \(path): \(error); the agent needs a writable folder there (--state-file)")
        }
    }

    /// Writes `bytes` to a new file at `path` and waits until they are on disk (fsync).
    private static func writeDurably(_ bytes: [UInt8], to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw AgentError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw AgentError("write \(path): \(String(cString: strerror(errno)))") }
            written += count
        }
        guard fsync(descriptor) == 0 else { throw AgentError("fsync \(path): \(String(cString: strerror(errno)))") }
    }

    static func file(_ ownership: Ownership) -> File {
        func services(_ keys: Set<ServiceKey>) -> [File.Service] {
            var services: [File.Service] = []
            services.reserveCapacity(keys.count)
            for key in keys.sorted() {
                guard case .address(let transport, let address, let port) = key else { continue }
                services.append(File.Service(protocol: transport.description, address: address.description, port: port,
                                             origin: ownership.origins[key]?.description))
            }
            return services
        }
        return File(version: 1, services: services(ownership.services), addresses: ownership.addresses.sorted().map(\.description),
                    interface: ownership.interface,
                    claimedServices: ownership.claimedServices.isEmpty ? nil : services(ownership.claimedServices),
                    claimedAddresses: ownership.claimedAddresses.isEmpty ? nil : ownership.claimedAddresses.sorted().map(\.description))
    }

    /// The file's text, as `JSONEncoder` with `[.prettyPrinted, .sortedKeys]` writes it (byte for
    /// byte, see `OwnershipStoreTests`), put together by hand: the file is written whenever the set
    /// of owned services changes, and at 10,000 services the encoder took 100 ms per write (40 ms
    /// without its formatting). It is read back with `JSONDecoder`.
    static func json(_ ownership: Ownership) -> String { String(decoding: json(file(ownership)), as: UTF8.self) }

    static func json(_ file: File) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(100 + (file.addresses.count + (file.claimedAddresses?.count ?? 0)) * 24
            + (file.services.count + (file.claimedServices?.count ?? 0)) * 120)
        out += "{\n".utf8
        appendAddresses("addresses", file.addresses, to: &out)
        if let claimed = file.claimedAddresses { appendAddresses("claimedAddresses", claimed, to: &out) }
        if let claimed = file.claimedServices { appendServices("claimedServices", claimed, to: &out) }
        if let interface = file.interface {
            out += "  \"interface\" : ".utf8
            appendString(interface, to: &out)
            out += ",\n".utf8
        }
        appendServices("services", file.services, to: &out)
        out += "  \"version\" : \(file.version)\n}".utf8
        return out
    }

    /// `  "key" : [ ... ],` and a newline: a list of address strings.
    private static func appendAddresses(_ key: String, _ addresses: [String], to out: inout [UInt8]) {
        out += "  \"\(key)\" : [".utf8
        for (index, address) in addresses.enumerated() {
            out += (index == 0 ? "\n    " : ",\n    ").utf8
            appendString(address, to: &out)
        }
        out += (addresses.isEmpty ? "\n\n  ],\n" : "\n  ],\n").utf8
    }

    /// `  "key" : [ ... ],` and a newline: a list of services.
    private static func appendServices(_ key: String, _ services: [File.Service], to out: inout [UInt8]) {
        out += "  \"\(key)\" : [".utf8
        for (index, service) in services.enumerated() {
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
        out += (services.isEmpty ? "\n\n  ],\n" : "\n  ],\n").utf8
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
