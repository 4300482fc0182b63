import IPVS

/// The first load of a start, with the kernel programmed while the manifests are still decoded:
/// the VIPs of each decoded Service are bound (`AddressBinding`) and the virtual services of each
/// decoded file added (`EarlyProgramming`), each on a thread of its own, over an IPVS socket and a
/// VIP backend of its own. `finish()` waits for both and returns what they did, which the first
/// `Reconciler.reconcile(_:changed:hold:coldStart:)` takes over: it records the result in its
/// model of the kernel and applies the difference to the whole desired state, which also undoes
/// what a later file changed. Nothing is lent: the reconciler's own sockets stay its own.
final class ColdStart: Sendable {
    /// What the reconciler knew when it started, that the cold start must respect: made by
    /// `Reconciler.coldStartBasis()`.
    struct Basis: Sendable {
        /// The virtual services in the kernel: never touched by the cold start.
        var services: Set<ServiceKey>
        /// The Service the state file records for each virtual service it owns.
        var owners: [ServiceKey: ObjectName]
        /// The dummy interface whose VIPs the agent manages, `nil` when it leaves addresses alone.
        var interface: String?
        /// The addresses bound on it: never bound again.
        var addresses: Set<IPAddress>
        /// Where claims are recorded before the kernel changes (`OwnershipStore.claim`).
        var store: OwnershipStore?
    }

    /// What the cold start did, handed to the reconciler once.
    struct Result: Sendable {
        /// The virtual services added and the outcome of the other operations.
        var programmed: EarlyProgramming.Outcome
        /// Every address handed to the binding, with its outcome.
        var bound: AddressBinding.Outcome
    }

    private let programming: EarlyProgramming
    private let binding: AddressBinding?
    private let options: MappingOptions

    /// Starts both threads. `ipvs` is the cold start's own IPVS socket; `vips` (when the basis
    /// names an interface) binds the VIPs.
    init(_ basis: Basis, ipvs: sending any IPVSBackend, vips: (any VIPBackend)?, options: MappingOptions) {
        self.options = options
        programming = EarlyProgramming(ipvs, present: basis.services, owners: basis.owners, options: options, store: basis.store)
        if let vips, let interface = basis.interface {
            binding = AddressBinding(vips, interface, present: basis.addresses, store: basis.store)
        } else {
            binding = nil
        }
    }

    /// Hands the objects of one decoded file over: their Services' VIPs to the binding, their
    /// objects to the programming (`ManifestSource.DecodedHandler`).
    func decoded(_ objects: [ManifestObject]) {
        bind(objects)
        program(objects)
    }

    /// Hands the VIPs of the Services among `objects` to the binding.
    func bind(_ objects: [ManifestObject]) {
        binding?.add(ServiceMapper.addresses(in: objects, options: options))
    }

    /// Hands `objects` to the programming: each Service among them is mapped with the endpoint
    /// objects among them (`EarlyProgramming.add(_:)`).
    func program(_ objects: [ManifestObject]) {
        programming.add(objects)
    }

    /// The options the Services are mapped with: the builder takes the mappings only when its own are the same.
    var mappingOptions: MappingOptions { options }

    /// The Services mapped so far, for the builder (`DesiredStateBuilder.seed(_:)`).
    func mappings() -> [ObjectName: DesiredStateBuilder.Entry] {
        programming.mappings()
    }

    /// Takes no more objects, waits until everything handed over was done, and returns what was done.
    func finish() -> Result {
        Result(programmed: programming.results(), bound: binding?.results() ?? [])
    }
}
