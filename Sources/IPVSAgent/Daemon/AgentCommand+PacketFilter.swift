import ArgumentParser
import Foundation
import IPVS
import PacketFilter

/// The flags of the agent's nftables table: `--cluster-cidr`, `--masquerade-all`, `--nodeport-addresses`.
extension AgentCommand {
    /// `--cluster-cidr`'s ranges (valid after `validate()`).
    var clusterPrefixes: [AddressPrefix] { Self.prefixes(clusterCIDR).compactMap { $0.prefix } }

    /// `--nodeport-addresses`'s ranges (valid after `validate()`).
    var nodePortPrefixes: [AddressPrefix] { Self.prefixes(nodeportAddresses).compactMap { $0.prefix } }

    var packetFilterOptions: PacketFilterOptions {
        PacketFilterOptions(clusterPrefixes: clusterPrefixes, masqueradeAll: masqueradeAll)
    }

    func validatePacketFilter() throws {
        for (flag, values) in [("--cluster-cidr", clusterCIDR), ("--nodeport-addresses", nodeportAddresses)] {
            for entry in Self.prefixes(values) where entry.prefix == nil {
                throw ValidationError("\(flag): '\(entry.text)' is not an address range in CIDR notation (10.244.0.0/16, fd00:10:244::/56)")
            }
        }
        if !nodeportAddresses.isEmpty, !nodeIP.isEmpty {
            throw ValidationError("give --node-ip (addresses) or --nodeport-addresses (ranges of the node's addresses), not both")
        }
    }

    /// The addresses of `local` NodePorts listen on by `--nodeport-addresses`: those inside one of its ranges.
    func nodePortAddresses(among local: [IPAddress]) -> [IPAddress] {
        local.filter { address in nodePortPrefixes.contains { $0.contains(address) } }
    }

    /// Each comma-separated entry of `values`, parsed.
    private static func prefixes(_ values: [String]) -> [(text: String, prefix: AddressPrefix?)] {
        values.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { entry in
            let text = String(entry).trimmingCharacters(in: .whitespaces)
            return (text, AddressPrefix(text))
        }
    }
}
