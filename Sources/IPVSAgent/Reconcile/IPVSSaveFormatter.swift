import IPVS

/// Prints a plan for `--dry-run`: each IPVS operation as the ipvsadm command that makes it
/// (`IPVSRule`, the form `ipvsadm -S` saves: `-A -t 10.96.0.10:80 -s rr`), so anyone who knows
/// ipvsadm can read it, or pipe it into `ipvsadm -R`; the VIP changes as `ip address` commands in comments.
public enum IPVSSaveFormatter {
    /// Every operation, one per line, between the VIPs bound before and those removed after.
    public static func lines(_ plan: ReconcilePlan, interface: String) -> [String] {
        plan.addressesToAdd.map { "# ip address add \($0)/\($0.family.maxPrefixLength) dev \(interface)" }
            + plan.operations.map(IPVSRule.command)
            + plan.addressesToRemove.map { "# ip address del \($0)/\($0.family.maxPrefixLength) dev \(interface)" }
    }
}
