import IPVS
import Logging

/// The load step of every mode (`--once`, the daemon, `--dry-run`): reads a snapshot from the
/// source of desired state, maps it (`DesiredStateBuilder`), logs each problem, and says what
/// invalid manifests hold in the kernel. On the first load of a start, a cold start
/// (`ColdStart`) is handed each decoded file as it comes and finished once the state is built.
///
/// The source is any `DesiredStateSource`: the manifest files today; the API server plugs in
/// beside them.
struct DesiredStateLoader {
    /// One load's outcome.
    struct Loaded: Sendable {
        var build: DesiredStateBuilder.Build
        /// The source's and the mapping's problems.
        var issues: [ManifestIssue]
        /// Kernel state to keep while manifests are invalid.
        var hold: Reconciler.Hold
        /// What the cold start did (`nil` without one), for the reconcile to take over.
        var coldStart: ColdStart.Result?
        /// The source's snapshot, for counting the objects it changed (`ObjectChanges`).
        var snapshot: SourceSnapshot
    }

    let source: any DesiredStateSource
    var builder: DesiredStateBuilder
    let logger: Logger
    /// Where the number of problems is recorded (the daemon's gauge), `nil` to record nothing.
    let metrics: AgentMetrics?

    init(source: any DesiredStateSource, options: MappingOptions, logger: Logger, metrics: AgentMetrics? = nil) {
        self.source = source
        self.builder = DesiredStateBuilder(options: options)
        self.logger = logger
        self.metrics = metrics
    }

    /// Loads `changed` (all when `nil`) and maps it. `owners` are the state file's owners of
    /// virtual services, taken on the first load (`DesiredStateBuilder.seed(owners:)`);
    /// `coldStart` programs the kernel as the source decodes. `reason` is logged.
    mutating func load(changed: Set<String>? = nil, reason: String, owners: [ServiceKey: ObjectName] = [:],
                       coldStart: ColdStart? = nil) async -> Loaded {
        let start = ContinuousClock.now
        var decodedHandler: ManifestSource.DecodedHandler?
        if let coldStart { decodedHandler = { coldStart.decoded($0) } }
        let snapshot = await source.load(changed: changed, decoded: decodedHandler)
        let decoded = ContinuousClock.now - start
        // Mapped with other options (the API server's Node gave a zone since): mapped again here.
        if let coldStart, coldStart.mappingOptions == builder.options { builder.seed(coldStart.mappings()) }
        builder.seed(owners: owners)
        let build = builder.build(snapshot)
        let issues = snapshot.issues + build.issues
        for issue in issues { logger.error("\(issue)") }
        metrics?.manifestIssues.record(issues.count)
        // A load that maps everything (the first; any while Services conflict) is worth a line of its own;
        // the others are summed up in the sync's line (one info line per sync: under churn, many a second).
        logger.log(level: build.changed == nil ? .info : .debug, "loaded \(source.objectsName)", metadata: [
            "reason": "\(reason)", "services": "\(build.state.services.count)", "real_servers": "\(build.realServerCount)",
            "problems": "\(issues.count)", "changed": "\(build.changed.map { "\($0.count)" } ?? "all")",
            "milliseconds": "\(Reconciler.milliseconds(ContinuousClock.now - start))",
            "read_milliseconds": "\(Reconciler.milliseconds(decoded))"])
        return Loaded(build: build, issues: issues, hold: Reconciler.Hold(services: snapshot.heldServices, everything: snapshot.incomplete),
                      coldStart: coldStart?.finish(), snapshot: snapshot)
    }
}
