import Foundation
import XCTest

/// kube-proxy's interface on the real kernel: kubeadm's `kube-proxy` ConfigMap as `--config`, kube-proxy's
/// IPVS timeouts and scheduler from the file and its flags (flags win), and `/healthz`, `/livez` on
/// `--healthz-bind-address` staying healthy while the kernel refuses one Service, kube-proxy's metrics.
final class AgentKubeProxyInterfaceTests: XCTestCase {
    /// The `config.conf` key of `Examples/kube-proxy-configmap.yaml`: the lines indented under it.
    private static func kubeadmConfigConf() throws -> String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/kube-proxy-configmap.yaml").path
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let start = try XCTUnwrap(lines.firstIndex { $0 == "  config.conf: |-" }) + 1
        return lines[start...].prefix { $0.hasPrefix("    ") }.map { String($0.dropFirst(4)) }.joined(separator: "\n") + "\n"
    }

    func testKubeadmsConfigMapAndKubeProxysIPVSSettingsReachTheKernel() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false))
        let before = try KernelTest.shell("ipvsadm -L --timeout")

        // kubeadm's file as it is: the Service is programmed with kube-proxy's defaults, the kernel's timeouts are left alone.
        let kubeadm = cluster.folder.appendingPathComponent("config.conf")
        try Self.kubeadmConfigConf().write(to: kubeadm, atomically: true, encoding: .utf8)
        let first = try cluster.agent(["--manifests", cluster.manifests, "--config", kubeadm.path, "--once"])
        XCTAssertEqual(first.status, 0, first.standardError)
        var table = try cluster.table()
        XCTAssertTrue(table.contains("TCP  10.96.0.10:80 rr"), table)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -L --timeout"), before, "0s leaves the kernel's timeouts")
        for field in ["conntrack", "oomScoreAdj"] {
            XCTAssertEqual(first.standardError.components(separatedBy: "config.conf:").filter { $0.contains(" \(field): ") }.count, 1,
                           "one warning naming \(field):\n\(first.standardError)")
        }
        // clusterCIDR sets --cluster-cidr; the file's kubeconfig is not the source, --manifests is: neither is a warning.
        for field in ["clusterCIDR", "clientConnection.kubeconfig"] {
            XCTAssertFalse(first.standardError.contains(" \(field): "), "no warning naming \(field):\n\(first.standardError)")
        }

        // An operator's edits: scheduler and timeouts from the file, the FIN timeout from kube-proxy's flag.
        let tuned = cluster.folder.appendingPathComponent("tuned.conf")
        try """
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            mode: ipvs
            ipvs: {scheduler: wlc, tcpTimeout: 15m0s, tcpFinTimeout: 1m0s, udpTimeout: 1m0s}
            """.write(to: tuned, atomically: true, encoding: .utf8)
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(clusterIP: "10.96.0.11", pods: pods, dns: false))
        let second = try cluster.agent(["--manifests", cluster.manifests, "--config", tuned.path, "--ipvs-tcpfin-timeout", "2m30s", "--once"])
        XCTAssertEqual(second.status, 0, second.standardError)
        table = try cluster.table()
        XCTAssertTrue(table.contains("TCP  10.96.0.11:80 wlc"), table)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -L --timeout").trimmingCharacters(in: .whitespacesAndNewlines),
                       "Timeout (tcp tcpfin udp): 900 150 60")

        // kube-proxy decodes strictly: an unknown field stops the agent before it changes anything.
        try "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs: {tcpTimeOut: 1s}\n"
            .write(to: tuned, atomically: true, encoding: .utf8)
        let refused = try cluster.agent(["--manifests", cluster.manifests, "--config", tuned.path, "--once"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.standardError.contains("tuned.conf:4: ipvs.tcpTimeOut: is not a field of ipvs"), refused.standardError)
        XCTAssertEqual(try KernelTest.shell("ipvsadm -L --timeout").trimmingCharacters(in: .whitespacesAndNewlines),
                       "Timeout (tcp tcpfin udp): 900 150 60")
    }

    /// A Service the kernel refuses (the `twos` scheduler, which Debian's 6.1 kernel lacks) is retried every
    /// second and logged, while `/healthz` and `/livez` on kube-proxy's port answer 200: a liveness probe
    /// would not restart the agent. The metrics server has kube-proxy's names, `process_*` and HELP lines.
    func testLivenessStaysHealthyWhileTheKernelRefusesOneService() throws {
        try KernelTest.requireKernel()
        let cluster = try AgentTestCluster()
        let pods = try (1...2).map { try cluster.addPod($0) }
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: pods, dns: false))
        try cluster.writeManifest("broken.yaml", AgentTestCluster.webManifest(clusterIP: "10.96.0.20", pods: pods, dns: false,
                                                                               annotations: ["scheduler": "twos"])
            .replacingOccurrences(of: "name: web", with: "name: broken")
            .replacingOccurrences(of: "kubernetes.io/service-name: web", with: "kubernetes.io/service-name: broken"))
        let log = cluster.folder.appendingPathComponent("agent.log")
        let agent = try cluster.startDaemon(["--manifests", cluster.manifests, "--sync-period", "2s",
                                             "--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1"], log: log)
        defer { if agent.isRunning { agent.terminate() } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        try waitUntil("web is programmed", timeout: 60) { try cluster.table().contains("TCP  10.96.0.10:80 rr") }
        try waitUntil("the refused Service is retried", timeout: 60) {
            logText().components(separatedBy: "kernel operation failed").count > 4
        }
        let table = try cluster.table()
        XCTAssertFalse(table.contains("10.96.0.20"), table)
        // curl -f fails on a 503.
        for path in ["/healthz", "/livez"] {
            let answer = try KernelTest.shell("curl -sf http://127.0.0.1:10256\(path)")
            XCTAssertTrue(answer.hasPrefix("{\"lastUpdated\": "), answer)
        }
        XCTAssertTrue(try KernelTest.shell("curl -sf http://127.0.0.1:10249/healthz").contains("currentTime"))
        XCTAssertTrue(agent.isRunning)

        let metrics = try KernelTest.shell("curl -sf http://127.0.0.1:10249/metrics")
        for name in ["kubeproxy_sync_proxy_rules_duration_seconds_bucket", "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                     "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds", "process_cpu_seconds_total",
                     "ipvs_agent_errors_total"] {
            XCTAssertTrue(metrics.contains(name), "no \(name) in /metrics:\n\(metrics)")
        }
        XCTAssertEqual(try cluster.metric("kubeproxy_sync_proxy_rules_service_changes_total"), 2, "web and broken, loaded at start")
        XCTAssertEqual(try cluster.metric("kubeproxy_sync_proxy_rules_endpoint_changes_total"), 2, "their EndpointSlices")
        let lines = metrics.split(separator: "\n")
        for type in lines where type.hasPrefix("# TYPE ") {
            let name = type.split(separator: " ")[2]
            XCTAssertTrue(lines.contains { $0.hasPrefix("# HELP \(name) ") }, "no HELP for \(name)")
        }
        // A change is queued and applied: the last queued time appears, and the time from the slice's
        // last-change-trigger-time (a second ago, by this guest's clock) to its programming is observed.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let trigger = formatter.string(from: Date().addingTimeInterval(-1))
        try cluster.writeManifest("web.yaml", AgentTestCluster.webManifest(pods: [pods[0]], dns: false)
            .replacingOccurrences(of: "  name: web-abc12\n", with: "  name: web-abc12\n  annotations: {endpoints.kubernetes.io/last-change-trigger-time: \"\(trigger)\"}\n"))
        try waitUntil("the change is queued", timeout: 30) {
            try cluster.metric("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds") > 0
        }
        try waitUntil("the change's programming latency is observed", timeout: 30) {
            try cluster.metric("kubeproxy_network_programming_duration_seconds_count") == 1
        }
        XCTAssertEqual(try cluster.metric("kubeproxy_sync_proxy_rules_endpoint_changes_total"), 3)
        XCTAssertTrue(try KernelTest.shell("curl -sf http://127.0.0.1:10256/healthz").contains("currentTime"))
    }
}
