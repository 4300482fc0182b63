import Foundation
import HealthCheck
import IPVS
import TestSupport
import XCTest
@testable import IPVSAgent

/// `--config` with kube-proxy's own `KubeProxyConfiguration`: kubeadm's ConfigMap as it is, every field's
/// effect on the agent's settings, kube-proxy's strictness, and flags winning over the file.
final class KubeProxyConfigurationTests: XCTestCase {
    /// The `config.conf` of `Examples/kube-proxy-configmap.yaml` (kubeadm's ConfigMap).
    private func kubeadmConfigConf() throws -> String {
        let path = repositoryPath("Examples/kube-proxy-configmap.yaml")
        let root = try XCTUnwrap(try YAMLTree.parse(String(contentsOfFile: path, encoding: .utf8)).roots.first)
        let data = try XCTUnwrap((0..<root.count).map(root.pair).first { $0.key.scalar == "data" }?.value)
        return try XCTUnwrap((0..<data.count).map(data.pair).first { $0.key.scalar == "config.conf" }?.value.scalar)
    }

    private func settings(_ arguments: [String] = [], file: KubeProxyConfiguration?) throws -> ProxySettings {
        ProxySettings(command: try AgentCommand.parse(["--manifests", "x"] + arguments), file: file)
    }

    /// kubeadm's ConfigMap, as it is: every field at its zero value reads as kube-proxy's default, and the
    /// fields kubeadm fills in that the agent does not do yet are each one warning naming the field.
    func testKubeadmsConfigMapReadsAsKubeProxysDefaults() throws {
        let text = try kubeadmConfigConf()
        guard case .kubeProxy(let file) = try ConfigurationFile.parse(text, file: "config.conf", base: .default) else {
            return XCTFail("the kind does not choose kube-proxy's reader")
        }
        let settings = try settings(file: file)
        XCTAssertEqual(settings.scheduler, .roundRobin)
        XCTAssertNil(settings.nodeName, "hostnameOverride \"\" is the host name")
        XCTAssertEqual(settings.syncPeriod, .seconds(30), "syncPeriod 0s is kube-proxy's 30s")
        XCTAssertEqual(settings.minSyncPeriod, .zero)
        XCTAssertFalse(settings.strictARP)
        XCTAssertEqual(settings.timeouts, Timeouts(), "0s leaves the kernel's timeouts")
        XCTAssertEqual(settings.metricsAddress, "127.0.0.1:10249")
        XCTAssertEqual(settings.healthzAddress, "0.0.0.0:10256")
        XCTAssertFalse(settings.bindAddressHardFail)
        XCTAssertEqual(file.excludeCIDRs, [])
        XCTAssertEqual(file.flagValues, KubeProxyConfiguration.FlagValues(clusterCIDR: "10.244.0.0/16", nodePortAddresses: [],
                                                                          masqueradeAll: false, kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf"))
        XCTAssertEqual(file.warnings.map { $0.field ?? "" }.sorted(), ["conntrack", "oomScoreAdj"])
        // They reach the flags the command line left out: the pod network, and the API server as the source.
        let command = try AgentCommand.parse(["--config", "config.conf"]).applying(file.flagValues)
        XCTAssertEqual(command.clusterPrefixes.map(\.description), ["10.244.0.0/16"])
        XCTAssertEqual(command.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf")
        XCTAssertNoThrow(try command.validateSource(fileMayNameIt: false))
        let flagsWin = try AgentCommand.parse(["--config", "config.conf", "--manifests", "m/", "--cluster-cidr", "10.0.0.0/8"])
            .applying(file.flagValues)
        XCTAssertEqual(flagsWin.clusterPrefixes.map(\.description), ["10.0.0.0/8"])
        XCTAssertNil(flagsWin.kubeconfig, "--manifests chose the source")
        for warning in file.warnings { XCTAssertEqual(warning.file, "config.conf"); XCTAssertNotNil(warning.line, "\(warning)") }
        XCTAssertTrue(file.warnings.first { $0.field == "conntrack" }!.message.contains("nf_conntrack"), "\(file.warnings)")
        // Health checks start from --health-check: the file has none.
        XCTAssertEqual(try ConfigurationFile.parse(text, file: "config.conf", base: .default).agentConfiguration(base: .default).healthDefault,
                       .default)
    }

    /// Each field the agent implements sets what its flag sets.
    func testEveryImplementedFieldTakesEffect() throws {
        let file = try KubeProxyConfiguration.parse("""
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            mode: ipvs
            hostnameOverride: node-7
            metricsBindAddress: 0.0.0.0
            healthzBindAddress: "[::]:10266"
            bindAddressHardFail: true
            ipvs:
              scheduler: wlc
              syncPeriod: 1m0s
              minSyncPeriod: 2s
              strictARP: true
              tcpTimeout: 15m0s
              tcpFinTimeout: 30s
              udpTimeout: 5m0s
              excludeCIDRs: [10.0.0.0/8, "fd00::/8"]
            """, file: "kp.yaml")
        XCTAssertEqual(file.warnings, [])
        let settings = try settings(file: file)
        XCTAssertEqual(settings.nodeName, "node-7")
        XCTAssertEqual(settings.metricsAddress, "0.0.0.0:10249", "an address alone gets kube-proxy's port")
        XCTAssertEqual(settings.healthzAddress, "[::]:10266")
        XCTAssertTrue(settings.bindAddressHardFail)
        XCTAssertEqual(settings.scheduler, Scheduler(rawValue: "wlc"))
        XCTAssertEqual(settings.syncPeriod, .seconds(60))
        XCTAssertEqual(settings.minSyncPeriod, .seconds(2))
        XCTAssertTrue(settings.strictARP)
        XCTAssertEqual(settings.timeouts, Timeouts(tcp: 900, tcpFin: 30, udp: 300))
        XCTAssertEqual(file.excludeCIDRs, ["10.0.0.0/8", "fd00::/8"])
    }

    /// Flags win over the file, as with kube-proxy; kube-proxy's flag names and the agent's own both work.
    func testFlagsWinOverTheFile() throws {
        let file = try KubeProxyConfiguration.parse("""
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            mode: ipvs
            hostnameOverride: from-file
            metricsBindAddress: 0.0.0.0:9000
            ipvs: {scheduler: wlc, syncPeriod: 1m0s, tcpTimeout: 15m0s}
            """, file: "kp.yaml")
        for (scheduler, period, node, metrics) in [("--ipvs-scheduler", "--ipvs-sync-period", "--hostname-override", "--metrics-bind-address"),
                                                   ("--scheduler", "--sync-period", "--node-name", "--metrics-address")] {
            let settings = try settings([scheduler, "sh", period, "10s", node, "node-1", metrics, "127.0.0.1:9100",
                                         "--ipvs-tcp-timeout", "0s", "--ipvs-udp-timeout", "1m0s", "--healthz-bind-address", "none"], file: file)
            XCTAssertEqual(settings.scheduler, .sourceHashing, scheduler)
            XCTAssertEqual(settings.syncPeriod, .seconds(10), period)
            XCTAssertEqual(settings.nodeName, "node-1", node)
            XCTAssertEqual(settings.metricsAddress, "127.0.0.1:9100", metrics)
            XCTAssertEqual(settings.timeouts, Timeouts(tcp: 0, tcpFin: 0, udp: 60), "--ipvs-tcp-timeout 0s sets what the file had back to the kernel's")
            XCTAssertNil(settings.healthzAddress)
        }
        // Without --config: the agent's defaults, kube-proxy's.
        let defaults = try settings(file: nil)
        XCTAssertEqual([defaults.metricsAddress, defaults.healthzAddress], ["127.0.0.1:10249", "0.0.0.0:10256"])
        XCTAssertEqual(defaults.syncPeriod, .seconds(30))
        XCTAssertEqual(defaults.scheduler, .roundRobin)
    }

    /// kube-proxy decodes strictly: an unknown field is an error naming it, at any depth; so are a mode
    /// other than ipvs and wrong values. Every problem is reported at once, with its line.
    func testUnknownFieldsAndWrongValuesAreErrorsNamingThem() {
        let text = """
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            mode: iptables
            ipvs:
              scheduler: fastest
              syncPeriod: soon
              strictArp: true
            conntrak: {}
            clientConnection: {kubeconfig: "", qsp: 5}
            metricsBindAddress: here
            """
        XCTAssertThrowsError(try KubeProxyConfiguration.parse(text, file: "kp.yaml")) { error in
            let problems = (error as! AgentConfigurationError).problems
            let byField = Dictionary(problems.map { ($0.field ?? "", $0) }) { first, _ in first }
            XCTAssertEqual(Set(byField.keys), ["mode", "ipvs.scheduler", "ipvs.syncPeriod", "ipvs.strictArp", "conntrak",
                                              "clientConnection.qsp", "metricsBindAddress"], "\(error)")
            XCTAssertEqual(byField["mode"]?.line, 3)
            XCTAssertTrue(byField["mode"]!.message.contains("set mode: ipvs"), "\(error)")
            XCTAssertEqual(byField["ipvs.strictArp"]?.line, 7)
            XCTAssertTrue(byField["ipvs.strictArp"]!.message.contains("strictARP"), "the known fields are listed: \(error)")
            XCTAssertEqual(byField["conntrak"]?.description, "kp.yaml:8: conntrak: is not a field of KubeProxyConfiguration (kube-proxy decodes it strictly and refuses it too); check its spelling")
            XCTAssertTrue(byField["ipvs.syncPeriod"]!.message.contains("1m30s"), "says how to write a duration: \(error)")
        }
        // kube-proxy's default mode is iptables: a file without mode: ipvs is not for this agent.
        XCTAssertThrowsError(try KubeProxyConfiguration.parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n",
                                                              file: "kp.yaml")) { error in
            XCTAssertTrue("\(error)".contains("mode: is missing (kube-proxy's default: iptables)"), "\(error)")
        }
    }

    /// A field the agent does not implement is one warning naming it when it is set; fields kube-proxy's
    /// IPVS mode ignores itself (nftables, winkernel, iptables.syncPeriod) are no warning.
    func testUnimplementedFieldsWarnOnceEachAndFlagValuesAreChecked() throws {
        let file = try KubeProxyConfiguration.parse("""
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            mode: ipvs
            oomScoreAdj: -999
            featureGates: {SomeGate: true}
            enableProfiling: true
            detectLocalMode: InterfaceNamePrefix
            detectLocal: {interfaceNamePrefix: veth}
            iptables: {masqueradeAll: true, masqueradeBit: 14, syncPeriod: 10s}
            nftables: {masqueradeAll: true}
            winkernel: {enableDSR: true}
            nodePortAddresses: [10.0.0.0/8]
            conntrack: {maxPerCore: 0, tcpBeLiberal: true}
            """, file: "kp.yaml")
        XCTAssertEqual(file.warnings.map { $0.field ?? "" },
                       ["oomScoreAdj", "featureGates", "enableProfiling", "detectLocalMode", "detectLocal.interfaceNamePrefix",
                        "iptables.masqueradeBit", "conntrack"])
        XCTAssertEqual(file.flagValues.nodePortAddresses, ["10.0.0.0/8"])
        XCTAssertTrue(file.flagValues.masqueradeAll)
        XCTAssertThrowsError(try KubeProxyConfiguration.parse("""
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            mode: ipvs
            clusterCIDR: 10.244.0.0/16,10.244.0.300/8
            """, file: "kp.yaml")) { error in
            XCTAssertTrue("\(error)".contains("kp.yaml:4: clusterCIDR"), "\(error)")
        }
    }

    /// The agent's own kind still reads as before, and a wrong kind names both kinds.
    func testTheKindDecides() throws {
        let own = try ConfigurationFile.parse("apiVersion: ipvs.swift.dev/v1alpha1\nkind: AgentConfiguration\nhealthChecks: {default: {check: tcp}}\n",
                                              file: "a.yaml", base: MappingOptions.noHealthChecks)
        XCTAssertNil(own.kubeProxy)
        XCTAssertEqual(own.agentConfiguration(base: MappingOptions.noHealthChecks).healthDefault.kind, .tcp)
        XCTAssertThrowsError(try ConfigurationFile.parse("apiVersion: v1\nkind: ConfigMap\n", file: "a.yaml", base: .default)) { error in
            XCTAssertTrue("\(error)".contains("kind: KubeProxyConfiguration"), "\(error)")
        }
    }
}
