/// One change to the kernel's IPVS table, for `IPVSClient.apply(_:)`.
public enum IPVSOperation: Hashable, Sendable, CustomStringConvertible {
    case addService(VirtualService)
    case updateService(VirtualService)
    case deleteService(ServiceKey)
    case addRealServer(RealServer, service: ServiceKey)
    case updateRealServer(RealServer, service: ServiceKey)
    case deleteRealServer(RealServerID, service: ServiceKey)
    /// Zero the counters of one service, or of all when `nil`.
    case zero(ServiceKey?)
    /// Delete every service and real server.
    case flush

    /// What the operation does, in words: `add real server 10.1.0.5:8080 to TCP 10.0.0.1:80`.
    public var description: String {
        switch self {
        case .addService(let service): "add service \(service.key)"
        case .updateService(let service): "edit service \(service.key)"
        case .deleteService(let key): "delete service \(key)"
        case .addRealServer(let server, let key): "add real server \(server.id) to \(key)"
        case .updateRealServer(let server, let key): "edit real server \(server.id) of \(key)"
        case .deleteRealServer(let id, let key): "delete real server \(id) from \(key)"
        case .zero(let key?): "zero counters of \(key)"
        case .zero(nil): "zero all counters"
        case .flush: "flush all services"
        }
    }

    /// The service the operation concerns, or `nil` for `flush` and `zero(nil)`.
    public var serviceKey: ServiceKey? {
        switch self {
        case .addService(let service), .updateService(let service): service.key
        case .deleteService(let key), .zero(let key?): key
        case .addRealServer(_, let key), .updateRealServer(_, let key), .deleteRealServer(_, let key): key
        case .zero(nil), .flush: nil
        }
    }
}
