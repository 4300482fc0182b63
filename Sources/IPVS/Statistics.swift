/// Traffic counters and rates of a virtual service or real server.
///
/// Counters are 64-bit (from the kernel's `STATS64` attributes when present). Rates are per
/// second, averaged by the kernel's estimator, which refreshes every two seconds.
public struct Statistics: Hashable, Sendable {
    public var connections: UInt64
    public var incomingPackets: UInt64
    public var outgoingPackets: UInt64
    public var incomingBytes: UInt64
    public var outgoingBytes: UInt64
    public var connectionRate: UInt64
    public var incomingPacketRate: UInt64
    public var outgoingPacketRate: UInt64
    public var incomingByteRate: UInt64
    public var outgoingByteRate: UInt64

    public init(
        connections: UInt64 = 0, incomingPackets: UInt64 = 0, outgoingPackets: UInt64 = 0,
        incomingBytes: UInt64 = 0, outgoingBytes: UInt64 = 0, connectionRate: UInt64 = 0,
        incomingPacketRate: UInt64 = 0, outgoingPacketRate: UInt64 = 0,
        incomingByteRate: UInt64 = 0, outgoingByteRate: UInt64 = 0
    ) {
        self.connections = connections
        self.incomingPackets = incomingPackets
        self.outgoingPackets = outgoingPackets
        self.incomingBytes = incomingBytes
        self.outgoingBytes = outgoingBytes
        self.connectionRate = connectionRate
        self.incomingPacketRate = incomingPacketRate
        self.outgoingPacketRate = outgoingPacketRate
        self.incomingByteRate = incomingByteRate
        self.outgoingByteRate = outgoingByteRate
    }
}

/// Statistics kept out of line, one pointer in the virtual service or real server that holds them:
/// the agent's desired state holds a hundred thousand real servers that never have any, and their
/// storage is half as large without 80 bytes each inline. Immutable, so its holder stays a value.
final class StatisticsBox: Hashable, Sendable {
    let statistics: Statistics

    init(_ statistics: Statistics) {
        self.statistics = statistics
    }

    static func == (a: StatisticsBox, b: StatisticsBox) -> Bool { a.statistics == b.statistics }
    func hash(into hasher: inout Hasher) { hasher.combine(statistics) }
}
