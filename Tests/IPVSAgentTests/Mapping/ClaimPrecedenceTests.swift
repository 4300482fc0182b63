import Foundation
import IPVS
import Logging
import XCTest
@testable import IPVSAgent

/// Two Service objects claiming one name, or one address and port, in different files: the one
/// that came first keeps it whatever the files' names, the other is reported at its own file and
/// line and changes nothing, and takes over once the first is gone (`ClaimPrecedence`).
final class ClaimPrecedenceTests: XCTestCase {
    var folder: URL!
    var source: ManifestSource!
    var builder = DesiredStateBuilder(options: MappingOptions())
    private var folders: [URL] = []

    override func setUpWithError() throws {
        try start()
    }

    /// Starts over: an empty manifest folder, a new source and a new builder.
    func start() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ipvs-agent-claims-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        folders.append(folder)
        source = ManifestSource(paths: [folder.path], logger: Logger(label: "test"))
        builder = DesiredStateBuilder(options: MappingOptions())
    }

    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(at: folder) }
    }

    // MARK: - Helpers

    /// Service `name` on `clusterIP` port 80, then its EndpointSlice `<name>-<slice>` with pods
    /// 10.244.0.<pod> (the Service object starts at line 2 of the file).
    func manifest(_ name: String, clusterIP: String, slice: String, pods: [Int], created: String? = nil) -> String {
        """
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: \(name), namespace: shop\(created.map { ", creationTimestamp: \"\($0)\"" } ?? "")}
        spec: {clusterIP: \(clusterIP), ports: [{name: http, port: 80, targetPort: 8080}]}
        \(endpoints(name, slice: slice, pods: pods))
        """
    }

    func endpoints(_ service: String, slice: String, pods: [Int]) -> String {
        """
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: \(service)-\(slice), namespace: shop, labels: {kubernetes.io/service-name: \(service)}}
        addressType: IPv4
        endpoints: [\(pods.map { "{addresses: [10.244.0.\($0)]}" }.joined(separator: ", "))]
        ports: [{name: http, port: 8080}]

        """
    }

    func write(_ file: String, _ text: String) throws {
        try text.write(to: folder.appendingPathComponent(file), atomically: true, encoding: .utf8)
    }

    func remove(_ file: String) throws {
        try FileManager.default.removeItem(at: folder.appendingPathComponent(file))
    }

    func path(_ file: String) -> String { folder.appendingPathComponent(file).path }

    /// Loads the folder again and builds, as a reload of the daemon does.
    func reload() -> (state: DesiredState, issues: [ManifestIssue]) {
        let snapshot = source.loadNow()
        let build = builder.build(snapshot)
        return (build.state, snapshot.issues + build.issues)
    }

    /// The last octets of the pods behind `key`.
    func pods(_ state: DesiredState, _ key: ServiceKey) -> [Int] {
        (state.services[key]?.realServers.keys.map { Int($0.address.bytes[3]) } ?? []).sorted()
    }

    // MARK: - One name in two files

    func testASecondServiceOfTheSameNameChangesNothingInEitherFileOrder() throws {
        for copy in ["a-copy.yaml", "z-copy.yaml"] {
            try start()
            try write("m-web.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "abc", pods: [1, 2]))
            var (state, issues) = reload()
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1, 2])
            XCTAssertEqual(issues, [])

            // Same name, another address and other endpoints: neither its address nor its
            // endpoints are taken in, whether its file sorts before or after the first.
            try write(copy, "# a copy\n" + manifest("web", clusterIP: "10.96.0.99", slice: "copy", pods: [9]))
            (state, issues) = reload()
            XCTAssertEqual(Set(state.services.keys), [tcp("10.96.0.10", 80)], copy)
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1, 2], copy)
            XCTAssertEqual(state.addresses, [ip("10.96.0.10")], copy)
            XCTAssertEqual(issues.map(\.description), [
                "\(path(copy)):3: document 1 (Service shop/web): metadata.name: Service shop/web is also defined at \(path("m-web.yaml")):2, "
                    + "which came first; this object and the endpoints in its file are ignored until that one is removed",
            ], copy)

            // Same name and address: still nothing of it, and reported at every reload.
            try write(copy, manifest("web", clusterIP: "10.96.0.10", slice: "copy", pods: [9]))
            (state, issues) = reload()
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1, 2], copy)
            XCTAssertEqual(issues.map(\.file), [path(copy)], copy)
            (state, issues) = reload()
            XCTAssertEqual(issues.map(\.file), [path(copy)], copy)

            try remove("m-web.yaml")
            (state, issues) = reload()
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [9], "the copy takes over once the first is gone (\(copy))")
            XCTAssertEqual(issues, [], copy)

            // The first comes back: the copy, holding the name now, keeps it.
            try write("m-web.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "abc", pods: [1, 2]))
            (state, issues) = reload()
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [9], copy)
            XCTAssertEqual(issues.map(\.file), [path("m-web.yaml")], copy)
        }
    }

    /// Endpoints in a file without a Service object of the name belong to the Service that keeps
    /// the name; those in the losing object's file do not.
    func testEndpointsOfAnotherFileGoToTheServiceThatKeepsTheName() throws {
        try write("b-web.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "abc", pods: [1]))
        try write("c-more.yaml", endpoints("web", slice: "more", pods: [5]))
        _ = reload()
        try write("a-copy.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "copy", pods: [9]))
        let (state, issues) = reload()
        XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1, 5])
        XCTAssertEqual(issues.map(\.file), [path("a-copy.yaml")])
    }

    /// Without an incumbent (a first start without a state file), the older creationTimestamp
    /// keeps the name, then the file read first; a restart decides the same.
    func testWithoutAnIncumbentTheOlderObjectThenTheFirstFileWins() throws {
        try write("a.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "a", pods: [1], created: "2026-03-01T00:00:00Z"))
        try write("b.yaml", manifest("web", clusterIP: "10.96.0.11", slice: "b", pods: [2], created: "2025-03-01T00:00:00Z"))
        var (state, issues) = reload()
        XCTAssertEqual(pods(state, tcp("10.96.0.11", 80)), [2])
        XCTAssertEqual(Set(state.services.keys), [tcp("10.96.0.11", 80)])
        XCTAssertEqual(issues.map(\.file), [path("a.yaml")])

        // Without timestamps, the file read first.
        try write("a.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "a", pods: [1]))
        try write("b.yaml", manifest("web", clusterIP: "10.96.0.11", slice: "b", pods: [2]))
        builder = DesiredStateBuilder(options: MappingOptions())
        (state, issues) = reload()
        XCTAssertEqual(Set(state.services.keys), [tcp("10.96.0.10", 80)])
        XCTAssertEqual(issues.map(\.file), [path("b.yaml")])
    }

    /// After a restart, the object whose address and port the state file records as its name's
    /// keeps the name, though the other's file is read first.
    func testAfterARestartTheObjectTheKernelWasProgrammedFromKeepsTheName() throws {
        try write("a-copy.yaml", manifest("web", clusterIP: "10.96.0.99", slice: "copy", pods: [9]))
        try write("m-web.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "abc", pods: [1, 2]))
        builder.seed(owners: [tcp("10.96.0.10", 80): ObjectName(namespace: "shop", name: "web")])
        let (state, issues) = reload()
        XCTAssertEqual(Set(state.services.keys), [tcp("10.96.0.10", 80)])
        XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1, 2])
        XCTAssertEqual(issues.map(\.file), [path("a-copy.yaml")])
    }

    /// Within one file the first object of a kind and name is used, and the others are reported.
    func testASecondObjectOfANameInOneFileIsReported() throws {
        try write("web.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "abc", pods: [1])
                  + manifest("web", clusterIP: "10.96.0.99", slice: "abc", pods: [9]))
        let (state, issues) = reload()
        XCTAssertEqual(Set(state.services.keys), [tcp("10.96.0.10", 80)])
        XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1])
        XCTAssertEqual(issues.map(\.description), [
            "\(path("web.yaml")):14: document 3 (Service shop/web): metadata.name: Service shop/web is also defined at line 2 of this file, "
                + "which came first; this object is ignored",
            "\(path("web.yaml")):19: document 4 (EndpointSlice shop/web-abc): metadata.name: EndpointSlice shop/web-abc is also defined at "
                + "line 7 of this file, which came first; this object is ignored",
        ])
    }

    // MARK: - One address and port, two Services

    func testANewServiceOnAnotherServicesAddressAndPortChangesNothingInEitherFileOrder() throws {
        for file in ["a-shop.yaml", "z-shop.yaml"] {
            try start()
            try write("m-web.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "abc", pods: [1, 2]))
            _ = reload()
            // "grab" sorts before "web" by name too: neither name nor file order decides.
            try write(file, "\n" + manifest("grab", clusterIP: "10.96.0.10", slice: "x", pods: [9]))
            var (state, issues) = reload()
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1, 2], file)
            XCTAssertEqual(state.services[tcp("10.96.0.10", 80)]?.origin.name, "web", file)
            XCTAssertEqual(issues.map(\.description), [
                "\(path(file)):3: document 1 (Service shop/grab): spec.ports[0]: TCP 10.96.0.10:80 is already used by Service shop/web "
                    + "(\(path("m-web.yaml")):2), which came first; this port is left out until that one no longer uses it",
            ], file)

            // A restart: the state file says web owned it.
            var restarted = DesiredStateBuilder(options: MappingOptions())
            restarted.seed(owners: [tcp("10.96.0.10", 80): ObjectName(namespace: "shop", name: "web")])
            let cold = restarted.build(source.loadNow())
            XCTAssertEqual(cold.state, state, file)
            XCTAssertEqual(cold.issues.map(\.file), [path(file)], file)

            // web goes: grab takes the address and port over, with its own endpoints.
            try remove("m-web.yaml")
            (state, issues) = reload()
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [9], file)
            XCTAssertEqual(issues, [], file)
            // web comes back: grab keeps it now.
            try write("m-web.yaml", manifest("web", clusterIP: "10.96.0.10", slice: "abc", pods: [1, 2]))
            (state, issues) = reload()
            XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [9], file)
            XCTAssertEqual(issues.map(\.file), [path("m-web.yaml")], file)
        }
    }

    /// Without an incumbent, the older creationTimestamp keeps the address and port, then the
    /// file read first, never the name.
    func testWithoutAnIncumbentTheOlderServiceKeepsTheAddressAndPort() throws {
        try write("a.yaml", manifest("aaa", clusterIP: "10.96.0.10", slice: "a", pods: [1], created: "2026-01-02T00:00:00Z"))
        try write("b.yaml", manifest("bbb", clusterIP: "10.96.0.10", slice: "b", pods: [2], created: "2026-01-01T23:59:59Z"))
        var (state, _) = reload()
        XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [2])
        builder = DesiredStateBuilder(options: MappingOptions())
        try write("a.yaml", manifest("zzz", clusterIP: "10.96.0.10", slice: "a", pods: [1]))
        try write("b.yaml", manifest("bbb", clusterIP: "10.96.0.10", slice: "b", pods: [2]))
        (state, _) = reload()
        XCTAssertEqual(pods(state, tcp("10.96.0.10", 80)), [1])
    }

    // MARK: - creationTimestamp

    func testCreationTimestampIsReadAsTheAPIServerWritesIt() {
        func decode(_ value: String) -> ManifestDecoding {
            ManifestDecoder.decode("""
                apiVersion: v1
                kind: Service
                metadata: {name: web, creationTimestamp: \(value)}
                spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
                """, file: "t.yaml")
        }
        guard case .service(let service) = decode("\"2024-05-01T12:00:00Z\"").objects.first else { return XCTFail("no Service") }
        XCTAssertEqual(service.creationTimestamp, "2024-05-01T12:00:00Z")
        guard case .service(let unset) = decode("null").objects.first else { return XCTFail("no Service") }
        XCTAssertNil(unset.creationTimestamp)
        for bad in ["yesterday", "\"2024-05-01 12:00:00\"", "\"2024-05-01T12:00:00+02:00\"", "\"2024-05-01T12:00:00.5Z\""] {
            let decoding = decode(bad)
            XCTAssertEqual(decoding.objects, [], bad)
            XCTAssertEqual(decoding.issues.first?.field, "metadata.creationTimestamp", bad)
            XCTAssertEqual(decoding.issues.first?.line, 3, bad)
        }
    }
}
