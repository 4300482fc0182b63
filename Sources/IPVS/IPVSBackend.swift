/// The kernel's IPVS as its users call it: `IPVSClient` is the real one; unit tests use an
/// in-memory table that answers as the kernel does (the test-support target's `FakeIPVS`).
///
/// One protocol for ipvsctl and the agent, as kube-proxy's `utilipvs.Interface` is one interface
/// with one fake.
public protocol IPVSBackend: AnyObject {
    /// The IPVS version and connection table size.
    func info() throws -> IPVSInfo
    /// Every virtual service, without real servers.
    func services() throws -> [VirtualService]
    /// One virtual service; throws `.serviceNotFound` when it does not exist.
    func service(_ key: ServiceKey) throws -> VirtualService
    /// The real servers of one service, with connection counts; throws `.serviceNotFound` when the
    /// service does not exist.
    func realServers(of key: ServiceKey) throws -> [RealServer]
    /// Every service with its real servers (and their connection counts).
    func table() throws -> [ServiceTableEntry]
    /// The connection timeouts.
    func timeouts() throws -> Timeouts
    /// Sets the connection timeouts; a zero field leaves that timeout unchanged.
    func setTimeouts(_ timeouts: Timeouts) throws
    /// The running connection synchronisation daemons.
    func syncDaemons() throws -> [SyncDaemon]
    /// Applies operations in order and returns one result per operation.
    func apply(_ operations: [IPVSOperation]) -> [IPVSOperationResult]
}

extension IPVSClient: IPVSBackend {}
