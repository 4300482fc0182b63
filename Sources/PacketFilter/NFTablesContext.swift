import CNFTables

/// One libnftables context: every call into libnftables is in this file. Its netlink socket belongs
/// to the network namespace of the thread that created it. Not thread-safe: `PacketFilter` serialises it.
final class NFTablesContext {
    private let context: OpaquePointer

    /// A context whose output and errors are collected in buffers (not printed); listings show
    /// each object's handle with `handles`.
    init(handles: Bool = false) throws(PacketFilterError) {
        guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw PacketFilterError(operation: "open libnftables", message: "nft_ctx_new failed (out of memory?)")
        }
        self.context = context
        nft_ctx_buffer_output(context)
        nft_ctx_buffer_error(context)
        if handles { nft_ctx_output_set_flags(context, UInt32(NFT_CTX_OUTPUT_HANDLE)) }
    }

    deinit { nft_ctx_free(context) }

    /// Runs `commands` (nft's native syntax) as one transaction: all of them or none. Returns what
    /// nft printed (listings); throws nft's error text when the kernel or the parser refused any.
    func run(_ commands: String, operation: @autoclosure () -> String) throws(PacketFilterError) -> String {
        let status = nft_run_cmd_from_buffer(context, commands)
        let output = nft_ctx_get_output_buffer(context).map { String(cString: $0) } ?? ""
        let errors = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
        guard status == 0 else {
            throw PacketFilterError(operation: operation(), message: errors.isEmpty ? "nft returned \(status)" : errors)
        }
        return output
    }
}
