import Foundation

/// How to reach and authenticate to a Kubernetes API server: from a kubeconfig (`KubeConfig`) or
/// from the pod the agent runs in (`inCluster()`).
public struct APIServerConfiguration: Hashable, Sendable {
    /// How the agent proves who it is, besides a client certificate.
    public enum Credential: Hashable, Sendable {
        case none
        /// A bearer token given once (a kubeconfig's `token`).
        case token(String)
        /// A bearer token read from a file before each request, so that a rotated token (projected
        /// service-account tokens are replaced about hourly) is used as soon as it is written.
        case tokenFile(String)
    }

    /// The server's host name or address, as its URL names it (also the TLS server name).
    public var host: String
    public var port: Int
    /// Whether the server is reached over TLS (`https://`); plain HTTP only when the URL says so.
    public var useTLS: Bool
    /// The PEM certificates the server's certificate must chain to (`nil`: the system's roots).
    public var certificateAuthority: [UInt8]?
    /// A PEM client certificate (chain) and its PEM private key.
    public var clientCertificate: [UInt8]?
    public var clientKey: [UInt8]?
    public var credential: Credential
    /// `insecure-skip-tls-verify: true` in the kubeconfig: the server's certificate is not verified.
    public var insecureSkipTLSVerify: Bool
    /// Where this configuration came from, for logs and errors (`kubeconfig /etc/kubeconfig, context
    /// kind`, `in-cluster`).
    public var origin: String

    public init(host: String, port: Int, useTLS: Bool = true, certificateAuthority: [UInt8]? = nil,
                clientCertificate: [UInt8]? = nil, clientKey: [UInt8]? = nil, credential: Credential = .none,
                insecureSkipTLSVerify: Bool = false, origin: String) {
        self.host = host
        self.port = port
        self.useTLS = useTLS
        self.certificateAuthority = certificateAuthority
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.credential = credential
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.origin = origin
    }

    /// The folder a pod's service-account token, CA and namespace are mounted in.
    public static let serviceAccountFolder = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The configuration of a pod: `KUBERNETES_SERVICE_HOST` and `_PORT`, and the service account's
    /// `token` (re-read before each request) and `ca.crt` in `folder`, as client-go's
    /// `rest.InClusterConfig` reads them.
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 folder: String = serviceAccountFolder) throws(APIServerError) -> APIServerConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let portText = environment["KUBERNETES_SERVICE_PORT"], !portText.isEmpty else {
            throw APIServerError("in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
                                 + "(the agent does not run in a pod); give --kubeconfig PATH instead")
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw APIServerError("in-cluster configuration: KUBERNETES_SERVICE_PORT '\(portText)' is not a port number")
        }
        let tokenPath = folder + "/token", caPath = folder + "/ca.crt"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw APIServerError("in-cluster configuration: cannot read the service-account token \(tokenPath); "
                                 + "mount a service account token (automountServiceAccountToken) or give --kubeconfig PATH")
        }
        let authority = try readFile(caPath, what: "in-cluster configuration: the cluster CA")
        return APIServerConfiguration(host: host, port: port, certificateAuthority: authority, credential: .tokenFile(tokenPath),
                                      origin: "in-cluster (\(host):\(port), service account \(folder))")
    }

    /// The text of the bearer token to send now, if any.
    func bearerToken() throws(APIServerError) -> String? {
        switch credential {
        case .none: return nil
        case .token(let token): return token
        case .tokenFile(let path):
            let bytes = try Self.readFile(path, what: "the bearer token file")
            let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw APIServerError("the bearer token file \(path) is empty") }
            return token
        }
    }

    /// The bytes of the file at `path`, or an error naming it as `what`.
    static func readFile(_ path: String, what: String) throws(APIServerError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw APIServerError("\(what): cannot read \(path)")
        }
        return Array(data)
    }
}

/// A problem reaching, authenticating to or reading from the API server, in words a user can act on.
public struct APIServerError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    /// The HTTP status the server answered, when it answered.
    public var status: Int?

    public init(_ message: String, status: Int? = nil) {
        self.message = message
        self.status = status
    }

    public var description: String { message }
}
