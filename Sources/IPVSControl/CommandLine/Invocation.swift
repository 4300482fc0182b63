import IPVS

/// How a listing is printed: ipvsadm's format flags.
struct ListingFormat: OptionSet, Hashable, Sendable {
    var rawValue: UInt16
    init(rawValue: UInt16) { self.rawValue = rawValue }

    static let numeric = ListingFormat(rawValue: 1 << 0)
    /// `-S`: rules instead of a table.
    static let rule = ListingFormat(rawValue: 1 << 1)
    static let stats = ListingFormat(rawValue: 1 << 2)
    static let rate = ListingFormat(rawValue: 1 << 3)
    static let thresholds = ListingFormat(rawValue: 1 << 4)
    static let persistentConnections = ListingFormat(rawValue: 1 << 5)
    static let noSort = ListingFormat(rawValue: 1 << 6)
    static let exact = ListingFormat(rawValue: 1 << 7)
    static let tunnelInfo = ListingFormat(rawValue: 1 << 8)
}

/// The output format of listings (`--output`).
enum OutputFormat: String, Sendable, CaseIterable {
    case text, json
}

/// What a listing shows.
enum ListTarget: Hashable, Sendable {
    case all
    case service(ServiceKey)
    case connections
    case timeouts
    case daemons
}

/// What one command line asks for.
enum Invocation: Equatable, Sendable {
    case list(ListTarget, ListingFormat, OutputFormat)
    case save(numeric: Bool)
    /// A change to the table (`-A -E -D -C -Z -a -e -d`).
    case change(IPVSOperation)
    case setTimeouts(Timeouts)
    case restore
    /// `-h` (the short usage) or `--help` (the full help with examples).
    case help(full: Bool)
    case version
}
