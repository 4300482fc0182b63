import Foundation
import IPVS
import PacketFilter

// MARK: - Names

/// A namespaced Kubernetes object name.
public struct ObjectName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// `namespace/name`, as kubectl prints it.
    public var description: String { "\(namespace)/\(name)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}

// MARK: - Where an object was read

/// Where a decoded object is: its file (as the user named it), the 1-based document within the
/// file and the line where the object starts, so that problems found later (while mapping) can
/// name them.
public struct ManifestLocation: Hashable, Sendable {
    public var file: String
    public var document: Int?
    public var line: Int?

    public init(file: String, document: Int? = nil, line: Int? = nil) {
        self.file = file
        self.document = document
        self.line = line
    }
}

/// A value carried along that never makes two objects unequal (and is not hashed): an object
/// moved in its file (an edit above it) is the same object, so changing its location must not
/// re-map it nor count as a change.
public struct NotCompared<Value: Sendable>: Hashable, Sendable {
    public var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { true }
    public func hash(into hasher: inout Hasher) {}
}

// MARK: - Service

/// The fields of a `v1 Service` that the agent uses.
public struct KubeService: Hashable, Sendable {
    /// `spec.type`.
    public enum ServiceType: String, Hashable, Sendable {
        case clusterIP = "ClusterIP"
        case nodePort = "NodePort"
        case loadBalancer = "LoadBalancer"
        case externalName = "ExternalName"
    }

    public var name: ObjectName
    public var annotations: [String: String]
    public var type: ServiceType
    /// `spec.clusterIP: None`.
    public var isHeadless: Bool
    /// `spec.clusterIPs` (or `spec.clusterIP`), one per address family.
    public var clusterIPs: [IPAddress]
    public var externalIPs: [IPAddress]
    /// `status.loadBalancer.ingress[].ip` (hostnames and `ipMode: Proxy` entries are left out).
    public var loadBalancerIngress: [IPAddress]
    public var ports: [ServicePort]
    /// `sessionAffinity: ClientIP`'s timeout in seconds, or `nil` for no affinity.
    public var sessionAffinityTimeout: UInt32?
    /// `spec.externalTrafficPolicy: Local`.
    public var externalTrafficLocal: Bool
    /// `spec.internalTrafficPolicy: Local`.
    public var internalTrafficLocal: Bool
    /// `spec.loadBalancerSourceRanges`: the only sources its load-balancer IPs take (none: any).
    public var loadBalancerSourceRanges: [AddressPrefix] = []
    /// `spec.healthCheckNodePort`: the port the node answers cloud balancers' health checks on.
    public var healthCheckNodePort: UInt16?
    /// The scheduler of annotation `ipvs.swift.dev/scheduler`, overriding `--scheduler`.
    public var scheduler: Scheduler?
    /// The flags of annotation `ipvs.swift.dev/scheduler-flags`.
    public var schedulerFlags: ServiceFlags?
    /// The scheduler whose flags the annotation names (`sh` for `sh-port`), or `nil` when it names
    /// none (`onepacket` alone): sh and mh flags share bits, so whether they apply is decided by name.
    public var flagsScheduler: Scheduler?
    /// `metadata.creationTimestamp` (`2024-05-01T12:00:00Z`): of two Service objects that claim the
    /// same name or address and port, neither in the desired state yet, the older wins.
    public var creationTimestamp: String?
    /// Where the object was read (`nil` for objects not read from a manifest); not part of the
    /// object's equality.
    public var location: ManifestLocation? {
        get { locationValue.value }
        set { locationValue.value = newValue }
    }
    private var locationValue = NotCompared<ManifestLocation?>(nil)

    public init(name: ObjectName, annotations: [String: String] = [:], type: ServiceType = .clusterIP,
                isHeadless: Bool = false, clusterIPs: [IPAddress] = [], externalIPs: [IPAddress] = [],
                loadBalancerIngress: [IPAddress] = [], ports: [ServicePort] = [],
                sessionAffinityTimeout: UInt32? = nil, externalTrafficLocal: Bool = false,
                internalTrafficLocal: Bool = false, scheduler: Scheduler? = nil, schedulerFlags: ServiceFlags? = nil,
                flagsScheduler: Scheduler? = nil, location: ManifestLocation? = nil) {
        self.name = name
        self.annotations = annotations
        self.type = type
        self.isHeadless = isHeadless
        self.clusterIPs = clusterIPs
        self.externalIPs = externalIPs
        self.loadBalancerIngress = loadBalancerIngress
        self.ports = ports
        self.sessionAffinityTimeout = sessionAffinityTimeout
        self.externalTrafficLocal = externalTrafficLocal
        self.internalTrafficLocal = internalTrafficLocal
        self.scheduler = scheduler
        self.schedulerFlags = schedulerFlags
        self.flagsScheduler = flagsScheduler
        self.locationValue = NotCompared(location)
    }
}

/// One entry of a Service's `spec.ports`.
public struct ServicePort: Hashable, Sendable {
    /// `targetPort`: a number, or the name of a container port resolved per endpoint.
    public enum TargetPort: Hashable, Sendable {
        case number(UInt16)
        case name(String)
    }

    /// The port's name (may be empty when the Service has one port).
    public var name: String
    public var transport: TransportProtocol
    public var port: UInt16
    public var targetPort: TargetPort
    public var nodePort: UInt16?

    public init(name: String = "", transport: TransportProtocol = .tcp, port: UInt16,
                targetPort: TargetPort? = nil, nodePort: UInt16? = nil) {
        self.name = name
        self.transport = transport
        self.port = port
        self.targetPort = targetPort ?? .number(port)
        self.nodePort = nodePort
    }
}

// MARK: - Endpoints

/// The fields of a `discovery.k8s.io/v1 EndpointSlice` that the agent uses; `v1 Endpoints`
/// objects are converted to this form.
public struct EndpointSlice: Hashable, Sendable {
    /// Where the slice came from: an EndpointSlice, or a converted `v1 Endpoints`.
    public enum Origin: Hashable, Sendable {
        case endpointSlice
        case endpoints
    }

    public var name: ObjectName
    /// The Service the slice belongs to (label `kubernetes.io/service-name`, or the Endpoints' name).
    public var serviceName: String?
    /// `addressType`; `nil` for FQDN slices, which the agent ignores.
    public var addressFamily: AddressFamily?
    public var endpoints: [Endpoint]
    public var ports: [EndpointPort]
    public var origin: Origin
    /// The annotation `endpoints.kubernetes.io/last-change-trigger-time`: when the change this object
    /// carries began (a pod's change), for kube-proxy's `kubeproxy_network_programming_duration_seconds`.
    public var lastChangeTriggerTime: Date?
    /// Where the object was read (`nil` for objects not read from a manifest); not part of the
    /// object's equality.
    public var location: ManifestLocation? {
        get { locationValue.value }
        set { locationValue.value = newValue }
    }
    private var locationValue = NotCompared<ManifestLocation?>(nil)

    public init(name: ObjectName, serviceName: String?, addressFamily: AddressFamily?,
                endpoints: [Endpoint], ports: [EndpointPort], origin: Origin = .endpointSlice,
                lastChangeTriggerTime: Date? = nil, location: ManifestLocation? = nil) {
        self.name = name
        self.serviceName = serviceName
        self.addressFamily = addressFamily
        self.endpoints = endpoints
        self.ports = ports
        self.origin = origin
        self.lastChangeTriggerTime = lastChangeTriggerTime
        self.locationValue = NotCompared(location)
    }
}

/// One endpoint of a slice: a pod's address and conditions.
public struct Endpoint: Hashable, Sendable {
    /// The first of the endpoint's `addresses`, the one kube-proxy uses (it ignores the others, which
    /// Kubernetes allows for one pod and its controllers do not write); `nil` for an endpoint of an
    /// FQDN slice, which the agent leaves alone. One address, not a list: no allocation for each of a
    /// large cluster's hundreds of thousands of endpoints.
    public var address: IPAddress?
    /// `conditions.ready`; a missing value counts as ready, as Kubernetes specifies.
    public var ready: Bool
    /// `conditions.serving`; a missing value takes `ready`'s.
    public var serving: Bool
    /// `conditions.terminating`; a missing value counts as not terminating.
    public var terminating: Bool
    public var nodeName: String?
    /// `hints.forZones[].name`: the zones whose nodes should use this endpoint (topology aware routing).
    public var zoneHints: [String]
    /// `hints.forNodes[].name`: the nodes that should use this endpoint (`trafficDistribution: PreferSameNode`).
    public var nodeHints: [String]

    /// `addresses` as the object lists them: the first is kept (`address`).
    public init(addresses: [IPAddress], ready: Bool = true, serving: Bool? = nil, terminating: Bool = false,
                nodeName: String? = nil, zoneHints: [String] = [], nodeHints: [String] = []) {
        self.address = addresses.first
        self.ready = ready
        self.serving = serving ?? ready
        self.terminating = terminating
        self.nodeName = nodeName
        self.zoneHints = zoneHints
        self.nodeHints = nodeHints
    }
}

/// One port of a slice.
public struct EndpointPort: Hashable, Sendable {
    /// The port's name, matching the Service port's name (empty when unnamed).
    public var name: String
    public var transport: TransportProtocol
    public var port: UInt16

    public init(name: String = "", transport: TransportProtocol = .tcp, port: UInt16) {
        self.name = name
        self.transport = transport
        self.port = port
    }
}

// MARK: - A decoded manifest object

/// An object the agent understands, as read from a manifest.
public enum ManifestObject: Hashable, Sendable {
    case service(KubeService)
    case endpointSlice(EndpointSlice)

    /// Where the object was read.
    public var location: ManifestLocation? {
        switch self {
        case .service(let service): service.location
        case .endpointSlice(let slice): slice.location
        }
    }

    /// `Kind namespace/name`, to name the object in logs and errors.
    public var identity: String {
        switch self {
        case .service(let service): "Service \(service.name)"
        case .endpointSlice(let slice):
            slice.origin == .endpoints ? "Endpoints \(slice.name)" : "EndpointSlice \(slice.name)"
        }
    }
}

// MARK: - Node

/// The fields of this node's `v1 Node` that the agent uses.
public struct KubeNode: Hashable, Sendable {
    /// The label that names a node's zone (`v1.LabelTopologyZone`).
    public static let zoneLabel = "topology.kubernetes.io/zone"
    /// The taint the cluster autoscaler puts on a node it is about to delete (kube-proxy's `ToBeDeletedTaint`).
    public static let toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

    public var name: String
    /// The `topology.kubernetes.io/zone` label (`nil` without it): the zone of the slices' zone hints.
    public var zone: String?
    /// `status.addresses` of type `InternalIP` and `ExternalIP`, in their order (kube-proxy's node IPs,
    /// `GetNodeHostIPs`).
    public var addresses: [IPAddress]
    /// Neither being deleted (`metadata.deletionTimestamp`) nor tainted `ToBeDeletedByClusterAutoscaler`:
    /// kube-proxy's `/healthz` answers 503 for a node that is not, so load balancers drain it first.
    public var eligible: Bool

    public init(name: String, zone: String? = nil, addresses: [IPAddress] = [], eligible: Bool = true) {
        self.name = name
        self.zone = zone
        self.addresses = addresses
        self.eligible = eligible
    }
}
