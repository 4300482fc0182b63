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

    public init(services: Set<ServiceKey> = [], addresses: Set<IPAddress> = [], origins: [ServiceKey: ObjectName] = [:]) {
        self.services = services
        self.addresses = addresses
        self.origins = origins
    }
}

/// Keeps `Ownership` in a JSON file (`--state-file`, by default under /run, which is cleared at boot
/// exactly like the kernel's IPVS table). Written atomically (temporary file, then rename).
public struct OwnershipStore: Sendable {
    public var path: String

    public init(path: String) {
        self.path = path
    }

    private struct File: Codable {
        struct Service: Codable {
            var `protocol`: String
            var address: String
            var port: UInt16
            var origin: String?
        }
        var version: Int
        var services: [Service]
        var addresses: [String]
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
        return ownership
    }

    /// Records `ownership`, creating the folder when needed.
    public func save(_ ownership: Ownership) throws {
        var services: [File.Service] = []
        for key in ownership.services.sorted() {
            guard case .address(let transport, let address, let port) = key else { continue }
            services.append(File.Service(protocol: transport.description, address: address.description, port: port,
                                         origin: ownership.origins[key]?.description))
        }
        let file = File(version: 1, services: services, addresses: ownership.addresses.sorted().map(\.description))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
            try encoder.encode(file).write(to: temporary)
            if rename(temporary.path, url.path) != 0 { throw AgentError(String(cString: strerror(errno))) }
        } catch {
            throw AgentError("cannot write the state file \(path): \(error); the agent needs a writable folder there (--state-file)")
        }
    }
}

/// An error of the agent with a sentence for the user.
public struct AgentError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
