import IPVS

/// A byte-level reader for the lines `-S` prints most: IPv4 TCP/UDP/SCTP services and their real
/// servers in the plainest spelling (`-A -t 10.96.0.1:80 -s rr`,
/// `-a -t 10.96.0.1:80 -r 10.244.1.1:8080 -m -w 1`, `-d …`, `-D …`, `-E …`, `-e …`).
///
/// Why it exists: a large `-R` input is mostly such lines, and the general parser
/// (`ArgumentScanner` + `InvocationParser`, which handles popt's whole grammar: clusters, glued
/// arguments, host and service names) spends most of `-R`'s user time making strings
/// (`docs/benchmarks.md` measures `-R`).
/// This reader makes none. It accepts only a strict subset (exact option words, dotted-decimal
/// IPv4 without leading zeros, decimal numbers without leading zeros, explicit ports, each option
/// once) and returns `nil` for anything else, which then goes to the general parser; so it never
/// decides an error, and for every line it accepts it builds the very operation the general
/// parser builds (`RestoreFastPathTests` checks that line by line).
enum RestoreFastPath {
    private enum Command { case addService, editService, deleteService, addServer, editServer, deleteServer }

    /// The operation of `line`, or `nil` when the line is outside the subset.
    static func operation(_ line: ArraySlice<UInt8>) -> IPVSOperation? {
        var words = WordIterator(line)
        guard let first = words.next(), let command = command(first) else { return nil }
        var proto: TransportProtocol?
        var service: (address: UInt32, port: UInt16)?
        var scheduler: ArraySlice<UInt8>?
        var server: (address: UInt32, port: UInt16)?
        var forwarding: ForwardingMethod?
        var weight: Int32?
        while let word = words.next() {
            switch option(word) {
            case .tcp?, .udp?, .sctp?:
                guard proto == nil, let value = words.next(), let endpoint = endpoint(value) else { return nil }
                proto = option(word) == .tcp ? .tcp : option(word) == .udp ? .udp : .sctp
                service = endpoint
            case .scheduler?:
                guard scheduler == nil, let value = words.next(), isSchedulerName(value) else { return nil }
                scheduler = value
            case .realServer?:
                guard server == nil, let value = words.next(), let endpoint = endpoint(value) else { return nil }
                server = endpoint
            case .masquerading?, .gatewaying?:
                guard forwarding == nil else { return nil }
                forwarding = option(word) == .masquerading ? .masquerade : .directRouting
            case .weight?:
                guard weight == nil, let value = words.next(), let number = decimal(value), number <= 65535 else { return nil }
                weight = Int32(number)
            case nil:
                return nil
            }
        }
        guard let proto, let service, service.port != 0 else { return nil }
        let key = ServiceKey.address(proto, .v4(service.address), port: service.port)
        switch command {
        case .addService, .editService, .deleteService:
            guard server == nil, forwarding == nil, weight == nil else { return nil }
            if command == .deleteService {
                guard scheduler == nil else { return nil }
                return .deleteService(key)
            }
            let name = scheduler.map { String(decoding: $0, as: UTF8.self) } ?? Scheduler.weightedLeastConnection.rawValue
            let virtual = VirtualService(key: key, scheduler: Scheduler(rawValue: name))
            return command == .addService ? .addService(virtual) : .updateService(virtual)
        case .addServer, .editServer, .deleteServer:
            guard scheduler == nil, let server else { return nil }
            if command == .deleteServer {
                guard forwarding == nil, weight == nil else { return nil }
                return .deleteRealServer(RealServerID(address: .v4(server.address), port: server.port), service: key)
            }
            let method = forwarding ?? .directRouting
            let real = RealServer(address: .v4(server.address), port: method == .masquerade ? server.port : service.port,
                                  forwarding: method, weight: weight ?? 1)
            return command == .addServer ? .addRealServer(real, service: key) : .updateRealServer(real, service: key)
        }
    }

    // MARK: - Words

    private enum Option { case tcp, udp, sctp, scheduler, realServer, masquerading, gatewaying, weight }

    private static func command(_ word: ArraySlice<UInt8>) -> Command? {
        guard word.count == 2, word.first == UInt8(ascii: "-") else { return nil }
        switch word.last {
        case UInt8(ascii: "A"): return .addService
        case UInt8(ascii: "E"): return .editService
        case UInt8(ascii: "D"): return .deleteService
        case UInt8(ascii: "a"): return .addServer
        case UInt8(ascii: "e"): return .editServer
        case UInt8(ascii: "d"): return .deleteServer
        default: return nil
        }
    }

    private static func option(_ word: ArraySlice<UInt8>) -> Option? {
        if word.count == 2, word.first == UInt8(ascii: "-") {
            switch word.last {
            case UInt8(ascii: "t"): return .tcp
            case UInt8(ascii: "u"): return .udp
            case UInt8(ascii: "s"): return .scheduler
            case UInt8(ascii: "r"): return .realServer
            case UInt8(ascii: "m"): return .masquerading
            case UInt8(ascii: "g"): return .gatewaying
            case UInt8(ascii: "w"): return .weight
            default: return nil
            }
        }
        switch String(decoding: word, as: UTF8.self) {
        case "--tcp-service": return .tcp
        case "--udp-service": return .udp
        case "--sctp-service": return .sctp
        case "--scheduler": return .scheduler
        case "--real-server": return .realServer
        case "--masquerading": return .masquerading
        case "--gatewaying": return .gatewaying
        case "--weight": return .weight
        default: return nil
        }
    }

    /// What `OptionValues.kernelName` accepts: 1 to 15 of `a-z 0-9 _ -`.
    private static func isSchedulerName(_ word: ArraySlice<UInt8>) -> Bool {
        !word.isEmpty && word.count <= 15 && word.first != UInt8(ascii: "-") && word.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
    }

    /// `A.B.C.D:PORT`, dotted decimal without leading zeros, port 1...65535 without leading zeros.
    private static func endpoint(_ word: ArraySlice<UInt8>) -> (address: UInt32, port: UInt16)? {
        guard let colon = word.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        var address: UInt32 = 0
        var octets = 0
        var start = word.startIndex
        while true {
            let end = word[start..<colon].firstIndex(of: UInt8(ascii: ".")) ?? colon
            guard let value = decimal(word[start..<end]), value <= 255 else { return nil }
            address = address << 8 | UInt32(value)
            octets += 1
            if end == colon { break }
            guard octets < 4 else { return nil }
            start = end + 1
        }
        guard octets == 4, let port = decimal(word[(colon + 1)...]), port >= 1, port <= 65535 else { return nil }
        return (address, UInt16(port))
    }

    /// A decimal number of 1 to 5 digits without a leading zero (or `0` itself).
    private static func decimal(_ word: ArraySlice<UInt8>) -> Int? {
        guard !word.isEmpty, word.count <= 5, word.count == 1 || word.first != UInt8(ascii: "0") else { return nil }
        var value = 0
        for byte in word {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// The blank-separated words of a line (the separators of `RestoreScript.tokens`).
    private struct WordIterator {
        var rest: ArraySlice<UInt8>
        init(_ line: ArraySlice<UInt8>) { rest = line }

        mutating func next() -> ArraySlice<UInt8>? {
            while let first = rest.first, isBlank(first) { rest = rest.dropFirst() }
            guard !rest.isEmpty else { return nil }
            let end = rest.firstIndex(where: isBlank) ?? rest.endIndex
            defer { rest = rest[end...] }
            return rest[..<end]
        }

        private func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }
    }
}
