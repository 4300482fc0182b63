/// A kernel parameter to set, with the reason, for logs and documentation.
public struct SysctlSetting: Hashable, Sendable, CustomStringConvertible {
    /// The parameter in sysctl(8)'s dotted form: `net.ipv4.vs.conntrack`.
    public var name: String
    /// The value to set: `1`.
    public var value: String
    /// Why the agent needs it, in one sentence.
    public var reason: String

    public init(name: String, value: String, reason: String) {
        self.name = name
        self.value = value
        self.reason = reason
    }

    /// `net.ipv4.vs.conntrack=1`.
    public var description: String { "\(name)=\(value)" }
}

/// The kernel parameters an IPVS service proxy needs, the same ones kube-proxy's IPVS mode sets.
///
/// Set them with `Sysctl.ensure(_:_:)` after loading `ip_vs` (the `net.ipv4.vs.*` ones exist only
/// then), and log each one it changed with its reason.
///
/// Left out on purpose: `net.ipv6.conf.all.forwarding` (turning it on makes the node ignore
/// router advertisements and can drop its IPv6 default route; IPv6 nodes already forward), and
/// `net.bridge.bridge-nf-call-iptables` (only for bridged pod networks, the CNI's job).
public enum IPVSSysctls {
    /// The parameters for the running kernel (see `required(strictARP:kernelRelease:)`).
    public static func required(strictARP: Bool) -> [SysctlSetting] {
        required(strictARP: strictARP, kernelRelease: Sysctl.kernelRelease)
    }

    /// The parameters for a kernel of release `kernelRelease` (`uname -r`, such as `5.4.0-150-generic`).
    ///
    /// `net.ipv4.vs.conn_reuse_mode=0` is included only for kernels 4.1 to 5.8, as kube-proxy
    /// does; from 5.9 on the kernel's default (1) is right and left alone. With `strictARP`, the
    /// two ARP parameters that keep the node from answering ARP for the VIPs are added.
    public static func required(strictARP: Bool, kernelRelease: String) -> [SysctlSetting] {
        var settings = [
            SysctlSetting(
                name: "net.ipv4.vs.conntrack", value: "1",
                reason: "keep netfilter connection tracking for IPVS connections, so iptables rules (masquerading for NodePorts and hairpin traffic) apply to them"),
        ]
        if let version = kernelVersion(kernelRelease), version >= (4, 1), version < (5, 9) {
            settings.append(SysctlSetting(
                name: "net.ipv4.vs.conn_reuse_mode", value: "0",
                reason: "on kernels before 5.9 with conntrack on, mode 1 drops the first SYN of a reused source port, a 1 s delay for busy clients (fixed in 5.9)"))
        }
        settings += [
            SysctlSetting(
                name: "net.ipv4.vs.expire_nodest_conn", value: "1",
                reason: "drop a connection entry at its next packet once its real server is deleted, so clients see a reset and retry instead of a hang until the entry times out"),
            SysctlSetting(
                name: "net.ipv4.vs.expire_quiescent_template", value: "1",
                reason: "expire session-affinity templates of a real server set to weight 0, so sticky (ClientIP) clients move off a draining endpoint"),
            SysctlSetting(
                name: "net.ipv4.ip_forward", value: "1",
                reason: "forward IPv4 packets, so IPVS can send (masquerade) traffic to real servers that are not this node's own processes"),
        ]
        if strictARP {
            settings += [
                SysctlSetting(
                    name: "net.ipv4.conf.all.arp_ignore", value: "1",
                    reason: "strict ARP: answer ARP only for addresses of the receiving interface, never for VIPs on the dummy interface (LoadBalancer IPs are announced by their owner, e.g. MetalLB)"),
                SysctlSetting(
                    name: "net.ipv4.conf.all.arp_announce", value: "2",
                    reason: "strict ARP: use the outgoing interface's own address as ARP source, never a VIP from the dummy interface"),
            ]
        }
        return settings
    }

    /// `(major, minor)` from a release such as `6.1.0-56-amd64`, or `nil`.
    static func kernelVersion(_ release: String) -> (Int, Int)? {
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2, release.first?.isNumber == true else { return nil }
        return (numbers[0], numbers[1])
    }
}
