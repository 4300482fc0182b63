// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "swift-ipvs",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "IPVS", targets: ["IPVS"]),
        .library(name: "NodeNetwork", targets: ["NodeNetwork"]),
        .library(name: "HealthCheck", targets: ["HealthCheck"]),
        .library(name: "IPVSAgent", targets: ["IPVSAgent"]),
        .executable(name: "ipvsctl", targets: ["ipvsctl"]),
        .executable(name: "ipvs-agent", targets: ["ipvs-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // MARK: - C libraries (Debian -dev packages through pkg-config)
        .systemLibrary(
            name: "CNetlink",
            pkgConfig: "libnl-genl-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-genl-3-dev", "pkg-config"])]
        ),
        .systemLibrary(
            name: "CNetlinkRoute",
            pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev", "pkg-config"])]
        ),

        /// libyaml's parser, read event by event for the manifests (Sources/IPVSAgent/Manifests/YAMLTree.swift).
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev", "pkg-config"])]
        ),

        /// epoll and eventfd for HealthCheck's TCP poller: headers Swift's Glibc module leaves out.
        .target(name: "CEpoll"),
        /// fork/exec of exec health checks as an unprivileged user: posix_spawn cannot change the user.
        .target(name: "CSpawn"),
        /// libnftables (nft's native syntax in, one transaction per call) for PacketFilter's table.
        .systemLibrary(
            name: "CNFTables",
            pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev", "pkg-config"])]
        ),
        /// libnetfilter_conntrack (ctnetlink) for Conntrack's deletion of stale UDP entries.
        .systemLibrary(
            name: "CConntrack",
            pkgConfig: "libnetfilter_conntrack",
            providers: [.apt(["libnetfilter-conntrack-dev", "pkg-config"])]
        ),

        // MARK: - Libraries
        /// IPv4 and IPv6 addresses: the value type every layer above shares (no dependencies).
        .target(name: "NetworkAddress"),
        /// Generic netlink over libnl: socket, message framing, attribute encoding and parsing.
        .target(name: "Netlink", dependencies: ["CNetlink"]),
        /// The typed IPVS model, its wire encoding and the client.
        .target(name: "IPVS", dependencies: ["NetworkAddress", "Netlink", "CNetlink"]),
        /// The dummy interface and VIP addresses (rtnetlink through libnl-route), sysctls.
        .target(name: "NodeNetwork", dependencies: ["CNetlinkRoute", "NetworkAddress"]),
        /// ipvs-agent's `/status` document, written by the agent and read by `ipvsctl status` (no dependencies).
        .target(name: "AgentStatus"),
        /// ipvsctl: ipvsadm-compatible command line, as a library so tests run whole command lines.
        .target(name: "IPVSControl", dependencies: [
            "IPVS", "AgentStatus",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        /// Health checks of backends (TCP, HTTP(S), UDP, exec) on an event loop, and their state machine.
        .target(name: "HealthCheck", dependencies: [
            "IPVS", "CEpoll", "CSpawn",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        /// The node agent: Kubernetes objects -> desired IPVS state -> minimal diff -> kernel.
        .target(name: "IPVSAgent", dependencies: [
            "IPVS", "NodeNetwork", "HealthCheck", "CYAML", "PacketFilter", "Conntrack", "AgentStatus",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        /// The agent's nftables table (masquerade, hairpin, VIP filter, source ranges) through libnftables.
        .target(name: "PacketFilter", dependencies: ["CNFTables", "IPVS"]),
        /// The kernel's connection tracking table: deletes the entries that filters match (stale UDP flows).
        .target(name: "Conntrack", dependencies: ["CConntrack", "IPVS"]),

        // MARK: - Executables
        .executableTarget(name: "ipvsctl", dependencies: ["IPVSControl"]),
        .executableTarget(name: "ipvs-agent", dependencies: ["IPVSAgent"]),
        /// `make bench`'s health workload: HealthChecker against N loopback TCP backends (Benchmarks/health).
        .executableTarget(
            name: "health-bench",
            dependencies: [
                "HealthCheck", "IPVS",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/health/driver"
        ),
        /// The decoding of manifests alone, on one thread (Benchmarks/decode): CPU per pass.
        .executableTarget(name: "decode-bench", dependencies: ["IPVSAgent"], path: "Benchmarks/decode"),
        /// The agent's nftables table alone (Benchmarks/nft): the first sync and one-endpoint syncs at N Services.
        .executableTarget(name: "nft-bench", dependencies: ["PacketFilter", "IPVS"], path: "Benchmarks/nft"),
        /// The tests' API server serving gen-inputs.py's manifests, with watch events on command (Benchmarks/api).
        .executableTarget(
            name: "api-bench",
            dependencies: ["IPVSAgent", "TestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/api"
        ),

        // MARK: - Tests (unit tests run on the host; KernelTests need a real IPVS kernel)
        /// Helpers shared by the test targets (hex bytes, a seeded random generator, hostile manifests,
        /// the in-memory IPVS table that answers as the kernel does, a Kubernetes API server with its test CA).
        .target(name: "TestSupport", dependencies: [
            "IPVS",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "NetworkAddressTests", dependencies: ["NetworkAddress"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "TestSupport"]),
        .testTarget(name: "IPVSTests", dependencies: ["IPVS", "Netlink", "TestSupport"]),
        .testTarget(name: "IPVSControlTests", dependencies: ["IPVSControl", "IPVS", "AgentStatus", "TestSupport"]),
        .testTarget(name: "HealthCheckTests", dependencies: [
            "HealthCheck", "TestSupport", .product(name: "MetricsTestKit", package: "swift-metrics"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        /// Yams is the reference the manifest parser (YAMLTree, on libyaml directly) is compared with.
        .testTarget(name: "IPVSAgentTests", dependencies: [
            "IPVSAgent", "IPVS", "AgentStatus", "TestSupport", .product(name: "Yams", package: "Yams"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        /// Run by `make test` in a fresh network namespace on the host when it has IPVS, else
        /// inside the kernel VM (Scripts/kernel-run.sh). They fail, not skip, without IPVS there.
        .testTarget(name: "KernelTests", dependencies: ["IPVS", "NodeNetwork", "Conntrack", "IPVSControl", "IPVSAgent", "TestSupport"]),
        /// Run on the host, each test in a network namespace of its own (nftables works there).
        .testTarget(name: "PacketFilterTests", dependencies: ["PacketFilter", "IPVS"]),
        .testTarget(name: "ConntrackTests", dependencies: ["Conntrack", "IPVS"]),
    ],
    swiftLanguageModes: [.v6]
)
