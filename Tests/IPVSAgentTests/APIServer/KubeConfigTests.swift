import Foundation
import XCTest
@testable import IPVSAgent

final class KubeConfigTests: XCTestCase {
    /// A kubeconfig whose current context uses a cluster at `server` and a user with `user`'s fields.
    static func kubeconfig(server: String, authority: [UInt8]? = nil, clusterExtra: String = "",
                           user: [String: String], userExtra: String = "") -> String {
        let authorityLine = authority.map { "\n    certificate-authority-data: \(Data($0).base64EncodedString())" } ?? ""
        let userLines = user.sorted { $0.key < $1.key }.map { "    \($0.key): \($0.value)" }.joined(separator: "\n")
        return """
            apiVersion: v1
            kind: Config
            preferences: {}
            current-context: prod
            clusters:
            - name: staging
              cluster:
                server: https://staging.example:6443
            - name: prod
              cluster:
                server: \(server)\(authorityLine)\(clusterExtra)
            contexts:
            - name: staging
              context: {cluster: staging, user: admin}
            - name: prod
              context:
                cluster: prod
                user: agent
                namespace: kube-system
            users:
            - name: admin
              user: {token: wrong}
            - name: agent
              user:
            \(userLines)\(userExtra)

            """
    }

    func testCurrentContextsClusterAndUser() throws {
        let text = Self.kubeconfig(server: "https://10.0.0.1:6443", authority: Array("CA".utf8), user: ["token": "abc.def"])
        let configuration = try KubeConfig.parse(text, path: "/etc/kubeconfig")
        XCTAssertEqual(configuration.host, "10.0.0.1")
        XCTAssertEqual(configuration.port, 6443)
        XCTAssertEqual(configuration.certificateAuthority, Array("CA".utf8))
        XCTAssertEqual(configuration.credential, .token("abc.def"))
        XCTAssertFalse(configuration.insecureSkipTLSVerify)
        XCTAssertEqual(configuration.origin, "kubeconfig /etc/kubeconfig, context prod")

        let staging = try KubeConfig.parse(text, path: "/etc/kubeconfig", context: "staging")
        XCTAssertEqual(staging.host, "staging.example")
        XCTAssertEqual(staging.credential, .token("wrong"))
    }

    func testTokenFileIsRelativeToTheKubeconfigAndInsecureOnlyWhenSaid() throws {
        let text = Self.kubeconfig(server: "https://api.example", clusterExtra: "\n    insecure-skip-tls-verify: true",
                                   user: ["tokenFile": "secrets/token"])
        let configuration = try KubeConfig.parse(text, path: "/etc/ipvs/kubeconfig")
        XCTAssertEqual(configuration.port, 443)
        XCTAssertEqual(configuration.credential, .tokenFile("/etc/ipvs/secrets/token"))
        XCTAssertTrue(configuration.insecureSkipTLSVerify)
    }

    func testProgramsPluginsAndPasswordsAreRefusedByName() {
        let cases: [(String, String)] = [
            ("\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws", "users[agent].user.exec is not supported"),
            ("\n    auth-provider:\n      name: gcp", "users[agent].user.auth-provider is not supported"),
            ("\n    username: admin\n    password: secret", "basic authentication"),
        ]
        for (extra, expected) in cases {
            let text = Self.kubeconfig(server: "https://10.0.0.1", user: [:], userExtra: extra)
            XCTAssertThrowsError(try KubeConfig.parse(text, path: "kc")) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
                XCTAssertTrue("\(error)".hasPrefix("kc: "), "names the file: \(error)")
            }
        }
    }

    func testMistakesAreNamed() {
        let cases: [(String, String)] = [
            (Self.kubeconfig(server: "ftp://x", user: ["token": "t"]), "clusters[prod].cluster.server must be an https:// URL"),
            (Self.kubeconfig(server: "https://x", user: ["client-certificate-data": "Q0E="]), "without its key"),
            (Self.kubeconfig(server: "https://x", user: ["client-key-data": "abc"]), "client-key-data is not base64"),
            ("apiVersion: v1\nkind: Config\nclusters: []\n", "current-context is not set"),
            ("current-context: nowhere\ncontexts: []\n", "contexts has no entry named 'nowhere'"),
            ("current-context: [\n", "not valid YAML"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try KubeConfig.parse(text, path: "kc")) { error in
                XCTAssertTrue("\(error)".contains(expected), "expected \(expected): \(error)")
            }
        }
    }

    func testInClusterConfiguration() throws {
        let folder = NSTemporaryDirectory() + "sa-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertThrowsError(try APIServerConfiguration.inCluster(environment: [:], folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("KUBERNETES_SERVICE_HOST"), "\(error)")
        }
        let environment = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
        XCTAssertThrowsError(try APIServerConfiguration.inCluster(environment: environment, folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("service-account token"), "\(error)")
        }
        try "first\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        try "CA".write(toFile: folder + "/ca.crt", atomically: true, encoding: .utf8)
        let configuration = try APIServerConfiguration.inCluster(environment: environment, folder: folder)
        XCTAssertEqual(configuration.host, "10.96.0.1")
        XCTAssertEqual(configuration.port, 443)
        XCTAssertEqual(configuration.certificateAuthority, Array("CA".utf8))
        XCTAssertEqual(try configuration.bearerToken(), "first")
        // The kubelet rotates the projected token: the next request reads the new one.
        try "second\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        XCTAssertEqual(try configuration.bearerToken(), "second")
    }
}
