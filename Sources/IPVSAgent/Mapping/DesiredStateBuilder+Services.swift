extension DesiredStateBuilder {
    /// The Services mapped again since the last call, or `nil` when every Service must be looked at
    /// (before the first call, after a full merge or a change of options); the next call starts
    /// from none. The nftables table takes them after each load (`PacketFilterDriver`).
    mutating func takeChangedServices() -> Set<ObjectName>? {
        defer { untaken = [] }
        return untaken
    }
}
