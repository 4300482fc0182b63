import IPVS

/// Reads and validates `discovery.k8s.io/v1 EndpointSlice` and `v1 Endpoints`.
enum EndpointsDecoder {
    /// The label naming a slice's Service.
    static let serviceNameLabel = "kubernetes.io/service-name"

    static let endpointFields: Set<String> = [
        "addresses", "conditions", "hostname", "targetRef", "nodeName", "zone", "hints", "deprecatedTopology",
    ]

    // MARK: - EndpointSlice

    static func decodeSlice(_ reader: NodeReader) throws -> EndpointSlice {
        let object = try reader.mapping(known: ["apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"])
        let metadata = try ManifestDecoder.metadata(try object.required("metadata"))
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
            if let conditions = try fields["conditions"]?.mapping(known: ["ready", "serving", "terminating"]) {
                ready = try conditions.bool("ready") ?? true
                serving = try conditions.bool("serving")
                terminating = try conditions.bool("terminating") ?? false
            }
            endpoints.append(Endpoint(addresses: addresses, ready: ready, serving: serving, terminating: terminating,
                                      nodeName: try fields.string("nodeName")))
        }
        let ports = try object.list("ports").map(port)
        try checkDuplicatePorts(ports, readers: try object.list("ports"))
        return EndpointSlice(name: metadata.name, serviceName: metadata.labels[serviceNameLabel], addressFamily: family,
                             endpoints: family == nil ? [] : endpoints, ports: ports)
    }

    private static func port(_ reader: NodeReader) throws -> EndpointPort {
        let fields = try reader.mapping(known: ["name", "protocol", "port", "appProtocol"])
        return EndpointPort(name: try fields.string("name") ?? "", transport: try fields["protocol"]?.transportProtocol() ?? .tcp,
                            port: try fields.required("port").port())
    }

    private static func checkDuplicatePorts(_ ports: [EndpointPort], readers: [NodeReader]) throws {
        var seen: Set<String> = []
        for (index, port) in ports.enumerated() where !seen.insert("\(port.name)/\(port.transport)").inserted {
            throw readers[index].fail("duplicate port name \"\(port.name)\" for \(port.transport)")
        }
    }

    // MARK: - v1 Endpoints

    /// Converts a `v1 Endpoints` into one slice per subset and family; `notReadyAddresses` become
    /// endpoints that are neither ready nor serving.
    static func decodeEndpoints(_ reader: NodeReader) throws -> EndpointSlice {
        let object = try reader.mapping(known: ["apiVersion", "kind", "metadata", "subsets"])
        let metadata = try ManifestDecoder.metadata(try object.required("metadata"))
        var endpoints: [Endpoint] = []
        var ports: [EndpointPort] = []
        for subset in try object.list("subsets") {
            let fields = try subset.mapping(known: ["addresses", "notReadyAddresses", "ports"])
            let subsetPorts = try fields.list("ports").map(port)
            try checkDuplicatePorts(subsetPorts, readers: try fields.list("ports"))
            if !ports.isEmpty, !subsetPorts.isEmpty, Set(ports) != Set(subsetPorts) {
                throw subset.fail("subsets with different ports are not supported; use EndpointSlices")
            }
            if ports.isEmpty { ports = subsetPorts }
            for (field, ready) in [("addresses", true), ("notReadyAddresses", false)] {
                for entry in try fields.list(field) {
                    let address = try entry.mapping(known: ["ip", "hostname", "nodeName", "targetRef"])
                    endpoints.append(Endpoint(addresses: [try address.required("ip").ipAddress()], ready: ready,
                                              nodeName: try address.string("nodeName")))
                }
            }
        }
        return EndpointSlice(name: metadata.name, serviceName: metadata.name.name, addressFamily: nil,
                             endpoints: endpoints, ports: ports, origin: .endpoints)
    }
}
