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
/// services or VIPs first `claim`s them, and the reconciler settles each claim when it saves the
/// outcome. Claims go to a journal beside the state file (`claimsPath`), one line per batch,
/// appended and fsynced: a claim costs its batch, not the whole state. A `kill -9` in between
/// leaves the claim there, and the next start owns exactly what the kernel holds of it
/// (`Reconciler.start`). Only what is missing from the kernel is ever claimed, so nothing that
/// was there before (someone else's) is taken.
public final class OwnershipStore: @unchecked Sendable {
    public let path: String
    /// Guards `claims`, and makes one write at a time.
    private let lock = NSLock()
    /// Claims not settled yet (services, their origins and addresses), as the journal holds them.
    private var claims = Ownership()

    public init(path: String) {
        self.path = path
    }

    /// The claims journal: the state file's path with `.claims` appended; missing when every
    /// claim is settled.
    public var claimsPath: String { path + ".claims" }

    /// One line of the claims journal: one batch.
    struct Claim: Codable {
        var services: [File.Service]
        var addresses: [String]
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

    /// The recorded ownership with the claims of the journal; empty when neither file exists.
    /// The claims stay in the journal until a save settles them.
    public func load() throws -> Ownership {
        var ownership = Ownership()
        if FileManager.default.fileExists(atPath: path) {
            let file: File
            do {
                file = try JSONDecoder().decode(File.self, from: try read(path))
            } catch let error as AgentError {
                throw error
            } catch {
                throw AgentError("the state file \(path) is not valid (\(error)); move it away to start over (the agent then adopts only desired services)")
            }
            ownership.services = try services(file.services, origins: &ownership.origins)
            ownership.addresses = try addresses(file.addresses)
            ownership.interface = file.interface
        }
        if FileManager.default.fileExists(atPath: claimsPath) {
            let data = try read(claimsPath)
            // A line is whole once its newline is written: a last line without one was being
            // written when the agent died, so nothing it claims was created.
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
            for (index, line) in lines.enumerated() where !line.isEmpty {
                let claim: Claim
                do {
                    claim = try JSONDecoder().decode(Claim.self, from: Data(line))
                } catch {
                    throw AgentError("line \(index + 1) of the claims file \(claimsPath) is not valid (\(error)); move it away to start over (what an interrupted run created and the Services do not use then stays)")
                }
                ownership.claimedServices.formUnion(try services(claim.services, origins: &ownership.origins))
                ownership.claimedAddresses.formUnion(try addresses(claim.addresses))
            }
            ownership.claimedServices.subtract(ownership.services)
            ownership.claimedAddresses.subtract(ownership.addresses)
        }
        lock.withLock {
            claims = Ownership(services: ownership.claimedServices, addresses: ownership.claimedAddresses,
                               origins: ownership.origins.filter { ownership.claimedServices.contains($0.key) })
        }
        return ownership
    }

    private func read(_ path: String) throws -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw AgentError("cannot read the state file \(path): \(error.localizedDescription)")
        }
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

    /// Records `ownership` (its own claims aside), creating the folder when needed, then settles
    /// the claims of `settled` (services and addresses), whose outcome is in `ownership` now: the
    /// journal is written again with the claims left (removed when none is). In that order, so
    /// that a claim is never dropped before its outcome is recorded. The claims in memory are
    /// updated even when a write fails, so the next write is complete.
    public func save(_ ownership: Ownership, settling settled: Ownership = Ownership()) throws {
        try lock.withLock {
            let before = (claims.services.count, claims.addresses.count)
            claims.services.subtract(settled.services)
            for key in settled.services { claims.origins[key] = nil }
            claims.addresses.subtract(settled.addresses)
            try write(ownership)
            if (claims.services.count, claims.addresses.count) != before { try rewriteClaims() }
        }
    }

    /// Records durably that the agent is about to create the virtual services `services` (from
    /// the Kubernetes Services in `origins`) and to bind `addresses`: call it before the kernel
    /// change, and act only when it succeeded. The claims stay until a `save` settles them.
    public func claim(services: some Sequence<ServiceKey>, origins: [ServiceKey: ObjectName] = [:],
                      addresses: some Sequence<IPAddress>) throws {
        let services = Set(services), addresses = Set(addresses)
        let claimed = Ownership(services: services, addresses: addresses, origins: origins.filter { services.contains($0.key) })
        let line = Self.line(claimed)
        try lock.withLock {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                let created = !FileManager.default.fileExists(atPath: claimsPath)
                try Self.writeDurably(line, to: claimsPath, appending: true)
                if created { syncFolder() }
            } catch {
                throw AgentError("cannot write the state file's claims \(claimsPath): \(error); the agent needs a writable folder there (--state-file)")
            }
            claims.services.formUnion(services)
            claims.origins.merge(claimed.origins) { _, new in new }
            claims.addresses.formUnion(addresses)
        }
    }

    /// `claimed` as one line of the journal (a `Claim` in compact JSON), its newline included. Written by hand
    /// for the reason `json(_:)` is (`JSONEncoder`'s cost with many entries): a cold start claims every
    /// service and VIP it creates. Read back with `JSONDecoder`.
    static func line(_ claimed: Ownership) -> [UInt8] {
        let file = file(claimed)
        var out: [UInt8] = []
        out.reserveCapacity(32 + file.addresses.count * 20 + file.services.count * 90)
        out += #"{"addresses":["#.utf8
        for (index, address) in file.addresses.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(address, to: &out)
        }
        out += #"],"services":["#.utf8
        for (index, service) in file.services.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += #"{"address":"#.utf8
            appendString(service.address, to: &out)
            if let origin = service.origin {
                out += #","origin":"#.utf8
                appendString(origin, to: &out)
            }
            out += #","port":\#(service.port),"protocol":"#.utf8
            appendString(service.protocol, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out += "]}\n".utf8
        return out
    }

    private var folder: String {
        let folder = (path as NSString).deletingLastPathComponent
        return folder.isEmpty ? "." : folder
    }

    /// Makes the folder's entries (a rename, a new or removed file) durable.
    private func syncFolder() {
        let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }

    /// Writes `recorded`; called with `lock` held.
    private func write(_ ownership: Ownership) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try replace(path, with: Self.json(Self.file(ownership)))
        } catch {
            throw AgentError("cannot write the state file \(path): \(error); the agent needs a writable folder there (--state-file)")
        }
    }

    /// Writes the journal again with `claims` (one line), or removes it when there is none;
    /// called with `lock` held.
    private func rewriteClaims() throws {
        do {
            if claims.services.isEmpty && claims.addresses.isEmpty {
                guard unlink(claimsPath) == 0 || errno == ENOENT else { throw AgentError("unlink: \(String(cString: strerror(errno)))") }
                syncFolder()
            } else {
                try replace(claimsPath, with: Self.line(claims))
            }
        } catch {
            throw AgentError("cannot write the state file's claims \(claimsPath): \(error); the agent needs a writable folder there (--state-file)")
        }
    }

    /// Replaces the file at `target` with `bytes`, atomically (a temporary file renamed over it)
    /// and durably.
    private func replace(_ target: String, with bytes: [UInt8]) throws {
        let temporary = folder + "/.\((target as NSString).lastPathComponent).tmp"
        try Self.writeDurably(bytes, to: temporary)
        guard rename(temporary, target) == 0 else { throw AgentError("rename: \(String(cString: strerror(errno)))") }
        syncFolder()
    }

    /// Writes `bytes` to a new file at `path` (or at its end, `appending`) and waits until they
    /// are on disk (fsync).
    private static func writeDurably(_ bytes: [UInt8], to path: String, appending: Bool = false) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (appending ? O_APPEND : O_TRUNC), 0o644)
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
    /// of owned services changes, and with many services the encoder was most of that write's cost.
    /// It is read back with `JSONDecoder`.
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
