/// A refusal by nftables (the parser or the kernel), with what was attempted.
public struct PacketFilterError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What the agent tried: `replace table inet ipvs-agent`.
    public var operation: String
    /// What libnftables said (its error text, trimmed).
    public var message: String

    public init(operation: String, message: String) {
        self.operation = operation
        self.message = String(message.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    public var description: String {
        "nftables: could not \(operation): \(message) (the agent needs CAP_NET_ADMIN and the nf_tables, "
            + "nft_ct, nft_nat, nft_masq and nft_chain_nat kernel modules)"
    }
}
