/// Message types, flags and the header layout of netlink (`<linux/netlink.h>`), spelled out so
/// that encoding and decoding are pure Swift and testable against saved bytes without a kernel.
public enum NetlinkConstants {
    /// The size of `struct nlmsghdr`.
    public static let headerSize = 16
    /// The size of `struct genlmsghdr`.
    public static let genericHeaderSize = 4
    /// The size of `struct nlattr`.
    public static let attributeHeaderSize = 4

    /// The corresponding kernel constant is `NLMSG_NOOP`.
    public static let messageNoop: UInt16 = 1
    /// The corresponding kernel constant is `NLMSG_ERROR`.
    public static let messageError: UInt16 = 2
    /// The corresponding kernel constant is `NLMSG_DONE`.
    public static let messageDone: UInt16 = 3
    /// The corresponding kernel constant is `NLMSG_OVERRUN`.
    public static let messageOverrun: UInt16 = 4

    /// The corresponding kernel constant is `NLA_F_NESTED`.
    public static let attributeNested: UInt16 = 0x8000
    /// The corresponding kernel constant is `NLA_F_NET_BYTEORDER`.
    public static let attributeNetworkByteOrder: UInt16 = 0x4000
    /// The corresponding kernel constant is `NLA_TYPE_MASK`.
    public static let attributeTypeMask: UInt16 = 0x3FFF

    /// Rounds `length` up to the 4-byte netlink alignment (`NLMSG_ALIGN`, `NLA_ALIGN`).
    @inlinable
    public static func align(_ length: Int) -> Int { (length + 3) & ~3 }
}

/// Flags of a netlink message header.
public struct NetlinkMessageFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// A request. The corresponding kernel constant is `NLM_F_REQUEST`.
    public static let request = NetlinkMessageFlags(rawValue: 0x01)
    /// Part of a multipart answer. The corresponding kernel constant is `NLM_F_MULTI`.
    public static let multipart = NetlinkMessageFlags(rawValue: 0x02)
    /// Ask for an acknowledgement. The corresponding kernel constant is `NLM_F_ACK`.
    public static let acknowledge = NetlinkMessageFlags(rawValue: 0x04)
    /// Dump every object (`NLM_F_ROOT | NLM_F_MATCH`). The corresponding kernel constant is `NLM_F_DUMP`.
    public static let dump = NetlinkMessageFlags(rawValue: 0x300)
    /// The acknowledgement carries no copy of the request payload. Kernel constant `NLM_F_CAPPED`.
    public static let capped = NetlinkMessageFlags(rawValue: 0x100)
    /// The acknowledgement carries extended TLVs. Kernel constant `NLM_F_ACK_TLVS`.
    public static let acknowledgementTLVs = NetlinkMessageFlags(rawValue: 0x200)
}

/// One decoded netlink message: the header fields and a view of the payload.
public struct NetlinkMessage: Sendable, Equatable {
    /// The message type: a generic netlink family id, or one of the `NLMSG_*` control types.
    public var type: UInt16
    public var flags: NetlinkMessageFlags
    public var sequence: UInt32
    public var portID: UInt32
    /// The bytes after the 16-byte header, up to the header's length.
    public var payload: ArraySlice<UInt8>

    public init(type: UInt16, flags: NetlinkMessageFlags, sequence: UInt32, portID: UInt32, payload: ArraySlice<UInt8>) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
        self.payload = payload
    }

    /// Splits a buffer received from a netlink socket into messages.
    ///
    /// Throws `NetlinkDecodingError` when a header is truncated or a length runs past the end of
    /// the buffer; never traps on any input.
    public static func parse(_ buffer: ArraySlice<UInt8>) throws -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var offset = buffer.startIndex
        while buffer.endIndex - offset >= NetlinkConstants.headerSize {
            let length = Int(buffer.loadUInt32(at: offset))
            guard length >= NetlinkConstants.headerSize else {
                throw NetlinkDecodingError("message length \(length) is shorter than the 16-byte header")
            }
            guard length <= buffer.endIndex - offset else {
                throw NetlinkDecodingError("message length \(length) runs past the end of the \(buffer.endIndex - offset) bytes left")
            }
            messages.append(NetlinkMessage(
                type: buffer.loadUInt16(at: offset + 4),
                flags: NetlinkMessageFlags(rawValue: buffer.loadUInt16(at: offset + 6)),
                sequence: buffer.loadUInt32(at: offset + 8),
                portID: buffer.loadUInt32(at: offset + 12),
                payload: buffer[(offset + NetlinkConstants.headerSize)..<(offset + length)]
            ))
            offset += min(NetlinkConstants.align(length), buffer.endIndex - offset)
        }
        guard offset == buffer.endIndex else {
            throw NetlinkDecodingError("\(buffer.endIndex - offset) trailing bytes are too few for a message header")
        }
        return messages
    }

    /// For an `NLMSG_ERROR` message: the error number (0 for a plain acknowledgement, else
    /// positive) and the sequence number of the request it answers.
    public func acknowledgement() throws -> (errno: Int32, kernelMessage: String?) {
        guard payload.count >= 4 else {
            throw NetlinkDecodingError("acknowledgement of \(payload.count) bytes has no error code")
        }
        let code = Int32(bitPattern: payload.loadUInt32(at: payload.startIndex))
        var message: String?
        // Extended acknowledgement TLVs follow the echoed request header (NLMSGERR_ATTR_MSG = 1).
        if flags.contains(.acknowledgementTLVs) {
            let echoed = payload.count >= 20 ? Int(payload.loadUInt32(at: payload.startIndex + 4)) : 0
            let echoedLength = flags.contains(.capped) ? NetlinkConstants.headerSize : echoed
            let start = payload.startIndex + 4 + NetlinkConstants.align(echoedLength)
            if start <= payload.endIndex,
               let attributes = try? NetlinkAttributes(payload[start...]),
               let text = attributes[1] {
                message = try? text.string()
            }
        }
        return (code == Int32.min ? Int32.max : -code, message)
    }
}

// MARK: - Building messages

/// Builds one netlink message into a byte array: header, optional generic netlink header and
/// attributes, nested attributes included. All integers are in host byte order unless the method
/// says otherwise, as netlink requires.
///
/// Written in Swift rather than with libnl's `nl_msg` because the batch path packs hundreds of
/// thousands of messages into large contiguous sends, and libnl allocates a page per message.
public struct NetlinkMessageBuilder: Sendable {
    public private(set) var bytes: [UInt8]
    private var nests: [Int] = []

    /// Starts a message with the given header fields; the length is written by `finish()`.
    public init(type: UInt16, flags: NetlinkMessageFlags, sequence: UInt32 = 0, portID: UInt32 = 0, capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
        appendRaw(UInt32(0))
        appendRaw(type)
        appendRaw(flags.rawValue)
        appendRaw(sequence)
        appendRaw(portID)
    }

    /// Appends a generic netlink header (`struct genlmsghdr`).
    public mutating func appendGenericHeader(command: UInt8, version: UInt8) {
        bytes.append(command)
        bytes.append(version)
        appendRaw(UInt16(0))
    }

    /// Sets the sequence number in the header.
    public mutating func setSequence(_ sequence: UInt32) {
        withUnsafeBytes(of: sequence) { raw in
            for (index, byte) in raw.enumerated() { bytes[8 + index] = byte }
        }
    }

    /// Sets the flags in the header.
    public mutating func setFlags(_ flags: NetlinkMessageFlags) {
        withUnsafeBytes(of: flags.rawValue) { raw in
            for (index, byte) in raw.enumerated() { bytes[6 + index] = byte }
        }
    }

    // MARK: Attributes

    public mutating func append(_ type: UInt16, bytes payload: some Collection<UInt8>) {
        let length = NetlinkConstants.attributeHeaderSize + payload.count
        appendRaw(UInt16(length))
        appendRaw(type)
        bytes.append(contentsOf: payload)
        pad()
    }

    public mutating func append(_ type: UInt16, uint8 value: UInt8) { append(type, bytes: CollectionOfOne(value)) }
    public mutating func append(_ type: UInt16, uint16 value: UInt16) { appendInteger(type, value) }
    public mutating func append(_ type: UInt16, uint32 value: UInt32) { appendInteger(type, value) }
    public mutating func append(_ type: UInt16, uint64 value: UInt64) { appendInteger(type, value) }

    /// Appends a 16-bit value in network byte order (ports).
    public mutating func append(_ type: UInt16, bigEndianUInt16 value: UInt16) { appendInteger(type, value.bigEndian) }

    /// Appends a NUL-terminated string.
    public mutating func append(_ type: UInt16, string: String) {
        append(type, bytes: Array(string.utf8) + [0])
    }

    /// Appends a nested attribute whose contents `body` writes.
    public mutating func appendNested(_ type: UInt16, _ body: (inout NetlinkMessageBuilder) -> Void) {
        let start = bytes.count
        appendRaw(UInt16(0))
        appendRaw(type | NetlinkConstants.attributeNested)
        body(&self)
        let length = UInt16(truncatingIfNeeded: bytes.count - start)
        withUnsafeBytes(of: length) { raw in
            bytes[start] = raw[0]
            bytes[start + 1] = raw[1]
        }
    }

    /// Writes the total length into the header and returns the finished bytes.
    public func finish() -> [UInt8] {
        var result = bytes
        withUnsafeBytes(of: UInt32(result.count)) { raw in
            for (index, byte) in raw.enumerated() { result[index] = byte }
        }
        return result
    }

    // MARK: Private

    private mutating func appendInteger<T: FixedWidthInteger>(_ type: UInt16, _ value: T) {
        appendRaw(UInt16(NetlinkConstants.attributeHeaderSize + MemoryLayout<T>.size))
        appendRaw(type)
        appendRaw(value)
        pad()
    }

    private mutating func appendRaw<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    private mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
}

// MARK: - Byte access

extension Collection where Self == ArraySlice<UInt8> {
    @inlinable
    func loadUInt16(at index: Int) -> UInt16 {
        // Netlink integers are in host byte order; compose little-endian and convert.
        UInt16(littleEndian: UInt16(self[index]) | UInt16(self[index + 1]) << 8)
    }

    @inlinable
    func loadUInt32(at index: Int) -> UInt32 {
        UInt32(littleEndian: UInt32(self[index]) | UInt32(self[index + 1]) << 8
            | UInt32(self[index + 2]) << 16 | UInt32(self[index + 3]) << 24)
    }

    @inlinable
    func loadUInt64(at index: Int) -> UInt64 {
        var value: UInt64 = 0
        for offset in 0..<8 { value |= UInt64(self[index + offset]) << (8 * offset) }
        return UInt64(littleEndian: value)
    }
}
