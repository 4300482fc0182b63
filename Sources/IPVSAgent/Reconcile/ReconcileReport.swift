/// What one reconcile pass did.
public struct ReconcileReport: Sendable {
    /// Kernel operations and address changes applied successfully.
    public var applied = 0
    /// One sentence per failed operation.
    public var failures: [String] = []
    /// Differences between the model and the kernel found (and repaired) by a verification.
    public var repairs = 0

    public var succeeded: Bool { failures.isEmpty }

    /// Counts what a later pass of the same sync did (its drain check) in this report.
    public mutating func add(_ other: ReconcileReport) {
        applied += other.applied
        failures += other.failures
        repairs += other.repairs
    }
}
