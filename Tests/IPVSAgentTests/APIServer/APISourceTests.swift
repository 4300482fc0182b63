import Foundation
import IPVS
import Logging
import NIOSSL
import TestSupport
import XCTest
@testable import IPVSAgent

/// The API source against the test API server (TLS with a test CA): lists in pages, watches,
/// disconnects, 410 Gone both ways, expired continue tokens, malformed and duplicated events,
/// an unreachable server, token rotation, client certificates and kube-proxy's label selector.
final class APISourceTests: XCTestCase {
    static let certificates = Result { try TestCertificates.make() }
    var server: TestAPIServer!
    var folder: String!
    var activity: ActivityLog!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "api-source-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        activity = ActivityLog()
    }

    override func tearDown() {
        server?.stop()
        try? FileManager.default.removeItem(atPath: folder)
    }

    final class ActivityLog: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [(String, ReflectorActivity)] = []
        func add(_ resource: APIResource, _ activity: ReflectorActivity) { lock.withLock { entries.append((resource.kind, activity)) } }
        func count(_ kind: String? = nil, where match: (ReflectorActivity) -> Bool) -> Int {
            lock.withLock { entries.filter { (kind == nil || $0.0 == kind) && match($0.1) }.count }
        }
    }

    /// A started server with a token, and a configuration that reads the token from a file.
    func startServer(authentication: TestAPIServer.Authentication = .token) throws -> APIServerConfiguration {
        let certificates = try Self.certificates.get()
        server = TestAPIServer(certificates: certificates, authentication: authentication)
        let port = try server.start()
        let tokenFile = folder + "/token"
        try "token-1\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        return APIServerConfiguration(host: "127.0.0.1", port: port, certificateAuthority: certificates.authority,
                                      credential: authentication == .token ? .tokenFile(tokenFile) : .none, origin: "test")
    }

    func makeSource(_ configuration: APIServerConfiguration, proxyName: String? = nil, nodeName: String? = nil, pageSize: Int = 500,
                    changed: @escaping @Sendable () -> Void = {}) throws -> APISource {
        let activity = activity!
        let source = try APISource(configuration: configuration, proxyName: proxyName, nodeName: nodeName, logger: Logger(label: "test"),
                                   changed: changed, record: { activity.add($0, $1) })
        source.backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(100))
        source.pageSize = pageSize
        return source
    }

    /// Runs `source` while `body` runs.
    func running(_ source: APISource, _ body: () async throws -> Void) async throws {
        let task = Task { await source.run() }
        defer { task.cancel() }
        try await body()
        task.cancel()
        await task.value
    }

    /// Waits (10 s at most, a generous bound for a loaded machine) until `condition` holds.
    func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { return XCTFail("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The services' names and their real-server addresses in `snapshot`.
    func names(_ snapshot: SourceSnapshot?) -> [String] {
        (snapshot?.objects ?? []).map { object in
            switch object {
            case .service(let service): "svc \(service.name)"
            case .endpointSlice(let slice): "eps \(slice.name) \(slice.endpoints.filter(\.ready).compactMap(\.address).map(\.description).joined(separator: ","))"
            }
        }
    }

    func services(_ count: Int) -> [String] {
        (0..<count).map { APIObjects.service("web-\($0)", clusterIP: "10.96.0.\($0 + 10)") }
    }

    // MARK: - List and watch

    func testListsInPagesThenWatchesFromTheListsVersionWithBookmarks() async throws {
        let configuration = try startServer()
        for service in services(7) { server.put(TestAPIServer.services, service) }
        server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-0-abc", service: "web-0", addresses: ["10.244.0.5"]))
        let listVersion = server.resourceVersion
        let source = try makeSource(configuration, pageSize: 3)
        XCTAssertNil(source.snapshot(), "no snapshot before every resource is listed")
        try await running(source) {
            try await eventually("both resources are listed") { source.isSynced }
            let snapshot = source.snapshot()
            XCTAssertEqual(names(snapshot).count, 8)
            XCTAssertNil(snapshot?.changedServices, "the first snapshot maps everything")
            XCTAssertEqual(snapshot?.issues, [])
            try await eventually("the watches are open") { server.openWatches == 2 }
        }
        let serviceRequests = server.requests.filter { $0.hasPrefix(TestAPIServer.services) }
        XCTAssertEqual(serviceRequests.filter { $0.contains("limit=3") }.count, 3, "7 Services in pages of 3: \(serviceRequests)")
        XCTAssertEqual(serviceRequests.filter { $0.contains("continue=") }.count, 2)
        let watch = try XCTUnwrap(serviceRequests.first { $0.contains("watch=true") })
        XCTAssertTrue(watch.contains("resourceVersion=\(listVersion)"), watch)
        XCTAssertTrue(watch.contains("allowWatchBookmarks=true"), watch)
        XCTAssertTrue(watch.contains("labelSelector=!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"), watch)
    }

    func testWatchEventsMarkOnlyTheirServiceAndDuplicatesChangeNothing() async throws {
        let configuration = try startServer()
        for service in services(3) { server.put(TestAPIServer.services, service) }
        let slice = APIObjects.slice("web-1-abc", service: "web-1", addresses: ["10.244.0.5"])
        server.put(TestAPIServer.endpointSlices, slice)
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            // kube-proxy's programming latency starts at the slice's last-change-trigger-time, which the
            // load step's change count (`ObjectChanges`) reads from each changed slice.
            var changes = ObjectChanges()
            _ = changes.count(nil, in: try XCTUnwrap(source.snapshot()))
            try await eventually("the watches are open") { server.openWatches == 2 }
            server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-1-abc", service: "web-1", addresses: ["10.244.0.5", "10.244.0.6"]))
            try await eventually("the scaled slice arrives") { activity.count("EndpointSlice") { if case .event("MODIFIED") = $0 { true } else { false } } == 1 }
            let scaled = source.snapshot()
            XCTAssertEqual(scaled?.changedServices, [ObjectName(namespace: "default", name: "web-1")])
            XCTAssertEqual(changes.count(scaled?.changedServices, in: try XCTUnwrap(scaled)).triggerTimes,
                           [ISO8601DateFormatter().date(from: "2026-01-01T00:00:00Z")!],
                           "the slice's last-change-trigger-time, for the programming latency")
            XCTAssertTrue(names(scaled).contains("eps default/web-1-abc 10.244.0.5,10.244.0.6"), "\(names(scaled))")
            // One Service's objects, as the load step reads those of the changed Services.
            let inputs = try XCTUnwrap(scaled).inputs(of: ObjectName(namespace: "default", name: "web-1"))
            XCTAssertEqual(inputs.services.map(\.name.name), ["web-1"])
            XCTAssertEqual(inputs.slices.map { $0.endpoints.compactMap(\.address).map(\.description) }, [["10.244.0.5", "10.244.0.6"]])
            XCTAssertEqual(try XCTUnwrap(scaled).inputs(of: ObjectName(namespace: "default", name: "web-2")).slices, [])
            XCTAssertEqual(try XCTUnwrap(scaled).inputs(of: ObjectName(namespace: "default", name: "web-2")).services.count, 1)

            // The same event again (a duplicate) and a bookmark change no Service.
            server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-1-abc", service: "web-1", addresses: ["10.244.0.5", "10.244.0.6"]))
            server.bookmark(TestAPIServer.services)
            try await eventually("the events arrive") {
                activity.count { if case .event = $0 { true } else { false } } == 3
            }
            let duplicate = try XCTUnwrap(source.snapshot())
            XCTAssertEqual(duplicate.changedServices, [], "events that change no object change no Service")
            XCTAssertEqual(changes.count(duplicate.changedServices, in: duplicate).triggerTimes, [], "a duplicate is not a change to program")
        }
    }

    func testMalformedEventsAreSkippedAndLogged() async throws {
        let configuration = try startServer()
        for service in services(2) { server.put(TestAPIServer.services, service) }
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            _ = source.snapshot()
            try await eventually("the watches are open") { server.openWatches == 2 }
            server.sendRaw(#"{"type":"MODIFIED","object":{"metadata":{"name":"web-0""#, to: TestAPIServer.services)
            server.sendRaw(#"{"type":"SURPRISE","object":{"metadata":{"name":"web-0","resourceVersion":"1"}}}"#, to: TestAPIServer.services)
            server.sendRaw(#"{"type":"ADDED","object":{"metadata":{"name":"web-9","namespace":"default"}}}"#, to: TestAPIServer.services)
            // Decodes as JSON but not as a Service: reported, and the last good version kept.
            server.sendRaw(#"{"type":"MODIFIED","object":{"metadata":{"name":"web-0","namespace":"default","resourceVersion":"5000"},"spec":{"clusterIP":"10.96.0.10","ports":[{"port":70000}]}}}"#,
                           to: TestAPIServer.services)
            server.put(TestAPIServer.services, APIObjects.service("web-5", clusterIP: "10.96.0.50"))
            try await eventually("the good event after them arrives") { names(source.snapshot()).contains("svc default/web-5") }
        }
        XCTAssertEqual(activity.count { if case .malformed = $0 { true } else { false } }, 3)
    }

    func testRefusedObjectKeepsItsLastGoodVersionAndIsReported() async throws {
        let configuration = try startServer()
        server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "10.96.0.10", port: 80))
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            _ = source.snapshot()
            try await eventually("the watches are open") { server.openWatches == 2 }
            server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "127.0.0.1", port: 81))
            try await eventually("the event arrives") { activity.count { if case .event = $0 { true } else { false } } == 1 }
            let snapshot = try XCTUnwrap(source.snapshot())
            XCTAssertEqual(snapshot.changedServices, [], "the refused version changes nothing")
            guard case .service(let kept)? = snapshot.objects.first else { return XCTFail("the Service is gone") }
            XCTAssertEqual(kept.ports.map(\.port), [80])
            XCTAssertEqual(snapshot.issues.count, 1)
            XCTAssertEqual(snapshot.issues.first?.object, "Service default/web")
            XCTAssertTrue(snapshot.issues.first?.description.contains("loopback") == true, "\(snapshot.issues)")
        }
    }

    // MARK: - Disconnects and 410 Gone

    func testDroppedWatchResumesFromTheLastVersionWithoutAList() async throws {
        let configuration = try startServer()
        for service in services(2) { server.put(TestAPIServer.services, service) }
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            _ = source.snapshot()
            try await eventually("the watches are open") { server.openWatches == 2 }
            server.put(TestAPIServer.services, APIObjects.service("web-7", clusterIP: "10.96.0.70"))
            try await eventually("the event arrives") { activity.count { if case .event = $0 { true } else { false } } == 1 }
            let seen = server.resourceVersion
            server.dropWatches()
            server.put(TestAPIServer.services, APIObjects.service("web-8", clusterIP: "10.96.0.80"))
            try await eventually("the missed event arrives after the reconnection") {
                activity.count { if case .event = $0 { true } else { false } } == 2
            }
            XCTAssertTrue(server.requests.contains { $0.contains("watch=true") && $0.contains("resourceVersion=\(seen)&") },
                          "resumed from the last seen version \(seen): \(server.requests)")
            XCTAssertEqual(source.snapshot()?.changedServices, [ObjectName(namespace: "default", name: "web-7"),
                                                                ObjectName(namespace: "default", name: "web-8")])
        }
        XCTAssertEqual(activity.count { if case .relist = $0 { true } else { false } }, 2, "one list per resource, no re-list")
    }

    func testGoneAsStatusRelistsAndReplacesOnlyWhatChanged() async throws {
        try await relistAfterGone(asErrorEvent: false)
    }

    func testGoneAsErrorEventRelistsAndReplacesOnlyWhatChanged() async throws {
        try await relistAfterGone(asErrorEvent: true)
    }

    func relistAfterGone(asErrorEvent: Bool) async throws {
        let configuration = try startServer()
        for service in services(4) { server.put(TestAPIServer.services, service) }
        server.goneAsErrorEvent = asErrorEvent
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            _ = source.snapshot()
            try await eventually("the watches are open") { server.openWatches == 2 }
            // While the watch is down, web-1 changes, web-3 goes, web-9 comes, and the history is
            // compacted: the watch's version is too old.
            server.whileWatchesAreDown {
                server.put(TestAPIServer.services, APIObjects.service("web-1", clusterIP: "10.96.0.11", port: 8443))
                server.delete(TestAPIServer.services, namespace: "default", name: "web-3")
                server.put(TestAPIServer.services, APIObjects.service("web-9", clusterIP: "10.96.0.19"))
                server.compact()
            }
            try await eventually("listed again") { activity.count("Service") { if case .listed = $0 { true } else { false } } >= 2 }
            let snapshot = source.snapshot()
            XCTAssertEqual(Set(names(snapshot)), ["svc default/web-0", "svc default/web-1", "svc default/web-2", "svc default/web-9"])
            XCTAssertEqual(snapshot?.changedServices, Set(["web-1", "web-3", "web-9"].map { ObjectName(namespace: "default", name: $0) }),
                           "unchanged objects of the new list change nothing")
        }
    }

    func testGoneAtTheVersionJustListedBacksOffInsteadOfListingInALoop() async throws {
        let configuration = try startServer()
        for service in services(2) { server.put(TestAPIServer.services, service) }
        server.watchesAreGone = true
        let source = try makeSource(configuration)
        source.backoff = Backoff(initial: .seconds(3600), maximum: .seconds(3600))
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            let gone = { self.server.requests.filter { $0.hasPrefix(TestAPIServer.services) && $0.contains("watch=true") }.count }
            try await eventually("the Service watch was refused") { gone() == 1 }
            try await Task.sleep(for: .milliseconds(300))
            XCTAssertEqual(activity.count("Service") { if case .listed = $0 { true } else { false } }, 1,
                           "no list again before the back-off: a loop would have listed many times by now")
            XCTAssertEqual(gone(), 1)
        }
    }

    func testTheFirstListsProgramTheKernelAsTheirPagesComeWithTheNodesZone() async throws {
        let configuration = try startServer()
        for service in services(5) { server.put(TestAPIServer.services, service) }
        for i in 0..<5 {
            server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-\(i)-abc", service: "web-\(i)", addresses: ["10.244.0.\(i + 5)"]))
        }
        server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-b"))
        let reconciler = Reconciler(ipvs: FakeIPVS(), vips: FakeVIPs(), store: nil, options: .init(interface: "kube-ipvs0"), logger: Logger(label: "test"))
        try await reconciler.start()
        let found = await reconciler.coldStartBasis()
        let basis = try XCTUnwrap(found)
        final class Made: @unchecked Sendable {
            let lock = NSLock()
            var zones: [String?] = []
            var coldStart: ColdStart?
        }
        let made = Made(), ipvs = FakeIPVS(), vips = FakeVIPs()
        let source = try makeSource(configuration, nodeName: "node-1", pageSize: 2)
        source.makeColdStart = { zone in
            let coldStart = ColdStart(basis, ipvs: ipvs, vips: vips, options: MappingOptions(nodeName: "node-1", zone: zone))
            made.lock.withLock { made.zones.append(zone); made.coldStart = coldStart }
            return coldStart
        }
        try await running(source) {
            try await eventually("listed") { source.isSynced }
        }
        XCTAssertEqual(made.lock.withLock { made.zones }, ["zone-b"], "made once, with the Node's zone")
        let result = try XCTUnwrap(made.lock.withLock { made.coldStart }).finish()
        let keys = (0..<5).map { ServiceKey.address(.tcp, IPAddress("10.96.0.\($0 + 10)")!, port: 80) }
        XCTAssertEqual(Set(result.programmed.added.keys), Set(keys), "every Service programmed early, each with its endpoint")
        XCTAssertEqual(result.programmed.added.values.map(\.realServers.count), [1, 1, 1, 1, 1])
        XCTAssertEqual(Set(result.bound.map(\.0)), Set((0..<5).map { IPAddress("10.96.0.\($0 + 10)")! }))
        XCTAssertEqual(source.snapshot()?.objects.count, 10, "the store holds every object as well")
    }

    func testExpiredContinueTokenListsAgainFromTheStart() async throws {
        let configuration = try startServer()
        for service in services(5) { server.put(TestAPIServer.services, service) }
        server.expireNextContinue()
        let source = try makeSource(configuration, pageSize: 2)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            XCTAssertEqual(names(source.snapshot()).count, 5, "each Service once")
        }
        let lists = server.requests.filter { $0.hasPrefix(TestAPIServer.services) && !$0.contains("watch=") }
        XCTAssertEqual(lists.filter { !$0.contains("continue=") }.count, 2, "the list started again: \(lists)")
        XCTAssertEqual(activity.count { if case .failure = $0 { true } else { false } }, 0,
                       "started again at once, not as a failed list after a back-off")
    }

    func testTheNextPageIsRequestedWhileTheSinkTakesThePageBefore() async throws {
        let configuration = try startServer()
        for service in services(5) { server.put(TestAPIServer.services, service) }
        let server = server!
        let pages = PageLog()
        let reflector = Reflector(client: try APIClient(configuration: configuration),
                                  resource: APIResource(kind: "Service", apiVersion: "v1", path: TestAPIServer.services),
                                  logger: Logger(label: "test"),
                                  sink: { event in
                                      guard case .listPage(let items, _) = event else { return }
                                      // Each page waits (10 s at most) until the page after it was asked for.
                                      let asked = { server.requests.filter { $0.contains("continue=") }.count }
                                      let before = pages.count
                                      let deadline = ContinuousClock.now + .seconds(10)
                                      while asked() <= before, before < 2, ContinuousClock.now < deadline {
                                          try? await Task.sleep(for: .milliseconds(10))
                                      }
                                      pages.add(items.count, askedAhead: asked() > before)
                                  },
                                  record: { _ in }, pageSize: 2)
        let listed = try await reflector.list()
        XCTAssertEqual(listed.count, 5)
        XCTAssertEqual(pages.entries.map(\.items), [2, 2, 1])
        XCTAssertEqual(pages.entries.prefix(2).map(\.askedAhead), [true, true], "the next page was asked for while the sink held this one")
    }

    final class PageLog: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [(items: Int, askedAhead: Bool)] = []
        var entries: [(items: Int, askedAhead: Bool)] { lock.withLock { list } }
        var count: Int { lock.withLock { list.count } }
        func add(_ items: Int, askedAhead: Bool) { lock.withLock { list.append((items, askedAhead)) } }
    }

    func testUnreachableServerKeepsTheLastGoodStateAndReconnects() async throws {
        let configuration = try startServer()
        for service in services(3) { server.put(TestAPIServer.services, service) }
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            let before = names(source.snapshot())
            try await eventually("the watches are open") { server.openWatches == 2 }
            server.stop()
            try await eventually("reconnections fail") { activity.count { if case .failure = $0 { true } else { false } } >= 4 }
            let during = source.snapshot()
            XCTAssertEqual(names(during), before, "nothing is dropped while the server is unreachable")
            XCTAssertEqual(during?.changedServices, [])
            // The server comes back on the same port, with a change made meanwhile.
            server.put(TestAPIServer.services, APIObjects.service("web-4", clusterIP: "10.96.0.14"))
            try server.start(port: configuration.port)
            try await eventually("the change arrives") { activity.count { if case .event = $0 { true } else { false } } == 1 }
            XCTAssertEqual(source.snapshot()?.changedServices, [ObjectName(namespace: "default", name: "web-4")])
        }
    }

    func testUnreachableAtStartGivesNoSnapshot() async throws {
        let configuration = try startServer()
        server.stop()
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("lists fail") { activity.count { if case .failure = $0 { true } else { false } } >= 4 }
            XCTAssertNil(source.snapshot(), "no state is known: nothing to apply")
        }
    }

    // MARK: - Authentication and TLS

    func testRotatedTokenIsReadFromTheFile() async throws {
        let configuration = try startServer()
        for service in services(1) { server.put(TestAPIServer.services, service) }
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            try await eventually("the watches are open") { server.openWatches == 2 }
            // The kubelet writes the new token; the old one stops working.
            try "token-2\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
            server.acceptTokens(["token-2"])
            server.dropWatches()
            server.put(TestAPIServer.services, APIObjects.service("web-5", clusterIP: "10.96.0.15"))
            try await eventually("the change arrives with the new token") { activity.count { if case .event = $0 { true } else { false } } == 1 }
        }
        XCTAssertEqual(server.refusedCredentials, 0, "the new token was used from the first request after the rotation")
    }

    func testClientCertificateFromAKubeconfig() async throws {
        let certificates = try Self.certificates.get()
        server = TestAPIServer(certificates: certificates, authentication: .clientCertificate)
        let port = try server.start()
        server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "10.96.0.10"))
        let kubeconfig = KubeConfigTests.kubeconfig(server: "https://127.0.0.1:\(port)", authority: certificates.authority,
                                                    user: ["client-certificate-data": Data(certificates.clientCertificate).base64EncodedString(),
                                                           "client-key-data": Data(certificates.clientKey).base64EncodedString()])
        let configuration = try KubeConfig.parse(kubeconfig, path: folder + "/kubeconfig")
        let source = try makeSource(configuration)
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            XCTAssertEqual(names(source.snapshot()), ["svc default/web"])
        }

        // Without the certificate the server refuses the handshake.
        var anonymous = configuration
        anonymous.clientCertificate = nil
        anonymous.clientKey = nil
        let client = try APIClient(configuration: anonymous)
        do {
            var response = try await client.get(TestAPIServer.services)
            _ = try await response.body()
            XCTFail("a client without a certificate was served")
        } catch {}
    }

    func testServerNotSignedByTheCAIsRefused() async throws {
        var configuration = try startServer()
        configuration.certificateAuthority = try Self.certificates.get().otherAuthority
        let client = try APIClient(configuration: configuration)
        do {
            var response = try await client.get(TestAPIServer.services)
            _ = try await response.body()
            XCTFail("a server whose certificate the CA did not sign was trusted")
        } catch {
            XCTAssertTrue("\(error)".contains("TLS with the API server") && "\(error)".contains("check the cluster CA"), "\(error)")
        }
        XCTAssertEqual(server.requests, [], "no request reached the server")

        // insecure-skip-tls-verify, when the configuration says so, trusts it.
        configuration.insecureSkipTLSVerify = true
        var response = try await APIClient(configuration: configuration).get(TestAPIServer.services)
        _ = try await response.body()
        XCTAssertEqual(response.status, 200)
    }

    /// A connection the server ends without TLS's closing message (it stopped) is said to be that,
    /// not blamed on the CA or the certificate.
    func testAnAbruptlyClosedConnectionIsNotCalledACertificateProblem() {
        let abrupt = "\(APIClient.describe(NIOSSLError.uncleanShutdown, server: "10.0.0.1:6443"))"
        XCTAssertEqual(abrupt, "the API server 10.0.0.1:6443 closed the connection abruptly (stopped, restarted, or cut off on the way)")
        let handshake = "\(APIClient.describe(NIOSSLError.handshakeFailed(.sslError([])), server: "10.0.0.1:6443"))"
        XCTAssertTrue(handshake.contains("check the cluster CA"), handshake)
    }

    // MARK: - To the (fake) kernel

    /// Snapshots through the mapping and reconcile the daemon uses: an event that changes nothing
    /// in IPVS writes nothing, one endpoint more writes one real server, and a re-list after 410
    /// or an unreachable server writes nothing.
    func testOnlyWhatChangesInIPVSReachesTheKernel() async throws {
        let configuration = try startServer()
        server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "10.96.0.10"))
        server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-a", service: "web", addresses: ["10.244.0.5"]))
        let source = try makeSource(configuration)
        let ipvs = FakeIPVS()
        let reconciler = Reconciler(ipvs: ipvs, vips: FakeVIPs(), store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        var builder = DesiredStateBuilder(options: MappingOptions())
        func apply() async throws -> [IPVSOperation] {
            ipvs.applied = []
            let build = builder.build(try XCTUnwrap(source.snapshot()))
            let report = await reconciler.reconcile(build.state, changed: build.changed)
            XCTAssertEqual(report.failures, [])
            return ipvs.applied
        }
        func events() -> Int { activity.count { if case .event = $0 { true } else { false } } }
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            let first = try await apply()
            XCTAssertEqual(first.count, 2, "one service, one real server: \(first)")
            try await eventually("the watches are open") { server.openWatches == 2 }

            server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "10.96.0.10", annotations: ["team": "a"]))
            try await eventually("the annotation arrives") { events() == 1 }
            let annotated = try await apply()
            XCTAssertEqual(annotated, [], "an annotation the agent does not read writes nothing")

            server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-a", service: "web", addresses: ["10.244.0.5", "10.244.0.6"]))
            try await eventually("the scaled slice arrives") { events() == 2 }
            let scaled = try await apply()
            XCTAssertEqual(scaled.count, 1, "one real server added: \(scaled)")

            server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-a", service: "web", addresses: ["10.244.0.5", "10.244.0.6"],
                                                                      notReady: ["10.244.0.6"]))
            try await eventually("the pod turned not ready arrives") { events() == 3 }
            let notReady = try await apply()
            XCTAssertEqual(notReady.count, 1, "the not-ready pod drains or goes: \(notReady)")

            server.whileWatchesAreDown { server.compact() }
            try await eventually("listed again after 410") { activity.count("Service") { if case .listed = $0 { true } else { false } } >= 2 }
            let relisted = try await apply()
            XCTAssertEqual(relisted, [], "a re-list of unchanged objects writes nothing")

            server.stop()
            try await eventually("requests fail") { activity.count { if case .failure = $0 { true } else { false } } >= 2 }
            let unreachable = try await apply()
            XCTAssertEqual(unreachable, [], "an unreachable server writes nothing")
            XCTAssertEqual(ipvs.state.services.count, 1)
        }
    }

    // MARK: - The Node

    /// This node's Node is listed and watched with a field selector; its zone labels the slices'
    /// zone hints: a zone change asks for a sync and maps the zone's endpoints, while the kubelet's
    /// heartbeats (status only) and another node's changes ask for nothing and write nothing.
    func testNodeZoneChangeSyncsAndHeartbeatsDoNot() async throws {
        let configuration = try startServer()
        server.put(TestAPIServer.services, APIObjects.service("web", clusterIP: "10.96.0.10"))
        server.put(TestAPIServer.endpointSlices, APIObjects.slice("web-a", service: "web", addresses: ["10.244.0.5", "10.244.1.5"],
                                                                  zones: ["10.244.0.5": "zone-a", "10.244.1.5": "zone-b"]))
        server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-a"))
        server.put(TestAPIServer.nodes, APIObjects.node("node-2", zone: "zone-b"))
        let changes = Counter()
        let source = try makeSource(configuration, nodeName: "node-1", changed: { changes.increment() })
        let ipvs = FakeIPVS()
        let reconciler = Reconciler(ipvs: ipvs, vips: FakeVIPs(), store: nil, options: .init(), logger: Logger(label: "test"))
        try await reconciler.start()
        var builder = DesiredStateBuilder(options: MappingOptions(nodeName: "node-1"))
        func apply() async throws -> [IPVSOperation] {
            ipvs.applied = []
            builder.options.zone = source.node?.zone // As the API server's loop does before each load.
            let build = builder.build(try XCTUnwrap(source.snapshot()))
            let report = await reconciler.reconcile(build.state, changed: build.changed)
            XCTAssertEqual(report.failures, [])
            return ipvs.applied
        }
        // Serving real servers (a removed endpoint drains at weight 0 first).
        func servers() -> [String] {
            ipvs.state.services.values.flatMap { $0.realServers.values.filter { $0.weight > 0 }.map(\.id.description) }.sorted()
        }
        func nodeEvents() -> Int { activity.count("Node") { if case .event = $0 { true } else { false } } }
        try await running(source) {
            try await eventually("listed") { source.isSynced }
            XCTAssertEqual(source.node, KubeNode(name: "node-1", zone: "zone-a", addresses: [IPAddress("192.168.0.1")!]))
            _ = try await apply()
            XCTAssertEqual(servers(), ["10.244.0.5:8080"], "only zone-a's endpoint")
            try await eventually("the watches are open") { server.openWatches == 3 }
            let request = try XCTUnwrap(server.requests.first { $0.hasPrefix(TestAPIServer.nodes) })
            XCTAssertTrue(request.contains("fieldSelector=metadata.name%3Dnode-1") || request.contains("fieldSelector=metadata.name=node-1"), request)

            let before = changes.value
            server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-a", heartbeat: "2026-01-01T00:00:10Z"))
            server.put(TestAPIServer.nodes, APIObjects.node("node-2", zone: "zone-c"))
            try await eventually("the heartbeat arrives") { nodeEvents() == 1 }
            XCTAssertEqual(changes.value, before, "a heartbeat asks for no sync")
            let heartbeat = try await apply()
            XCTAssertEqual(heartbeat, [], "and would write nothing")

            server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-b"))
            try await eventually("the zone change arrives") { nodeEvents() == 2 }
            XCTAssertEqual(changes.value, before + 1, "a zone change asks for a sync")
            _ = try await apply()
            XCTAssertEqual(servers(), ["10.244.1.5:8080"], "zone-b's endpoint now")
            XCTAssertEqual(source.node?.eligible, true)

            // Tainted for deletion by the cluster autoscaler, then deleted: not eligible (`/healthz`
            // answers 503), the zone kept, and no sync asked for.
            let tainted = APIObjects.node("node-1", zone: "zone-b").replacingOccurrences(
                of: "\"spec\":{", with: "\"spec\":{\"taints\":[{\"key\":\"ToBeDeletedByClusterAutoscaler\",\"value\":\"1700000000\",\"effect\":\"NoSchedule\"}],")
            server.put(TestAPIServer.nodes, tainted)
            try await eventually("the taint arrives") { nodeEvents() == 3 }
            XCTAssertEqual(source.node?.eligible, false)
            server.put(TestAPIServer.nodes, APIObjects.node("node-1", zone: "zone-b"))
            try await eventually("the taint is gone") { nodeEvents() == 4 }
            XCTAssertEqual(source.node?.eligible, true)
            server.delete(TestAPIServer.nodes, name: "node-1")
            try await eventually("the deletion arrives") { nodeEvents() == 5 }
            XCTAssertEqual(source.node?.eligible, false)
            XCTAssertEqual(source.node?.zone, "zone-b")
            XCTAssertEqual(changes.value, before + 1, "neither asks for a sync")
        }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        func increment() { lock.withLock { count += 1 } }
    }

    // MARK: - Selection

    func testHeadlessAndOtherProxiesObjectsAreLeftOut() async throws {
        let configuration = try startServer()
        server.put(TestAPIServer.services, APIObjects.service("mine", clusterIP: "10.96.0.10"))
        server.put(TestAPIServer.services, APIObjects.service("named", clusterIP: "10.96.0.11",
                                                              labels: [APISource.proxyNameLabel: "ipvs-agent"]))
        server.put(TestAPIServer.services, APIObjects.service("other", clusterIP: "10.96.0.12",
                                                              labels: [APISource.proxyNameLabel: "cilium"]))
        server.put(TestAPIServer.endpointSlices, APIObjects.slice("mine-a", service: "mine", addresses: ["10.244.0.5"]))
        server.put(TestAPIServer.endpointSlices, APIObjects.slice("headless-a", service: "headless", addresses: ["10.244.0.6"],
                                                                  labels: [APISource.headlessLabel: ""]))
        server.put(TestAPIServer.endpointSlices, APIObjects.slice("other-a", service: "other", addresses: ["10.244.0.7"],
                                                                  labels: [APISource.proxyNameLabel: "cilium"]))
        // Without --service-proxy-name: only unlabelled objects.
        let plain = try makeSource(configuration)
        try await running(plain) {
            try await eventually("listed") { plain.isSynced }
            XCTAssertEqual(names(plain.snapshot()), ["eps default/mine-a 10.244.0.5", "svc default/mine"])
        }
        // With a name: its own labelled objects too.
        let named = try makeSource(configuration, proxyName: "ipvs-agent")
        try await running(named) {
            try await eventually("listed") { named.isSynced }
            XCTAssertEqual(names(named.snapshot()), ["eps default/mine-a 10.244.0.5", "svc default/mine", "svc default/named"])
        }
    }
}
