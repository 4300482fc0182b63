import NetworkAddress
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The node's network interfaces and addresses, managed over rtnetlink (libnl-route): the dummy
/// interface that holds the VIPs, the VIPs on it, and the node's own addresses.
///
/// One `NETLINK_ROUTE` socket, used by one call at a time (calls from several tasks are
/// serialised). Every operation needs `CAP_NET_ADMIN` in the network namespace, except listing.
///
/// ```swift
/// let links = try LinkManager()
/// try links.ensureDummyInterface(named: "kube-ipvs0")
/// try links.addAddress(IPAddress("10.96.0.1")!, to: "kube-ipvs0")     // 10.96.0.1/32
/// ```
public final class LinkManager: Sendable {
    private let connection: Mutex<Connection>

    /// The interface kind `ensureDummyInterface(named:)` creates. The corresponding kernel
    /// constant is the `IFLA_INFO_KIND` string `dummy`.
    static let dummyKind = "dummy"

    /// Opens the rtnetlink socket.
    public init() throws(NodeNetworkError) {
        do {
            connection = Mutex(Connection(socket: try RouteSocket()))
        } catch {
            throw NodeNetworkError(error, operation: "open", object: "a route netlink socket (NETLINK_ROUTE)")
        }
    }

    // MARK: - Interfaces

    /// Creates the dummy interface `name` if it is missing and, when `up`, sets it up (`IFF_UP`).
    ///
    /// Returns `true` when it created the interface, `false` when it already existed (when `up`,
    /// it is set up if it was down; else its state is left as it is). Throws `.notDummy` when an
    /// interface of that name exists but is not a dummy one: VIPs are never bound on a real
    /// interface by mistake. Addresses bind faster on a down interface: on an up one, the kernel
    /// walks every route through the interface for each address added (`fib_sync_up`).
    @discardableResult
    public func ensureDummyInterface(named name: String, up: Bool = true) throws(NodeNetworkError) -> Bool {
        try Self.validateInterfaceName(name)
        let object = "interface \(name)"
        return try connection.withLock { (connection) throws(NodeNetworkError) -> Bool in
            var created = false
            var link = try attempt("look up", object) { () throws(SystemFailure) in try connection.link(named: name) }
            if link == nil {
                do throws(SystemFailure) {
                    try connection.socket.createLink(named: name, kind: Self.dummyKind, up: up)
                    created = true
                } catch where error.errno == EEXIST {
                    // Created by someone else since the look-up; checked below like any existing one.
                } catch {
                    throw NodeNetworkError(error, operation: "create dummy", object: object,
                                           hint: error.errno == EOPNOTSUPP
                                               ? "the kernel has no dummy interfaces; load the dummy module (modprobe dummy) or use a kernel built with CONFIG_DUMMY"
                                               : nil)
                }
                link = try attempt("look up", object) { () throws(SystemFailure) in try connection.link(named: name) }
            }
            guard let link else {
                throw NodeNetworkError(kind: .notFound, operation: "find the new", object: object, errno: ENODEV,
                                       hint: "the interface disappeared right after it was created; retry")
            }
            if !created { try Self.requireDummy(link, operation: "use") }
            if up, !link.isUp {
                try attempt("set up (IFF_UP)", object) { () throws(SystemFailure) in
                    try connection.socket.setUp(index: link.index, name: link.name)
                }
            }
            return created
        }
    }

    /// The interface index of `name`, or `nil` when there is no such interface.
    public func interfaceIndex(named name: String) throws(NodeNetworkError) -> Int32? {
        try Self.validateInterfaceName(name)
        return try connection.withLock { (connection) throws(NodeNetworkError) -> Int32? in
            try attempt("look up", "interface \(name)") { () throws(SystemFailure) in try connection.link(named: name)?.index }
        }
    }

    /// Deletes the dummy interface `name`, and with it every address on it. No error when it is
    /// missing; throws `.notDummy` for an interface that is not a dummy one.
    public func deleteInterface(named name: String) throws(NodeNetworkError) {
        try Self.validateInterfaceName(name)
        let object = "interface \(name)"
        try connection.withLock { (connection) throws(NodeNetworkError) in
            guard let link = try attempt("look up", object, { () throws(SystemFailure) in try connection.link(named: name) }) else {
                return
            }
            try Self.requireDummy(link, operation: "delete")
            do throws(SystemFailure) {
                try connection.socket.deleteLink(index: link.index)
                connection.indexes[name] = nil
            } catch where error.errno == ENODEV {
                // Deleted by someone else since the look-up.
            } catch {
                throw NodeNetworkError(error, operation: "delete", object: object)
            }
        }
    }

    // MARK: - Addresses

    /// The addresses bound on interface `name`, of both families and every prefix length
    /// (including the IPv6 link-local address the kernel adds), sorted.
    /// Throws `.notFound` when the interface does not exist.
    public func addresses(on name: String) throws(NodeNetworkError) -> [InterfaceAddress] {
        try Self.validateInterfaceName(name)
        let object = "interface \(name)"
        return try connection.withLock { (connection) throws(NodeNetworkError) -> [InterfaceAddress] in
            let index = try Self.existingIndex(connection, name: name, operation: "list the addresses of")
            let records = try attempt("list the addresses of", object) { () throws(SystemFailure) in try connection.socket.addresses() }
            return records.filter { $0.interfaceIndex == index }
                .map { InterfaceAddress(address: $0.address, prefixLength: $0.prefixLength) }
                .sorted()
        }
    }

    /// Binds `address` on interface `name` as /32 (IPv4) or /128 (IPv6, with `IFA_F_NODAD` so it
    /// is usable at once, without duplicate address detection). Already bound is success.
    /// Throws `.notFound` when the interface does not exist.
    public func addAddress(_ address: IPAddress, to name: String) throws(NodeNetworkError) {
        try Self.validateInterfaceName(name)
        let binding = InterfaceAddress(host: address)
        let operation = "add address \(binding) to", object = "interface \(name)"
        try connection.withLock { (connection) throws(NodeNetworkError) in
            let added: Void?
            do throws(SystemFailure) {
                added = try connection.withIndex(named: name) { (index) throws(SystemFailure) in
                    do throws(SystemFailure) {
                        try connection.socket.addAddress(address, prefixLength: binding.prefixLength, index: index)
                    } catch where error.errno == EEXIST {
                        return
                    }
                }
            } catch {
                var failure = NodeNetworkError(error, operation: operation, object: object)
                if address.family == .inet6, [EACCES, EAFNOSUPPORT, EOPNOTSUPP].contains(error.errno) {
                    failure.kind = .unsupported
                    failure.hint = "IPv6 is disabled on this interface or node (net.ipv6.conf.\(name).disable_ipv6=1 or the ipv6.disable=1 boot option); enable it or leave out IPv6 addresses"
                }
                throw failure
            }
            if added == nil { throw Self.missing(name, operation: operation) }
        }
    }

    /// Binds every address of `addresses` on interface `name`, like `addAddress(_:to:)` but with
    /// pipelined requests (a few hundred per send) instead of one round trip each. One result
    /// per address, in order.
    public func addAddresses(_ addresses: [IPAddress], to name: String) -> [Result<Void, NodeNetworkError>] {
        do {
            try Self.validateInterfaceName(name)
        } catch {
            return addresses.map { _ in .failure(error) }
        }
        let object = "interface \(name)"
        let bindings = addresses.map { InterfaceAddress(host: $0) }
        return connection.withLock { (connection) -> [Result<Void, NodeNetworkError>] in
            var failures: [SystemFailure?]?
            do throws(SystemFailure) {
                failures = try connection.withIndex(named: name) { (index) throws(SystemFailure) in
                    let results = connection.socket.addAddresses(bindings.map { ($0.address, $0.prefixLength) }, index: index)
                    // A stale index (the interface was re-created) fails every request alike: look it up again.
                    if let first = results.first, let failure = first, failure.errno == ENODEV { throw failure }
                    return results
                }
            } catch {
                return addresses.map { _ in .failure(NodeNetworkError(error, operation: "add addresses to", object: object)) }
            }
            guard let failures else {
                let missing = Self.missing(name, operation: "add addresses to")
                return addresses.map { _ in .failure(missing) }
            }
            return zip(bindings, failures).map { binding, failure in
                guard let failure else { return .success(()) }
                var error = NodeNetworkError(failure, operation: "add address \(binding) to", object: object)
                if binding.address.family == .inet6, [EACCES, EAFNOSUPPORT, EOPNOTSUPP].contains(failure.errno) {
                    error.kind = .unsupported
                    error.hint = "IPv6 is disabled on this interface or node (net.ipv6.conf.\(name).disable_ipv6=1 or the ipv6.disable=1 boot option); enable it or leave out IPv6 addresses"
                }
                return .failure(error)
            }
        }
    }

    /// Removes the /32 (IPv4) or /128 (IPv6) binding of `address` from interface `name`.
    /// No error when it is not bound or the interface does not exist; a binding of the same
    /// address with another prefix length (added by someone else) is left alone.
    public func removeAddress(_ address: IPAddress, from name: String) throws(NodeNetworkError) {
        try Self.validateInterfaceName(name)
        let binding = InterfaceAddress(host: address)
        let operation = "remove address \(binding) from", object = "interface \(name)"
        try connection.withLock { (connection) throws(NodeNetworkError) in
            do throws(SystemFailure) {
                _ = try connection.withIndex(named: name) { (index) throws(SystemFailure) in
                    do throws(SystemFailure) {
                        try connection.socket.deleteAddress(address, prefixLength: binding.prefixLength, index: index)
                    } catch where error.errno == EADDRNOTAVAIL {
                        return
                    }
                }
            } catch where error.errno == ENODEV {
                // The interface went away during the call: the address is gone with it.
            } catch {
                throw NodeNetworkError(error, operation: operation, object: object)
            }
        }
    }

    /// The node's own addresses, for NodePort services: every address on every interface except
    /// those in `excluding` (the dummy interface), `lo` included (a node whose address is a /32 on
    /// `lo`, as in routing-on-the-host designs), without loopback and link-local addresses
    /// (`127.0.0.0/8`, `::1`, `169.254.0.0/16`, `fe80::/10`). Sorted, no duplicates.
    public func nodeAddresses(excluding: Set<String>) throws(NodeNetworkError) -> [IPAddress] {
        Self.nodePortAddresses(among: try localAddresses(excluding: excluding))
    }

    /// Every address on every interface except those in `excluding`, loopback and link-local
    /// ones included. Sorted, no duplicates.
    public func localAddresses(excluding: Set<String>) throws(NodeNetworkError) -> [IPAddress] {
        try connection.withLock { (connection) throws(NodeNetworkError) -> [IPAddress] in
            let links = try attempt("list", "the node's interfaces") { () throws(SystemFailure) in try connection.socket.links() }
            let records = try attempt("list", "the node's addresses") { () throws(SystemFailure) in try connection.socket.addresses() }
            let eligible = Set(links.filter { !excluding.contains($0.name) }.map(\.index))
            return Set(records.filter { eligible.contains($0.interfaceIndex) }.map(\.address)).sorted()
        }
    }

    /// The addresses of `addresses` NodePorts listen on by default: all but loopback and
    /// link-local ones.
    public static func nodePortAddresses(among addresses: [IPAddress]) -> [IPAddress] {
        addresses.filter { !$0.isLoopback && !$0.isLinkLocal }
    }

    // MARK: - Names

    /// Throws `.invalidName` unless the kernel accepts `name` as an interface name: 1 to 15
    /// bytes (`IFNAMSIZ` - 1), not `.` or `..`, without `/`, `:` or white space. `%` is refused
    /// too: the kernel reads it as a template (`dummy%d`) and picks a name itself.
    public static func validateInterfaceName(_ name: String) throws(NodeNetworkError) {
        let bytes = Array(name.utf8)
        let problem: String? =
            if bytes.isEmpty {
                "the name is empty"
            } else if bytes.count > 15 {
                "\"\(name)\" is \(bytes.count) bytes long; the kernel allows at most 15"
            } else if name == "." || name == ".." {
                "\"\(name)\" is reserved"
            } else if let bad = bytes.first(where: { [0, 0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0xA0, 0x2F, 0x3A, 0x25].contains($0) }) {
                "\(name.debugDescription) contains \(Self.describe(byte: bad))"
            } else {
                nil
            }
        guard let problem else { return }
        throw NodeNetworkError(kind: .invalidName, operation: "use", object: "interface name \(name.debugDescription)",
                               errno: EINVAL, detail: problem,
                               hint: "choose 1 to 15 characters without '/', ':', '%' or white space, such as kube-ipvs0")
    }

    private static func describe(byte: UInt8) -> String {
        switch byte {
        case 0x2F: "'/'"
        case 0x3A: "':'"
        case 0x25: "'%'"
        case 0: "a NUL byte"
        default: "white space"
        }
    }

    // MARK: - Helpers

    private static func requireDummy(_ link: LinkRecord, operation: String) throws(NodeNetworkError) {
        guard link.kind != dummyKind else { return }
        throw NodeNetworkError(kind: .notDummy, operation: operation, object: "interface \(link.name)", errno: EEXIST,
                               detail: "it is \(link.kind.map { "a \($0)" } ?? "a physical or loopback") interface, not a dummy one",
                               hint: "choose another interface name; only dummy interfaces are managed")
    }

    private static func existingIndex(_ connection: Connection, name: String, operation: String) throws(NodeNetworkError) -> Int32 {
        guard let link = try attempt(operation, "interface \(name)", { () throws(SystemFailure) in try connection.link(named: name) }) else {
            throw missing(name, operation: operation)
        }
        return link.index
    }

    private static func missing(_ name: String, operation: String) -> NodeNetworkError {
        NodeNetworkError(kind: .notFound, operation: operation, object: "interface \(name)", errno: ENODEV,
                         hint: "create the interface first (ensureDummyInterface, or `ip link add \(name) type dummy`)")
    }
}

// MARK: - Connection

/// The socket and what the manager remembers between calls; touched only under the lock.
private final class Connection {
    let socket: RouteSocket

    /// Interface indexes by name, from the last look-up by name. Address changes use it to skip
    /// one look-up per call, and there is one call per VIP. Every look-up by name refreshes it,
    /// so a renamed interface is noticed at the next listing; a request that fails with
    /// `ENODEV` drops the entry and looks the name up once more.
    var indexes: [String: Int32] = [:]

    init(socket: RouteSocket) {
        self.socket = socket
    }

    /// Looks `name` up in the kernel and refreshes the remembered index.
    func link(named name: String) throws(SystemFailure) -> LinkRecord? {
        let link = try socket.link(named: name)
        indexes[name] = link?.index
        return link
    }

    /// Runs `body` with the index of `name`; `nil` when there is no such interface.
    func withIndex<T>(named name: String, _ body: (Int32) throws(SystemFailure) -> T) throws(SystemFailure) -> T? {
        if let index = indexes[name] {
            do throws(SystemFailure) {
                return try body(index)
            } catch where error.errno == ENODEV {
                indexes[name] = nil
            }
        }
        guard let index = try link(named: name)?.index else { return nil }
        return try body(index)
    }
}

/// Runs `body` and gives a failure its words.
func attempt<T>(_ operation: String, _ object: String,
                _ body: () throws(SystemFailure) -> T) throws(NodeNetworkError) -> T {
    do {
        return try body()
    } catch {
        throw NodeNetworkError(error, operation: operation, object: object)
    }
}
