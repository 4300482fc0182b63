/// Flags of a virtual service.
///
/// `persistent` is managed through `VirtualService.persistence`; `hashed` is set by the kernel.
/// The scheduler flags share bits: `shFallback` and `mhFallback` are the same bit, interpreted by
/// whichever scheduler the service uses.
public struct ServiceFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Persistent port. The corresponding kernel constant is `IP_VS_SVC_F_PERSISTENT`.
    public static let persistent = ServiceFlags(rawValue: 0x0001)
    /// The service is hashed (set by the kernel). The corresponding kernel constant is `IP_VS_SVC_F_HASHED`.
    public static let hashed = ServiceFlags(rawValue: 0x0002)
    /// One-packet scheduling (UDP). The corresponding kernel constant is `IP_VS_SVC_F_ONEPACKET`.
    public static let onePacket = ServiceFlags(rawValue: 0x0004)
    /// Scheduler flag 1. The corresponding kernel constant is `IP_VS_SVC_F_SCHED1`.
    public static let scheduler1 = ServiceFlags(rawValue: 0x0008)
    /// Scheduler flag 2. The corresponding kernel constant is `IP_VS_SVC_F_SCHED2`.
    public static let scheduler2 = ServiceFlags(rawValue: 0x0010)
    /// Scheduler flag 3. The corresponding kernel constant is `IP_VS_SVC_F_SCHED3`.
    public static let scheduler3 = ServiceFlags(rawValue: 0x0020)

    /// sh: fall back to another server when the hashed one is unavailable.
    /// The corresponding kernel constant is `IP_VS_SVC_F_SCHED_SH_FALLBACK`.
    public static let shFallback = scheduler1
    /// sh: hash the source port too. The corresponding kernel constant is `IP_VS_SVC_F_SCHED_SH_PORT`.
    public static let shPort = scheduler2
    /// mh: fall back to another server when the hashed one is unavailable.
    /// The corresponding kernel constant is `IP_VS_SVC_F_SCHED_MH_FALLBACK`.
    public static let mhFallback = scheduler1
    /// mh: hash the source port too. The corresponding kernel constant is `IP_VS_SVC_F_SCHED_MH_PORT`.
    public static let mhPort = scheduler2

    /// The flags a user sets (everything but `hashed`).
    public static let userSettable: ServiceFlags = [.persistent, .onePacket, .scheduler1, .scheduler2, .scheduler3]
}

// MARK: - Scheduler flag names

extension ServiceFlags {
    /// A scheduler flag as ipvsadm names it (`-b`), with the scheduler the name belongs to.
    public struct SchedulerFlagName: Hashable, Sendable {
        /// `flag-1`, `sh-port`, `mh-fallback`, …
        public var name: String
        /// The flag bit the name sets.
        public var flag: ServiceFlags
        /// The scheduler the name is for; `nil` for the generic `flag-N` names, valid with any scheduler.
        public var scheduler: Scheduler?
    }

    /// Every scheduler flag name, in the order ipvsadm's manual lists them.
    public static let schedulerFlagNames: [SchedulerFlagName] = [
        SchedulerFlagName(name: "flag-1", flag: .scheduler1, scheduler: nil),
        SchedulerFlagName(name: "flag-2", flag: .scheduler2, scheduler: nil),
        SchedulerFlagName(name: "flag-3", flag: .scheduler3, scheduler: nil),
        SchedulerFlagName(name: "sh-fallback", flag: .shFallback, scheduler: .sourceHashing),
        SchedulerFlagName(name: "sh-port", flag: .shPort, scheduler: .sourceHashing),
        SchedulerFlagName(name: "mh-fallback", flag: .mhFallback, scheduler: .maglevHashing),
        SchedulerFlagName(name: "mh-port", flag: .mhPort, scheduler: .maglevHashing),
    ]

    /// The scheduler flags among these flags.
    public var schedulerFlags: ServiceFlags { intersection([.scheduler1, .scheduler2, .scheduler3]) }

    /// The names ipvsadm prints for the scheduler flags set, read as `scheduler` reads them:
    /// `sh-fallback`/`sh-port` for sh, `mh-fallback`/`mh-port` for mh (which ignore flag 3), else `flag-N`.
    public func schedulerFlagNames(for scheduler: Scheduler) -> [String] {
        let own = Self.schedulerFlagNames.filter { $0.scheduler == scheduler }
        let names = own.isEmpty ? Self.schedulerFlagNames.filter { $0.scheduler == nil } : own
        return names.filter { contains($0.flag) }.map(\.name)
    }

    /// The flag a name stands for, or `nil` when no scheduler flag has this name.
    public static func schedulerFlag(named name: some StringProtocol) -> SchedulerFlagName? {
        schedulerFlagNames.first { $0.name == name }
    }
}

