import IPVS

/// The dummy interface and its addresses as the reconciler uses them; `LinkManagerBackend` is the
/// real one (rtnetlink), tests use a fake.
public protocol VIPBackend: AnyObject, Sendable {
    /// Creates the dummy interface when missing and, when `up`, sets it up (when not, a new one is
    /// left down and an existing one as it is); returns whether it was created.
    func ensureInterface(named name: String, up: Bool) throws -> Bool
    /// The addresses bound on the interface.
    func addresses(on name: String) throws -> Set<IPAddress>
    /// Binds `address` as /32 or /128 (no error when it is already there).
    func add(_ address: IPAddress, to name: String) throws
    /// Unbinds `address` (no error when it is missing).
    func remove(_ address: IPAddress, from name: String) throws
    /// Binds every address of `addresses`; one result per address, in order.
    func add(_ addresses: [IPAddress], to name: String) -> [Result<Void, any Error>]
    /// Deletes the dummy interface when no address but IPv6 link-local ones is bound on it;
    /// returns whether it did (no error when it is missing).
    func deleteInterfaceIfUnused(named name: String) throws -> Bool
}

extension VIPBackend {
    /// One `add(_:to:)` per address.
    public func add(_ addresses: [IPAddress], to name: String) -> [Result<Void, any Error>] {
        addresses.map { address in Result { try add(address, to: name) } }
    }
}
