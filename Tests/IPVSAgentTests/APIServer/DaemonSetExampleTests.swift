import Foundation
import TestSupport
import XCTest
import Yams
@testable import IPVSAgent

/// `Examples/daemonset.yaml`: the RBAC grants only get/list/watch on services, endpointslices and
/// nodes; the DaemonSet runs on the host network with NET_ADMIN alone, /lib/modules read-only, the
/// state file under /run, probes on /healthz and system-node-critical priority; its kubeconfig
/// is one the agent reads (service-account token file and CA).
final class DaemonSetExampleTests: XCTestCase {
    static let example = repositoryPath("Examples/daemonset.yaml")

    func documents() throws -> [String: [String: Any]] {
        let text = try String(contentsOfFile: Self.example, encoding: .utf8)
        var byKind: [String: [String: Any]] = [:]
        for document in try Yams.load_all(yaml: text) {
            let object = try XCTUnwrap(document as? [String: Any])
            byKind[try XCTUnwrap(object["kind"] as? String)] = object
        }
        return byKind
    }

    func testRBACGrantsReadingServicesEndpointSlicesAndNodesOnly() throws {
        let objects = try documents()
        let role = try XCTUnwrap(objects["ClusterRole"])
        let rules = try XCTUnwrap(role["rules"] as? [[String: Any]])
        var granted: Set<String> = []
        for rule in rules {
            XCTAssertEqual(Set(rule["verbs"] as? [String] ?? []), ["get", "list", "watch"])
            for group in rule["apiGroups"] as? [String] ?? [] {
                for resource in rule["resources"] as? [String] ?? [] { granted.insert("\(group)/\(resource)") }
            }
        }
        XCTAssertEqual(granted, ["/services", "/nodes", "discovery.k8s.io/endpointslices"])
        let binding = try XCTUnwrap(objects["ClusterRoleBinding"])
        XCTAssertEqual((binding["roleRef"] as? [String: Any])?["name"] as? String, "ipvs-agent")
        let subject = try XCTUnwrap((binding["subjects"] as? [[String: Any]])?.first)
        XCTAssertEqual(subject["name"] as? String, "ipvs-agent")
        XCTAssertEqual(subject["namespace"] as? String, "kube-system")
        XCTAssertNotNil(objects["ServiceAccount"])
    }

    func testDaemonSetRunsWithWhatTheAgentNeedsAndNoMore() throws {
        let objects = try documents()
        let daemonSet = try XCTUnwrap(objects["DaemonSet"])
        let pod = try XCTUnwrap(((daemonSet["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        XCTAssertEqual(pod["hostNetwork"] as? Bool, true)
        XCTAssertEqual(pod["serviceAccountName"] as? String, "ipvs-agent")
        XCTAssertEqual(pod["priorityClassName"] as? String, "system-node-critical")
        let container = try XCTUnwrap((pod["containers"] as? [[String: Any]])?.first)
        let security = try XCTUnwrap(container["securityContext"] as? [String: Any])
        XCTAssertEqual(security["privileged"] as? Bool, false)
        let capabilities = try XCTUnwrap(security["capabilities"] as? [String: Any])
        XCTAssertEqual(capabilities["add"] as? [String], ["NET_ADMIN"])
        XCTAssertEqual(capabilities["drop"] as? [String], ["ALL"])

        // The arguments are a command line the agent accepts.
        let arguments = try XCTUnwrap(container["args"] as? [String]).map { $0.replacingOccurrences(of: "$(NODE_NAME)", with: "node-1") }
        let command = try AgentCommand.parse(arguments)
        XCTAssertEqual(command.kubeconfig, "/var/lib/ipvs-agent/kubeconfig.conf")

        // Mounts: /lib/modules read-only, the state file's folder a hostPath under /run, the kubeconfig.
        let mounts = try XCTUnwrap(container["volumeMounts"] as? [[String: Any]])
        func mount(_ path: String) -> [String: Any]? { mounts.first { $0["mountPath"] as? String == path } }
        XCTAssertEqual(mount("/lib/modules")?["readOnly"] as? Bool, true)
        let stateFolder = (command.stateFile as NSString).deletingLastPathComponent
        let stateMount = try XCTUnwrap(mount(stateFolder), "the state file's folder \(stateFolder) is mounted")
        let volumes = try XCTUnwrap(pod["volumes"] as? [[String: Any]])
        let stateVolume = try XCTUnwrap(volumes.first { $0["name"] as? String == stateMount["name"] as? String })
        let hostPath = try XCTUnwrap((stateVolume["hostPath"] as? [String: Any])?["path"] as? String)
        XCTAssertTrue(hostPath.hasPrefix("/run/"), hostPath)
        XCTAssertNotNil(mount("/var/lib/ipvs-agent"))

        // Probes on kube-proxy's health server at the address the arguments give: /livez and /healthz.
        let healthz = try XCTUnwrap(ProxySettings(command: command).healthzAddress)
        for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/healthz")] {
            let get = try XCTUnwrap((container[probe] as? [String: Any])?["httpGet"] as? [String: Any], probe)
            XCTAssertEqual(get["path"] as? String, path)
            XCTAssertEqual(get["port"] as? Int, Int(healthz.split(separator: ":").last ?? ""))
        }
    }

    func testItsKubeconfigIsOneTheAgentReads() throws {
        let objects = try documents()
        let data = try XCTUnwrap((objects["ConfigMap"]?["data"] as? [String: String])?["kubeconfig.conf"])
        // The service account's CA is not on this machine: a file stands in for it.
        let authority = NSTemporaryDirectory() + "ca-\(UUID().uuidString).crt"
        try "CA".write(toFile: authority, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: authority) }
        let text = data.replacingOccurrences(of: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", with: authority)
        let configuration = try KubeConfig.parse(text, path: "kubeconfig.conf")
        XCTAssertEqual(configuration.credential, .tokenFile("/var/run/secrets/kubernetes.io/serviceaccount/token"))
        XCTAssertEqual(configuration.certificateAuthority, Array("CA".utf8))
        XCTAssertEqual(configuration.port, 6443)
        XCTAssertFalse(configuration.insecureSkipTLSVerify)
    }
}
