import IPVS

/// Executes a parsed `Invocation` against the kernel (through `ControlEnvironment`).
struct CommandRunner {
    let environment: ControlEnvironment

    func execute(_ invocation: Invocation) throws {
        switch invocation {
        case .help(let full):
            environment.writeOutput(Array((full ? HelpText.full : HelpText.usage).utf8))
        case .version:
            environment.writeOutput(Array((IPVSControl.version + "\n").utf8))
        case .list(.connections, let format, let output):
            try listConnections(format: format, output: output)
        case .list(let target, let format, let output):
            try list(target, format: format, output: output, backend: try open())
        case .save(let numeric):
            let backend = try open()
            var out = TextBuffer()
            let formatter = ListingFormatter(format: numeric ? [.rule, .numeric] : [.rule])
            formatter.table(try reading { try table(backend) }, into: &out)
            environment.writeOutput(out.bytes)
        case .change(let operation):
            try checkScheduler(of: operation)
            let backend = try open()
            if case .failure(let error) = backend.apply([operation])[0] {
                throw ControlFailure(message: message(for: error, operation: operation), status: ExitStatus.changeFailed)
            }
        case .setTimeouts(let timeouts):
            let backend = try open()
            do {
                try backend.setTimeouts(timeouts)
            } catch {
                throw ControlFailure(message: "\(error)", status: ExitStatus.changeFailed)
            }
        case .restore:
            try restore()
        }
    }

    // MARK: - Listing

    private func list(_ target: ListTarget, format: ListingFormat, output: OutputFormat, backend: any IPVSBackend) throws {
        var out = TextBuffer()
        switch target {
        case .all:
            let (info, entries) = try reading { (try backend.info(), try table(backend)) }
            if output == .json {
                out = JSONListing.table(entries, info: info, sorted: !format.contains(.noSort))
            } else {
                let formatter = ListingFormatter(format: format)
                formatter.header(info, into: &out)
                formatter.title(into: &out)
                formatter.table(entries, into: &out)
            }
        case .service(let key):
            let (service, servers) = try reading { (try backend.service(key), try backend.realServers(of: key)) }
            if output == .json {
                out = JSONListing.table([ServiceTableEntry(service: service, realServers: servers)], info: nil,
                                        sorted: !format.contains(.noSort))
            } else {
                let formatter = ListingFormatter(format: format)
                formatter.title(into: &out)
                formatter.entry(service, servers, into: &out)
            }
        case .timeouts:
            let timeouts = try reading { try backend.timeouts() }
            if output == .json {
                out = JSONListing.timeouts(timeouts)
            } else {
                out.write("Timeout (tcp tcpfin udp): \(Int32(bitPattern: timeouts.tcp)) \(Int32(bitPattern: timeouts.tcpFin)) \(Int32(bitPattern: timeouts.udp))\n")
            }
        case .daemons:
            let daemons = try reading { try backend.syncDaemons() }
            if output == .json {
                out = JSONListing.daemons(daemons)
            } else {
                for daemon in daemons {
                    out.write("\(daemon.role) sync daemon (mcast=\(daemon.interface), syncid=\(daemon.syncID)")
                    if let length = daemon.maximumLength, length != 0 { out.write(", maxlen=\(length)") }
                    if let group = daemon.multicastGroup { out.write(", group=\(group)") }
                    if let port = daemon.multicastPort, port != 0 { out.write(", port=\(port)") }
                    if let ttl = daemon.multicastTTL, ttl != 0 { out.write(", ttl=\(ttl)") }
                    out.write(")\n")
                }
            }
        case .connections:
            break
        }
        environment.writeOutput(out.bytes)
    }

    private func listConnections(format: ListingFormat, output: OutputFormat) throws {
        let text: String
        do {
            text = try environment.readFile(ConnectionTable.path)
        } catch {
            throw ControlFailure(message: "cannot list connections: \(error) (is the ip_vs module loaded?)",
                                 status: ExitStatus.listingFailed)
        }
        let entries = ConnectionTable.parse(text)
        var out = TextBuffer()
        if output == .json {
            out = JSONListing.connections(entries)
        } else {
            ConnectionTable.format(entries, format: format, resolver: NameResolver(), into: &out)
        }
        environment.writeOutput(out.bytes)
    }

    private func table(_ backend: any IPVSBackend) throws -> [ServiceTableEntry] {
        try backend.table()
    }

    func reading<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw ControlFailure(message: "\(error)", status: ExitStatus.listingFailed)
        }
    }

    // MARK: - Changes

    func open() throws -> any IPVSBackend {
        do {
            return try environment.openBackend()
        } catch {
            // ipvsadm exits 2 when it cannot initialise IPVS.
            throw ControlFailure(message: "\(error)", status: ExitStatus.usage)
        }
    }

    /// Refuses a scheduler the kernel is known to lack before asking the kernel.
    private func checkScheduler(of operation: IPVSOperation) throws {
        switch operation {
        case .addService(let service), .updateService(let service):
            let catalog = environment.schedulerCatalog()
            if catalog.lacks(service.scheduler.rawValue) {
                throw UsageError("cannot \(operation.description): " + catalog.unavailableMessage(service.scheduler.rawValue))
            }
        default:
            break
        }
    }

    /// The words for a failed operation; a missing scheduler gets the list of available ones.
    func message(for error: IPVSError, operation: IPVSOperation) -> String {
        switch (error.kind, operation) {
        case (.schedulerUnavailable, .addService(let service)), (.schedulerUnavailable, .updateService(let service)):
            return "cannot \(operation.description): " + environment.schedulerCatalog().unavailableMessage(service.scheduler.rawValue)
        default:
            return error.description
        }
    }
}
