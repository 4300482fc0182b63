internal import CConntrack
import IPVS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The kernel's connection tracking table of the caller's network namespace, through
/// libnetfilter_conntrack (ctnetlink): deletes the entries that filters match, as
/// `conntrack -D` does, without running it. Every C call of the module lives in this file.
public struct Conntrack: Sendable {
    public init() {}

    /// What `deleteEntries` did: the entries deleted, and each failure (a failed listing or
    /// deletion does not stop the others).
    public struct Deletion: Sendable {
        public var deleted = 0
        public var failures: [ConntrackError] = []
    }

    /// Deletes every entry that one of `filters` matches: lists the table once per address family
    /// of the filters, then deletes each matching entry. An entry gone in between is not a failure.
    public func deleteEntries(matching filters: [ConntrackFilter]) -> Deletion {
        var result = Deletion()
        guard !filters.isEmpty else { return result }
        guard let handle = nfct_open(UInt8(CONNTRACK), 0) else {
            result.failures.append(ConntrackError(operation: "open a ctnetlink socket", errno: errno))
            return result
        }
        defer { nfct_close(handle) }
        for family in [AddressFamily.inet, .inet6] {
            let ofFamily = filters.filter { $0.family == family }
            guard !ofFamily.isEmpty else { continue }
            let dump = Dump(filters: ofFamily)
            defer { for entry in dump.matched { nfct_destroy(entry) } }
            nfct_callback_register(handle, NFCT_T_ALL, collectMatching, Unmanaged.passUnretained(dump).toOpaque())
            var kernelFamily = UInt32(family == .inet ? AF_INET : AF_INET6)
            let listed = withExtendedLifetime(dump) { nfct_query(handle, NFCT_Q_DUMP, &kernelFamily) }
            let listError = errno
            nfct_callback_unregister(handle)
            if listed < 0 {
                result.failures.append(ConntrackError(operation: "list the \(family) connection tracking entries", errno: listError))
                continue
            }
            for entry in dump.matched {
                if nfct_query(handle, NFCT_Q_DESTROY, UnsafeRawPointer(entry)) == 0 {
                    result.deleted += 1
                } else if errno != ENOENT {
                    result.failures.append(ConntrackError(operation: "delete a \(family) connection tracking entry", errno: errno))
                }
            }
        }
        return result
    }
}

/// One listing's filters, by the frontend they name (so a large table is matched against many
/// filters in one lookup per entry), and the entries that matched them (freed after their deletion).
private final class Dump {
    struct Frontend: Hashable {
        var protocolNumber: UInt8
        var destination: IPAddress
        var port: UInt16
    }

    let filters: [Frontend: [ConntrackFilter]]
    var matched: [OpaquePointer] = []

    init(filters: [ConntrackFilter]) {
        self.filters = Dictionary(grouping: filters) {
            Frontend(protocolNumber: UInt8($0.transport.rawValue), destination: $0.destination, port: $0.port)
        }
    }

    func matches(_ entry: ConntrackEntry) -> Bool {
        let frontend = Frontend(protocolNumber: entry.protocolNumber, destination: entry.destination, port: entry.port)
        return filters[frontend]?.contains { $0.matches(entry) } == true
    }
}

/// libnetfilter_conntrack calls this for each listed entry: a matching one is kept for deletion
/// (`NFCT_CB_STOLEN`: the library does not free it), the others are let go.
private func collectMatching(_ type: nf_conntrack_msg_type, _ entry: OpaquePointer?, _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let entry, let context, let parsed = conntrackEntry(entry) else { return Int32(NFCT_CB_CONTINUE) }
    let dump = Unmanaged<Dump>.fromOpaque(context).takeUnretainedValue()
    guard dump.matches(parsed) else { return Int32(NFCT_CB_CONTINUE) }
    dump.matched.append(entry)
    return Int32(NFCT_CB_STOLEN)
}

/// The filtered parts of a listed entry; `nil` for a family other than IPv4 and IPv6.
private func conntrackEntry(_ entry: OpaquePointer) -> ConntrackEntry? {
    let l3 = nfct_get_attr_u8(entry, ATTR_ORIG_L3PROTO)
    let destination: IPAddress?, replySource: IPAddress?
    switch Int32(l3) {
    case AF_INET:
        destination = address(entry, ATTR_ORIG_IPV4_DST, length: 4)
        replySource = address(entry, ATTR_REPL_IPV4_SRC, length: 4)
    case AF_INET6:
        destination = address(entry, ATTR_ORIG_IPV6_DST, length: 16)
        replySource = address(entry, ATTR_REPL_IPV6_SRC, length: 16)
    default:
        return nil
    }
    guard let destination, let replySource else { return nil }
    let port = nfct_attr_is_set(entry, ATTR_ORIG_PORT_DST) > 0 ? UInt16(bigEndian: nfct_get_attr_u16(entry, ATTR_ORIG_PORT_DST)) : 0
    return ConntrackEntry(protocolNumber: nfct_get_attr_u8(entry, ATTR_ORIG_L4PROTO), destination: destination, port: port,
                          replySource: replySource)
}

/// An address attribute of `entry`, stored in network order.
private func address(_ entry: OpaquePointer, _ attribute: nf_conntrack_attr, length: Int) -> IPAddress? {
    guard nfct_attr_is_set(entry, attribute) > 0, let raw = nfct_get_attr(entry, attribute) else { return nil }
    return IPAddress(bytes: UnsafeRawBufferPointer(start: raw, count: length))
}
