/// The attributes of one netlink attribute stream (a message body or a nested attribute), parsed
/// with bounds checks: any truncated or overlong attribute makes the initializer throw, and no
/// input, however malformed, can make it trap.
///
/// Unknown attribute types are kept and simply never asked for, so newer kernels that send more
/// attributes decode fine.
public struct NetlinkAttributes: Sendable, Equatable {
    private var payloads: [UInt16: ArraySlice<UInt8>] = [:]

    /// Parses `buffer` as a sequence of `struct nlattr` records.
    public init(_ buffer: ArraySlice<UInt8>) throws {
        var offset = buffer.startIndex
        while buffer.endIndex - offset >= NetlinkConstants.attributeHeaderSize {
            let length = Int(buffer.loadUInt16(at: offset))
            let type = buffer.loadUInt16(at: offset + 2) & NetlinkConstants.attributeTypeMask
            guard length >= NetlinkConstants.attributeHeaderSize else {
                throw NetlinkDecodingError("attribute \(type) has length \(length), shorter than its 4-byte header")
            }
            guard length <= buffer.endIndex - offset else {
                throw NetlinkDecodingError("attribute \(type) has length \(length) but only \(buffer.endIndex - offset) bytes remain")
            }
            payloads[type] = buffer[(offset + NetlinkConstants.attributeHeaderSize)..<(offset + length)]
            offset += min(NetlinkConstants.align(length), buffer.endIndex - offset)
        }
        guard offset == buffer.endIndex else {
            throw NetlinkDecodingError("\(buffer.endIndex - offset) trailing bytes are too few for an attribute header")
        }
    }

    /// The attribute of `type`, if present.
    public subscript(type: UInt16) -> NetlinkAttribute? {
        payloads[type].map { NetlinkAttribute(type: type, payload: $0) }
    }

    /// The types present, in ascending order.
    public var types: [UInt16] { payloads.keys.sorted() }
}

/// One attribute's payload with typed, size-checked accessors.
public struct NetlinkAttribute: Sendable, Equatable {
    public var type: UInt16
    public var payload: ArraySlice<UInt8>

    public init(type: UInt16, payload: ArraySlice<UInt8>) {
        self.type = type
        self.payload = payload
    }

    public func uint8() throws -> UInt8 {
        try requireSize(1)
        return payload[payload.startIndex]
    }

    public func uint16() throws -> UInt16 {
        try requireSize(2)
        return payload.loadUInt16(at: payload.startIndex)
    }

    /// A 16-bit value sent in network byte order (ports).
    public func bigEndianUInt16() throws -> UInt16 {
        UInt16(bigEndian: try uint16())
    }

    public func uint32() throws -> UInt32 {
        try requireSize(4)
        return payload.loadUInt32(at: payload.startIndex)
    }

    public func uint64() throws -> UInt64 {
        try requireSize(8)
        return payload.loadUInt64(at: payload.startIndex)
    }

    /// A string, ending at the first NUL or at the end of the payload.
    public func string() throws -> String {
        let end = payload.firstIndex(of: 0) ?? payload.endIndex
        return String(decoding: payload[payload.startIndex..<end], as: UTF8.self)
    }

    /// The payload parsed as nested attributes.
    public func nested() throws -> NetlinkAttributes {
        try NetlinkAttributes(payload)
    }

    private func requireSize(_ size: Int) throws {
        // The kernel pads nothing inside a fixed-size attribute, but accept larger payloads the
        // way the kernel's own policy does for forward compatibility; reject smaller ones.
        guard payload.count >= size else {
            throw NetlinkDecodingError("attribute \(type) has \(payload.count) bytes, needs \(size)")
        }
    }
}
