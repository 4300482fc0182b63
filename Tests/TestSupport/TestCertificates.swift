import Foundation

/// A test CA with a server certificate (for `localhost` and 127.0.0.1) and a client certificate,
/// made with `openssl` in a new temporary folder: the TLS of `TestAPIServer` and its clients.
public struct TestCertificates: Sendable {
    public let folder: String
    public let authority: [UInt8]
    public let serverCertificate: [UInt8]
    public let serverKey: [UInt8]
    public let clientCertificate: [UInt8]
    public let clientKey: [UInt8]
    /// A second CA, that signed nothing the server sends: a client trusting it must refuse the server.
    public let otherAuthority: [UInt8]

    /// Makes the certificates (a few hundred milliseconds of `openssl`).
    public static func make() throws -> TestCertificates {
        let folder = NSTemporaryDirectory() + "test-certificates-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func run(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: folder)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "openssl \(arguments.joined(separator: " ")) failed"])
            }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ["ca", "other-ca"] {
            try run(["req", "-x509"] + ec + ["-keyout", "\(name).key", "-out", "\(name).crt", "-days", "2", "-subj", "/CN=\(name)"])
        }
        try run(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: folder + "/server.ext", atomically: true, encoding: .utf8)
        try run(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
                 "-days", "2", "-extfile", "server.ext"])
        try run(["req"] + ec + ["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=system:serviceaccount:kube-system:ipvs-agent"])
        try run(["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.crt", "-days", "2"])
        func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))) }
        return TestCertificates(folder: folder, authority: try read("ca.crt"), serverCertificate: try read("server.crt"),
                                serverKey: try read("server.key"), clientCertificate: try read("client.crt"),
                                clientKey: try read("client.key"), otherAuthority: try read("other-ca.crt"))
    }
}
