import IPVS

/// The agent's table in nft's native syntax, written here and nowhere else: its fixed sets, chains and
/// rules, and the element changes that keep it in step with a `PacketFilterState`.
///
/// The rules follow kube-proxy's IPVS mode (`pkg/proxy/ipvs/proxier.go`), with its ipsets as nftables
/// sets and its iptables chains as base chains of this one table, in the idioms of kube-proxy's
/// nftables mode (concatenated set lookups, one table, element updates in one transaction).
struct PacketFilterRuleset: Sendable {
    /// The table's name; its family is always `inet` (both IP families, one table).
    let table: String

    /// The packet mark bit asking the postrouting chain to masquerade (kube-proxy's `KUBE-MARK-MASQ`
    /// bit, `--iptables-masquerade-bit` 14).
    static let masqueradeMark = "0x00004000"

    /// A set of the table, one per IP family.
    enum SetKind: String, CaseIterable, Sendable {
        case guarded = "vips"
        case accepted
        case masquerade
        case masqueradeOutsideCluster = "masquerade-outside"
        case clusterPrefixes = "cluster-cidrs"
        case firewall
        case firewallAllow = "firewall-allow"
        case hairpin
    }

    /// A set's name in the table: `vips-v4`, `hairpin-v6`.
    struct SetID: Hashable, Comparable, Sendable {
        var kind: SetKind
        var family: AddressFamily
        var name: String { "\(kind.rawValue)-\(family == .inet ? "v4" : "v6")" }
        static func < (lhs: SetID, rhs: SetID) -> Bool { lhs.name < rhs.name }
    }

    /// Each set's elements, in nft's syntax, for `state`.
    func elements(of state: PacketFilterState) -> [SetID: Set<String>] {
        var result: [SetID: Set<String>] = [:]
        forEachElement(of: state) { id, element in result[id, default: []].insert(element) }
        return result
    }

    /// Calls `body` with each element of `state` and its set, once each.
    func forEachElement(of state: PacketFilterState, _ body: (SetID, String) -> Void) {
        func insert(_ kind: SetKind, _ family: AddressFamily, _ element: String) { body(SetID(kind: kind, family: family), element) }
        for address in state.guardedAddresses { insert(.guarded, address.family, "\(address)") }
        for frontend in state.accepted { insert(.accepted, frontend.address.family, Self.text(frontend)) }
        for frontend in state.masquerade { insert(.masquerade, frontend.address.family, Self.text(frontend)) }
        for frontend in state.masqueradeOutsideCluster {
            insert(.masqueradeOutsideCluster, frontend.address.family, Self.text(frontend))
        }
        for prefix in AddressPrefix.outermost(state.clusterPrefixes) { insert(.clusterPrefixes, prefix.address.family, "\(prefix)") }
        for (frontend, sources) in state.sourceRanges where !sources.isEmpty {
            let family = frontend.address.family
            insert(.firewall, family, Self.text(frontend))
            for source in AddressPrefix.outermost(sources) where source.address.family == family {
                insert(.firewallAllow, family, "\(Self.text(frontend)) . \(source)")
            }
        }
        for endpoint in state.hairpin {
            insert(.hairpin, endpoint.address.family, "\(Self.text(endpoint)) . \(endpoint.address)")
        }
    }

    /// `10.96.0.10 . tcp . 80`: an element of an address . protocol . port set.
    static func text(_ frontend: Frontend) -> String {
        "\(frontend.address) . \(frontend.transport.description.lowercased()) . \(frontend.port)"
    }

    // MARK: - Transactions

    /// One transaction that replaces the table (or creates it) with its rules and `elements`: the
    /// table is deleted and written again atomically, so no packet sees it half written.
    func replace<Members: Collection<String>>(with elements: [SetID: Members]) -> String {
        var text = "add table inet \(table)\ndelete table inet \(table)\n" + definition()
        for (id, members) in elements.sorted(by: { $0.key < $1.key }) where !members.isEmpty {
            text += elementCommand("add", id, members)
        }
        return text
    }

    /// One transaction that deletes `deletions` and then adds `additions`, or `nil` when both are empty.
    func update(deleting deletions: [SetID: Set<String>], adding additions: [SetID: Set<String>]) -> String? {
        var text = ""
        for (id, members) in deletions.sorted(by: { $0.key < $1.key }) where !members.isEmpty {
            text += elementCommand("delete", id, members)
        }
        for (id, members) in additions.sorted(by: { $0.key < $1.key }) where !members.isEmpty {
            text += elementCommand("add", id, members)
        }
        return text.isEmpty ? nil : text
    }

    /// Deletes the table if it exists (adding it first makes the deletion succeed when it does not).
    func deletion() -> String { "add table inet \(table)\ndelete table inet \(table)\n" }

    /// Lists the table.
    func listing() -> String { "list table inet \(table)\n" }

    private func elementCommand(_ verb: String, _ id: SetID, _ members: some Collection<String>) -> String {
        "\(verb) element inet \(table) \(id.name) { \(members.sorted().joined(separator: ", ")) }\n"
    }

    // MARK: - The table

    /// The table with its sets, chains and rules, and no elements.
    func definition() -> String {
        var sets = "", mark = "", input = "", postrouting = ""
        for family in AddressFamily.allCases {
            let ip = family == .inet ? "ip" : "ip6", addr = family == .inet ? "ipv4_addr" : "ipv6_addr"
            func name(_ kind: SetKind) -> String { SetID(kind: kind, family: family).name }
            let frontendType = "\(addr) . inet_proto . inet_service"
            for kind in SetKind.allCases {
                let type: String, flags: String
                switch kind {
                case .guarded: (type, flags) = (addr, "")
                case .clusterPrefixes: (type, flags) = (addr, " flags interval;")
                case .accepted, .masquerade, .masqueradeOutsideCluster, .firewall: (type, flags) = (frontendType, "")
                case .firewallAllow: (type, flags) = ("\(frontendType) . \(addr)", " flags interval;")
                case .hairpin: (type, flags) = ("\(frontendType) . \(addr)", "")
                }
                sets += "    set \(name(kind)) { type \(type);\(flags) }\n"
            }
            let frontend = "\(ip) daddr . meta l4proto . th dport"
            let setMark = "meta mark set meta mark | \(Self.masqueradeMark)"
            // Node ports, external and load-balancer IPs (not Local) and ClusterIPs with --masquerade-all.
            mark += "    \(frontend) @\(name(.masquerade)) \(setMark)\n"
            // ClusterIPs reached from outside the pod network (KUBE-CLUSTER-IP with --cluster-cidr).
            mark += "    \(frontend) @\(name(.masqueradeOutsideCluster)) \(ip) saddr != @\(name(.clusterPrefixes)) \(setMark)\n"
            // loadBalancerSourceRanges: a firewalled frontend takes only its allowed sources.
            input += "    \(frontend) @\(name(.firewall)) \(frontend) . \(ip) saddr != @\(name(.firewallAllow)) drop\n"
            // Only the Services' ports on a VIP: not sshd or the kubelet (KUBE-IPVS-FILTER).
            input += "    ct state new meta l4proto { tcp, udp, sctp } \(ip) daddr @\(name(.guarded)) \(frontend) != @\(name(.accepted)) drop\n"
            // Hairpin: a pod sent to itself by IPVS (KUBE-LOOP-BACK).
            postrouting += "    \(frontend) . \(ip) saddr @\(name(.hairpin)) masquerade fully-random\n"
        }
        return """
        table inet \(table) {
        \(sets)
          chain mark-for-masquerade {
        \(mark)  }
          chain filter-prerouting {
            type filter hook prerouting priority dstnat; policy accept;
            jump mark-for-masquerade
          }
          chain filter-output {
            type filter hook output priority -100; policy accept;
            jump mark-for-masquerade
          }
          chain filter-input {
            type filter hook input priority filter; policy accept;
        \(input)  }
          chain nat-postrouting {
            type nat hook postrouting priority srcnat; policy accept;
            meta mark & \(Self.masqueradeMark) == \(Self.masqueradeMark) meta mark set meta mark ^ \(Self.masqueradeMark) masquerade fully-random
        \(postrouting)  }
        }

        """
    }
}
