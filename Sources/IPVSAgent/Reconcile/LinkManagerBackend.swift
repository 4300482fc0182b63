import IPVS
import NodeNetwork

/// The real dummy interface and VIPs, through NodeNetwork's `LinkManager` (rtnetlink).
public final class LinkManagerBackend: VIPBackend, Sendable {
    private let links: LinkManager

    public init() throws {
        links = try LinkManager()
    }

    public func ensureInterface(named name: String, up: Bool) throws -> Bool {
        try links.ensureDummyInterface(named: name, up: up)
    }

    public func addresses(on name: String) throws -> Set<IPAddress> {
        guard try links.interfaceIndex(named: name) != nil else { return [] }
        return Set(try links.addresses(on: name).filter(\.isHostPrefix).map(\.address))
    }

    public func add(_ address: IPAddress, to name: String) throws {
        try links.addAddress(address, to: name)
    }

    /// Pipelined: a few hundred requests per send instead of one round trip per address.
    public func add(_ addresses: [IPAddress], to name: String) -> [Result<Void, any Error>] {
        links.addAddresses(addresses, to: name).map { $0.mapError { $0 as any Error } }
    }

    public func remove(_ address: IPAddress, from name: String) throws {
        try links.removeAddress(address, from: name)
    }

    public func deleteInterfaceIfUnused(named name: String) throws -> Bool {
        guard try links.interfaceIndex(named: name) != nil else { return false }
        // The kernel gives an interface that is up an IPv6 link-local address of its own.
        guard try links.addresses(on: name).allSatisfy({ Self.isIPv6LinkLocal($0.address) }) else { return false }
        try links.deleteInterface(named: name)
        return true
    }

    /// fe80::/10.
    static func isIPv6LinkLocal(_ address: IPAddress) -> Bool {
        if case .v6(let high, _) = address { return high >> 54 == 0x3FA }
        return false
    }

    /// Every address of the node's interfaces but `interface` (the dummy one), loopback and
    /// link-local ones included.
    public func localAddresses(excluding interface: String) throws -> [IPAddress] {
        try links.localAddresses(excluding: [interface])
    }
}
