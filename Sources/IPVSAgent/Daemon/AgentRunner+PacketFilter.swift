import ArgumentParser
import Logging
import PacketFilter

/// The agent's nftables table in each mode: synced by the daemon and `--once`, deleted by `--cleanup`.
extension AgentRunner {
    /// The table's driver; a libnftables that cannot start stops the agent before it changes anything.
    func makePacketFilter() throws -> PacketFilterDriver {
        do {
            return try PacketFilterDriver(options: command.packetFilterOptions, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
    }

    /// Deletes the agent's nftables table (`--cleanup`): the failure, if any, as a report line.
    func deletePacketFilter() -> [String] {
        do {
            try PacketFilterDriver.delete()
            logger.info("nftables table deleted", metadata: ["table": "inet \(PacketFilterDriver.table)"])
            return []
        } catch {
            return ["\(error)"]
        }
    }
}
