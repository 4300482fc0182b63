import Foundation
import IPVS

/// Reads and validates `discovery.k8s.io/v1 EndpointSlice` and `v1 Endpoints`.
enum EndpointsDecoder {
    /// The label naming a slice's Service.
    static let serviceNameLabel = "kubernetes.io/service-name"

    static let endpointFields: FieldNames = [
        "addresses", "conditions", "hostname", "targetRef", "nodeName", "zone", "hints", "deprecatedTopology",
    ]
    static let sliceFields: FieldNames = ["apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"]
    static let conditionFields: FieldNames = ["ready", "serving", "terminating"]
    static let hintFields: FieldNames = ["forZones", "forNodes"]
    static let hintEntryFields: FieldNames = ["name"]
    static let portFields: FieldNames = ["name", "protocol", "port", "appProtocol"]
    static let endpointsFields: FieldNames = ["apiVersion", "kind", "metadata", "subsets"]
    static let subsetFields: FieldNames = ["addresses", "notReadyAddresses", "ports"]
    static let addressFields: FieldNames = ["ip", "hostname", "nodeName", "targetRef"]

    // MARK: - EndpointSlice

    static func decodeSlice(_ reader: NodeReader) throws -> EndpointSlice {
        let object = try reader.mapping(known: sliceFields)
        let metadata = try ManifestDecoder.metadata(try object.required("metadata"), name: .dns1123Subdomain)
        let typeReader = try object.required("addressType")
        let family: AddressFamily?
        switch try typeReader.string() {
        case "IPv4": family = .inet
        case "IPv6": family = .inet6
        case "FQDN": family = nil
        case let other: throw typeReader.fail("must be IPv4, IPv6 or FQDN, got \"\(other)\"")
        }
        var endpoints: [Endpoint] = []
        for entry in try object.list("endpoints") {
            let fields = try entry.mapping(known: endpointFields)
            let addressReaders = try fields.required("addresses").sequence()
            var addresses: [IPAddress] = []
            if let family {
                for address in addressReaders {
                    let value = try address.ipAddress()
                    guard value.family == family else { throw address.fail("is not an \(family) address (addressType \(family))") }
                    addresses.append(value)
                }
            }
            var ready = true, serving: Bool?, terminating = false
            if let conditions = try fields["conditions"]?.mapping(known: conditionFields) {
                ready = try conditions.bool("ready") ?? true
                serving = try conditions.bool("serving")
                terminating = try conditions.bool("terminating") ?? false
            }
            var zoneHints: [String] = [], nodeHints: [String] = []
            if let hints = try fields["hints"]?.mapping(known: hintFields) {
                zoneHints = try hints.list("forZones").map { try $0.mapping(known: hintEntryFields).required("name").string() }
                nodeHints = try hints.list("forNodes").map { try $0.mapping(known: hintEntryFields).required("name").string() }
            }
            endpoints.append(Endpoint(addresses: addresses, ready: ready, serving: serving, terminating: terminating,
                                      nodeName: try fields.string("nodeName"), zoneHints: zoneHints, nodeHints: nodeHints))
        }
        let portReaders = try object.list("ports")
        let ports = try portReaders.map(port)
        try checkDuplicatePorts(ports, readers: portReaders)
        return EndpointSlice(name: metadata.name, serviceName: metadata.labels[serviceNameLabel], addressFamily: family,
                             endpoints: family == nil ? [] : endpoints, ports: ports,
                             lastChangeTriggerTime: triggerTime(metadata.annotations))
    }

    private static func port(_ reader: NodeReader) throws -> EndpointPort {
        let fields = try reader.mapping(known: portFields)
        return EndpointPort(name: try fields.string("name") ?? "", transport: try fields["protocol"]?.transportProtocol() ?? .tcp,
                            port: try fields.required("port").port())
    }

    private static func checkDuplicatePorts(_ ports: [EndpointPort], readers: ListReader) throws {
        // Among the ports before each (a slice has a handful): no set of keys to build.
        for (index, port) in ports.enumerated()
        where ports[..<index].contains(where: { $0.name == port.name && $0.transport == port.transport }) {
            throw readers[index].fail("duplicate port name \"\(port.name)\" for \(port.transport)")
        }
    }

    // MARK: - v1 Endpoints

    /// Converts a `v1 Endpoints` into one slice per subset and family; `notReadyAddresses` become
    /// endpoints that are neither ready nor serving.
    static func decodeEndpoints(_ reader: NodeReader) throws -> EndpointSlice {
        let object = try reader.mapping(known: endpointsFields)
        let metadata = try ManifestDecoder.metadata(try object.required("metadata"), name: .dns1123Subdomain)
        var endpoints: [Endpoint] = []
        var ports: [EndpointPort] = []
        for subset in try object.list("subsets") {
            let fields = try subset.mapping(known: subsetFields)
            let portReaders = try fields.list("ports")
            let subsetPorts = try portReaders.map(port)
            try checkDuplicatePorts(subsetPorts, readers: portReaders)
            if !ports.isEmpty, !subsetPorts.isEmpty, Set(ports) != Set(subsetPorts) {
                throw subset.fail("subsets with different ports are not supported; use EndpointSlices")
            }
            if ports.isEmpty { ports = subsetPorts }
            for (field, ready) in [("addresses", true), ("notReadyAddresses", false)] {
                for entry in try fields.list(field) {
                    let address = try entry.mapping(known: addressFields)
                    endpoints.append(Endpoint(addresses: [try address.required("ip").ipAddress()], ready: ready,
                                              nodeName: try address.string("nodeName")))
                }
            }
        }
        return EndpointSlice(name: metadata.name, serviceName: metadata.name.name, addressFamily: nil,
                             endpoints: endpoints, ports: ports, origin: .endpoints,
                             lastChangeTriggerTime: triggerTime(metadata.annotations))
    }

    /// The annotation the EndpointSlice and Endpoints controllers set (`endpoints.kubernetes.io/last-change-trigger-time`).
    static let triggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time"

    /// The time of `triggerTimeAnnotation` (RFC 3339, with or without fractional seconds, as Go's
    /// `time.RFC3339Nano` writes it); `nil` without it or when it is not a time, which kube-proxy ignores too.
    static func triggerTime(_ annotations: [String: String]) -> Date? {
        guard let text = annotations[triggerTimeAnnotation] else { return nil }
        // Format styles, not a formatter made for each slice: making an `ISO8601DateFormatter` costs
        // more than decoding the rest of the slice.
        if let date = try? Date(text, strategy: withFraction) { return date }
        return try? Date(text, strategy: .iso8601)
    }

    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}
