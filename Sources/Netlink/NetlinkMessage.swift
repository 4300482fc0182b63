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
/// `init(appendingTo:…)` and `finish(into:)` write a message straight onto the end of a batch
/// buffer, with no allocation or copy per message.
public struct NetlinkMessageBuilder: Sendable {
    public private(set) var bytes: [UInt8]
    /// Where this message starts in `bytes` (non-zero when appending to a batch).
    private let start: Int

    /// Starts a message with the given header fields; the length is written by `finish()`.
    public init(type: UInt16, flags: NetlinkMessageFlags, sequence: UInt32 = 0, portID: UInt32 = 0, capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
        start = 0
        appendHeader(type: type, flags: flags, sequence: sequence, portID: portID)
    }

    /// Starts a message at the end of `buffer`, taking the buffer over (it is left empty) until
    /// `finish(into:)` hands it back with the message appended.
    public init(appendingTo buffer: inout [UInt8], type: UInt16, flags: NetlinkMessageFlags, sequence: UInt32 = 0, portID: UInt32 = 0) {
        bytes = []
        swap(&bytes, &buffer)
        start = bytes.count
        appendHeader(type: type, flags: flags, sequence: sequence, portID: portID)
    }

    /// Appends a generic netlink header (`struct genlmsghdr`).
    public mutating func appendGenericHeader(command: UInt8, version: UInt8) {
        bytes.append(command)
        bytes.append(version)
        appendRaw(UInt16(0))
    }

    /// Sets the sequence number in the header.
    public mutating func setSequence(_ sequence: UInt32) { store(sequence, at: start + 8) }

    /// Sets the flags in the header.
    public mutating func setFlags(_ flags: NetlinkMessageFlags) { store(flags.rawValue, at: start + 6) }

    // MARK: Attributes

    public mutating func append(_ type: UInt16, bytes payload: some Collection<UInt8>) {
        appendAttributeHeader(type, payloadLength: payload.count)
        bytes.append(contentsOf: payload)
        pad()
    }

    /// Appends the in-memory bytes of `value` as the payload (a C struct, or an address laid out
    /// as the kernel expects it).
    public mutating func append<T: BitwiseCopyable>(_ type: UInt16, bytesOf value: T) {
        appendAttributeHeader(type, payloadLength: MemoryLayout<T>.size)
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        pad()
    }

    public mutating func append(_ type: UInt16, uint8 value: UInt8) { append(type, bytesOf: value) }
    public mutating func append(_ type: UInt16, uint16 value: UInt16) { append(type, bytesOf: value) }
    public mutating func append(_ type: UInt16, uint32 value: UInt32) { append(type, bytesOf: value) }
    public mutating func append(_ type: UInt16, uint64 value: UInt64) { append(type, bytesOf: value) }

    /// Appends a 16-bit value in network byte order (ports).
    public mutating func append(_ type: UInt16, bigEndianUInt16 value: UInt16) { append(type, bytesOf: value.bigEndian) }

    /// Appends a NUL-terminated string.
    public mutating func append(_ type: UInt16, string: String) {
        let utf8 = string.utf8
        appendAttributeHeader(type, payloadLength: utf8.count + 1)
        bytes.append(contentsOf: utf8)
        bytes.append(0)
        pad()
    }

    /// Appends a nested attribute whose contents `body` writes.
    public mutating func appendNested(_ type: UInt16, _ body: (inout NetlinkMessageBuilder) -> Void) {
        let nestStart = bytes.count
        appendRaw(UInt16(0))
        appendRaw(type | NetlinkConstants.attributeNested)
        body(&self)
        store(UInt16(truncatingIfNeeded: bytes.count - nestStart), at: nestStart)
    }

    /// Writes the total length into the header and returns the finished bytes.
    public func finish() -> [UInt8] {
        var result = self
        result.writeLength()
        return result.bytes
    }

    /// Writes the total length into the header and hands the buffer back to `buffer`, this
    /// message appended; for a builder made with `init(appendingTo:…)`.
    public mutating func finish(into buffer: inout [UInt8]) {
        writeLength()
        swap(&bytes, &buffer)
    }

    // MARK: Private

    private mutating func appendHeader(type: UInt16, flags: NetlinkMessageFlags, sequence: UInt32, portID: UInt32) {
        appendRaw(UInt32(0))
        appendRaw(type)
        appendRaw(flags.rawValue)
        appendRaw(sequence)
        appendRaw(portID)
    }

    private mutating func writeLength() { store(UInt32(truncatingIfNeeded: bytes.count - start), at: start) }

    private mutating func appendAttributeHeader(_ type: UInt16, payloadLength: Int) {
        appendRaw(UInt16(truncatingIfNeeded: NetlinkConstants.attributeHeaderSize + payloadLength))
        appendRaw(type)
    }

    private mutating func appendRaw<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    private mutating func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value, toByteOffset: offset, as: T.self) }
    }

    private mutating func pad() {
        let padding = NetlinkConstants.align(bytes.count) - bytes.count
        if padding > 0 { bytes.append(contentsOf: repeatElement(0, count: padding)) }
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
