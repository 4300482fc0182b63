import Foundation

/// Reads a kubeconfig file (`kind: Config`) the way kubectl does for its current context: the
/// cluster's `server`, `certificate-authority-data` (or `certificate-authority`) and
/// `insecure-skip-tls-verify`, and the user's `token` (or `tokenFile`) and
/// `client-certificate-data`/`client-key-data` (or their file forms). Users that authenticate
/// through a program (`exec`) or a plugin (`auth-provider`), and basic authentication, are refused
/// with an error naming them: the agent runs no program named by a file.
public enum KubeConfig {
    /// The configuration of `path`'s current context (or of `context` when given).
    public static func load(path: String, context wanted: String? = nil) throws(APIServerError) -> APIServerConfiguration {
        let bytes = try APIServerConfiguration.readFile(path, what: "--kubeconfig")
        return try parse(String(decoding: bytes, as: UTF8.self), path: path, context: wanted)
    }

    /// The configuration in the kubeconfig `text`; `path` names the file in errors and is the
    /// folder relative file names (`certificate-authority: ca.crt`) are taken from.
    public static func parse(_ text: String, path: String, context wanted: String? = nil) throws(APIServerError) -> APIServerConfiguration {
        let tree: YAMLTree
        do {
            tree = try YAMLTree.parse(text)
        } catch {
            throw APIServerError("\(path):\(error.line.map(String.init) ?? "?"): not valid YAML: \(error.summary)")
        }
        guard let root = tree.roots.first, root.kind == .mapping else {
            throw APIServerError("\(path): not a kubeconfig (expected a mapping with clusters, users and contexts)")
        }
        let folder = (path as NSString).deletingLastPathComponent

        guard let contextName = wanted ?? NodeReader.text(of: "current-context", in: root), !contextName.isEmpty else {
            throw APIServerError("\(path): current-context is not set; set it (kubectl config use-context NAME)")
        }
        let context = try entry(named: contextName, in: "contexts", field: "context", root: root, path: path)
        guard let clusterName = NodeReader.text(of: "cluster", in: context) else {
            throw APIServerError("\(path): contexts[\(contextName)].context.cluster is missing")
        }
        guard let userName = NodeReader.text(of: "user", in: context) else {
            throw APIServerError("\(path): contexts[\(contextName)].context.user is missing")
        }
        let cluster = try entry(named: clusterName, in: "clusters", field: "cluster", root: root, path: path)
        let user = try entry(named: userName, in: "users", field: "user", root: root, path: path)
        let origin = "kubeconfig \(path), context \(contextName)"

        // MARK: Cluster
        guard let server = NodeReader.text(of: "server", in: cluster), let url = URLComponents(string: server),
              let scheme = url.scheme, ["https", "http"].contains(scheme),
              let host = url.host?.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), !host.isEmpty else {
            throw APIServerError("\(path): clusters[\(clusterName)].cluster.server must be an https:// URL, got "
                                 + "'\(NodeReader.text(of: "server", in: cluster) ?? "")'")
        }
        var configuration = APIServerConfiguration(host: host, port: url.port ?? (scheme == "https" ? 443 : 80),
                                                   useTLS: scheme == "https", origin: origin)
        configuration.insecureSkipTLSVerify = NodeReader.text(of: "insecure-skip-tls-verify", in: cluster)
            .flatMap(NodeReader.lowercasedBoolean) ?? false
        configuration.certificateAuthority = try pem(cluster, data: "certificate-authority-data", file: "certificate-authority",
                                                     where: "clusters[\(clusterName)].cluster", path: path, folder: folder)

        // MARK: User
        for unsupported in ["exec", "auth-provider"] where NodeReader.value(of: unsupported, in: user) != nil {
            throw APIServerError("\(path): users[\(userName)].user.\(unsupported) is not supported: the agent runs no program "
                                 + "and no plugin to get a credential; use a token, tokenFile or client certificate "
                                 + "(a service account's, see Examples/daemonset.yaml)")
        }
        for unsupported in ["username", "password"] where NodeReader.value(of: unsupported, in: user) != nil {
            throw APIServerError("\(path): users[\(userName)].user.\(unsupported) (basic authentication) is not supported; "
                                 + "use a token, tokenFile or client certificate")
        }
        let userPath = "users[\(userName)].user"
        configuration.clientCertificate = try pem(user, data: "client-certificate-data", file: "client-certificate",
                                                  where: userPath, path: path, folder: folder)
        configuration.clientKey = try pem(user, data: "client-key-data", file: "client-key", where: userPath, path: path, folder: folder)
        if (configuration.clientCertificate == nil) != (configuration.clientKey == nil) {
            throw APIServerError("\(path): \(userPath) has a client certificate without its key (or a key without its "
                                 + "certificate); give both")
        }
        if let token = NodeReader.text(of: "token", in: user), !token.isEmpty {
            configuration.credential = .token(token)
        } else if let file = NodeReader.text(of: "tokenFile", in: user), !file.isEmpty {
            configuration.credential = .tokenFile(resolve(file, folder: folder))
        }
        return configuration
    }

    /// The mapping `field` of the entry named `name` in the list `list` (`contexts`, `clusters`, `users`).
    private static func entry(named name: String, in list: String, field: String, root: YAMLNode,
                              path: String) throws(APIServerError) -> YAMLNode {
        if let entries = NodeReader.value(of: list, in: root), entries.kind == .sequence {
            for position in 0..<entries.count {
                let entry = entries.element(position)
                if NodeReader.text(of: "name", in: entry) == name, let value = NodeReader.value(of: field, in: entry),
                   value.kind == .mapping {
                    return value
                }
            }
        }
        throw APIServerError("\(path): \(list) has no entry named '\(name)' with a \(field)")
    }

    /// The PEM bytes of field `data` (base64) or of the file field `file` names, `nil` without either.
    private static func pem(_ node: YAMLNode, data: String, file: String, where place: String, path: String,
                            folder: String) throws(APIServerError) -> [UInt8]? {
        if let text = NodeReader.text(of: data, in: node), !text.isEmpty {
            guard let decoded = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
                throw APIServerError("\(path): \(place).\(data) is not base64")
            }
            return Array(decoded)
        }
        if let name = NodeReader.text(of: file, in: node), !name.isEmpty {
            return try APIServerConfiguration.readFile(resolve(name, folder: folder), what: "\(path): \(place).\(file)")
        }
        return nil
    }

    /// `name` taken relative to the kubeconfig's folder, as kubectl does.
    private static func resolve(_ name: String, folder: String) -> String {
        name.hasPrefix("/") || folder.isEmpty ? name : folder + "/" + name
    }
}
