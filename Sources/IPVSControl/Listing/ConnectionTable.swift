#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IPVS

/// One line of `/proc/net/ip_vs_conn`: an IPVS connection (or persistence template).
struct ConnectionEntry: Equatable, Sendable {
    /// `TCP`, `UDP`, `SCTP`, or whatever the kernel printed.
    var protocolName: String
    var client: IPAddress
    var clientPort: UInt16
    var virtual: IPAddress
    var virtualPort: UInt16
    var destination: IPAddress
    var destinationPort: UInt16
    /// `ESTABLISHED`, `TIME_WAIT`, `NONE` (templates), …
    var state: String
    var expiresSeconds: Int32
    var persistenceEngine: String?
    var persistenceData: String?

    var transportProtocol: TransportProtocol? { TransportProtocol(name: protocolName) }
}

/// Reads and prints the connection table as `ipvsadm -L -c` does.
///
/// The kernel writes IPv4 addresses as 8 hex digits and IPv6 ones in full colon form, ports in
/// hex, then the state, the seconds to expiry and, for persistence engines, two more fields.
enum ConnectionTable {
    static let path = "/proc/net/ip_vs_conn"

    /// Parses the file's text: a title line, then one connection per line. Lines that do not
    /// parse are skipped.
    static func parse(_ text: String) -> [ConnectionEntry] {
        var entries: [ConnectionEntry] = []
        for line in text.split(separator: "\n").dropFirst() {
            if let entry = parseLine(line) { entries.append(entry) }
        }
        return entries
    }

    static func parseLine(_ line: Substring) -> ConnectionEntry? {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
        guard fields.count >= 9,
              let clientPort = UInt16(fields[2], radix: 16), let virtualPort = UInt16(fields[4], radix: 16),
              let destinationPort = UInt16(fields[6], radix: 16), let expires = Int32(fields[8]) else { return nil }
        let client: IPAddress?, virtual: IPAddress?
        if let v6 = IPAddress(String(fields[1])), v6.family == .inet6 {
            client = v6
            virtual = IPAddress(String(fields[3]))
        } else {
            client = address(fields[1])
            virtual = address(fields[3])
        }
        guard let client, let virtual, let destination = address(fields[5]) else { return nil }
        return ConnectionEntry(
            protocolName: String(fields[0]), client: client, clientPort: clientPort, virtual: virtual,
            virtualPort: virtualPort, destination: destination, destinationPort: destinationPort,
            state: String(fields[7]), expiresSeconds: expires,
            persistenceEngine: fields.count >= 11 ? String(fields[9]) : nil,
            persistenceData: fields.count >= 11 ? String(fields[10]) : nil)
    }

    /// IPv6 text, IPv4 text, or the kernel's 8 hex digits of an IPv4 address.
    private static func address(_ text: Substring) -> IPAddress? {
        if let parsed = IPAddress(String(text)) { return parsed }
        guard let value = UInt32(text, radix: 16) else { return nil }
        return .v4(value)
    }

    // MARK: - Text

    /// The listing of `entries`, names resolved unless `format` has `.numeric`.
    static func format(_ entries: [ConnectionEntry], format: ListingFormat, resolver: NameResolver, into out: inout TextBuffer) {
        let persistent = format.contains(.persistentConnections)
        out.write("IPVS connection entries\n")
        out.write("pro expire ")
        out.left("state", 11)
        out.write(" ")
        out.left("source", 18)
        out.write(" ")
        out.left("virtual", 18)
        out.write(" ")
        if persistent {
            out.left("destination", 18)
            out.write(" ")
            out.left("pe name", 16)
            out.write(" pe_data\n")
        } else {
            out.write("destination\n")
        }
        let formatter = ListingFormatter(format: format, resolver: resolver)
        for entry in entries {
            let proto = entry.transportProtocol
            let minutes = entry.expiresSeconds / 60, seconds = entry.expiresSeconds % 60
            out.left(entry.protocolName, 3)
            out.write(" ")
            out.left(twoDigits(minutes) + ":" + twoDigits(seconds), 6)
            out.write(" ")
            out.left(entry.state, 11)
            out.write(" ")
            out.left(formatter.endpointName(entry.client, entry.clientPort, proto), 18)
            out.write(" ")
            out.left(formatter.endpointName(entry.virtual, entry.virtualPort, proto), 18)
            out.write(" ")
            let destination = formatter.endpointName(entry.destination, entry.destinationPort, proto)
            if persistent, let engine = entry.persistenceEngine, let data = entry.persistenceData {
                out.left(destination, 16)
                out.write(" ")
                out.left(engine, 18)
                out.write(" \(data)\n")
            } else {
                out.write(destination + "\n")
            }
        }
    }

    /// `%02d`.
    private static func twoDigits(_ value: Int32) -> String {
        value >= 0 && value < 10 ? "0\(value)" : value < 0 && value > -10 ? "-\(-value)" : String(value)
    }
}
