import Foundation
import Logging

/// Where the desired Kubernetes objects come from. Manifest files today; the API server later.
public protocol DesiredStateSource: Sendable {
    /// Reads the current objects. Problems are reported with the objects, never thrown, so one bad
    /// input never stops the others: a source keeps the last good version of what it cannot read.
    func load() async -> SourceSnapshot
    /// `load()`, re-reading only `changed` files when the source can (all when `nil`), and telling
    /// `decoded` about the objects of each part (a file) as soon as it is decoded, so that a cold
    /// start can program the kernel before the whole load ends (`ColdStart`).
    func load(changed: Set<String>?, decoded: ManifestSource.DecodedHandler?) async -> SourceSnapshot
    /// What the source's objects are called in the load step's log line ("loaded manifests").
    var objectsName: String { get }
}

extension DesiredStateSource {
    public var objectsName: String { "manifests" }

    /// Reads the current objects, re-reading only `changed` files when the source can (all when `nil`).
    public func load(changed: Set<String>?) async -> SourceSnapshot { await load() }

    /// A source that decodes in one piece tells `decoded` nothing: the load step maps its snapshot.
    public func load(changed: Set<String>?, decoded: ManifestSource.DecodedHandler?) async -> SourceSnapshot {
        await load(changed: changed)
    }
}

/// Kubernetes manifests from files and folders (`--manifests`, repeatable).
///
/// A folder contributes its `.yaml`, `.yml` and `.json` files (not recursively, hidden files
/// skipped), in name order. Per file, the last good objects are kept: a file that becomes
/// unreadable or invalid YAML keeps its previous objects, and a bad object keeps its previous
/// version. Missing files are told apart by how they were named:
/// - a file deleted from a listed folder is a removal: its objects are gone at the next load
///   (deleting a file from the folder is how Services are deleted);
/// - a path given in `paths` (a file, or a whole folder) that no longer exists is reported as a
///   problem and keeps its last good objects until it comes back.
public final class ManifestSource: DesiredStateSource, @unchecked Sendable {
    /// The paths as given on the command line.
    public let paths: [String]
    private let logger: Logger
    private let lock = NSLock()
    private var lastGood: [String: [String: ManifestObject]] = [:]
    private var lastGoodOrder: [String: [String]] = [:]
    /// The text and outcome of each file's last decoding, so unchanged files are not parsed again.
    private var decodedText: [String: (text: String, decoding: ManifestDecoding)] = [:]
    /// What each file contributed to the last snapshot, to tell which Services changed.
    private var contributed: [String: FileObjects] = [:]
    /// The files holding objects of each Service in the last snapshot.
    private var filesByService: [ObjectName: Set<String>] = [:]
    private let lineageSource = UInt64.random(in: 1...UInt64.max)
    private var snapshotNumber = 0

    /// How long a reload waits for a file it loaded before and decodes again; past it the reload goes
    /// on with that file's last objects, so one slow file never holds back what the others change.
    public var decodingWait: Duration = .milliseconds(100)
    /// Called, on the decoding thread, with each file a reload stopped waiting for, once it is
    /// decoded: loading that file again (`load(changed: [file])`) takes the decoding made.
    public var lateDecoding: (@Sendable (String) -> Void)?
    /// Decodings a reload stopped waiting for, finished since.
    private var ready: [String: ReadFile] = [:]
    /// Files decoding in the background; those a load asked for meanwhile are decoded again after.
    private var inFlight: Set<String> = []
    private var askedWhileInFlight: Set<String> = []

    public init(paths: [String], logger: Logger) {
        self.paths = paths
        self.logger = logger
    }

    /// The files the paths stand for now, and problems with paths that do not exist.
    public func files() -> (files: [String], issues: [ManifestIssue]) {
        let listing = listing()
        return (listing.files.map(\.file), listing.issues)
    }

    /// The files the paths stand for now, each with the index in `paths` of the path it comes from.
    private func listing() -> (files: [(file: String, path: Int)], issues: [ManifestIssue]) {
        var files: [(file: String, path: Int)] = []
        var issues: [ManifestIssue] = []
        for (index, path) in paths.enumerated() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                issues.append(ManifestIssue(file: path, message: "no such file or folder; its last good objects are kept"))
                continue
            }
            guard isFolder.boolValue else { files.append((path, index)); continue }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            for name in names.sorted() where Self.isManifestName(name) {
                files.append(((path as NSString).appendingPathComponent(name), index))
            }
        }
        return (files, issues)
    }

    /// Whether a folder contributes a file of this name: `.yaml`, `.yml` or `.json`, not hidden.
    static func isManifestName(_ name: String) -> Bool {
        !name.hasPrefix(".") && [".yaml", ".yml", ".json"].contains(where: name.hasSuffix)
    }

    /// The folders to watch for changes: each folder given, and the folder of each file given.
    public var watchedFolders: [String] {
        paths.map(Self.watchedFolder(of:))
    }

    private static func watchedFolder(of path: String) -> String {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue { return path }
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// `path` without `.` components, repeated or trailing slashes: `./x.yaml` and `x.yaml` are
    /// the same file (`..` is kept: resolving it lexically can be wrong across symlinks).
    static func normalized(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        let joined = parts.joined(separator: "/")
        if path.hasPrefix("/") { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// Whether a change the watcher reported (folder + name) may change what the manifests hold:
    /// a listed path, a file a folder would list, or the `..data` symlink through which a
    /// Kubernetes ConfigMap volume swaps all its files at once.
    public func isRelevant(change: String) -> Bool {
        let name = (change as NSString).lastPathComponent
        if name == "..data" || Self.isManifestName(name) { return true }
        let change = Self.normalized(change)
        return paths.contains { Self.normalized($0) == change }
    }

    /// The listed files to read again for the `changed` paths (as the watcher reported them).
    /// A listed file is matched by its path (`./x.yaml` matches `x.yaml`). Any other change in a
    /// watched folder may change what the files of a path read (a ConfigMap volume re-points
    /// `..data`, through which each listed file is a symlink; a symlinked file's target changes),
    /// so every file of each path watched through that folder is read again; unchanged files are
    /// not decoded again. The one exception: a file that a listed folder itself would list, which
    /// is absent now (deleted), affects no other file.
    private func filesToRead(changed: Set<String>, files: [(file: String, path: Int)]) -> Set<String> {
        let byNormalized = Dictionary(files.map { (Self.normalized($0.file), $0.file) }) { first, _ in first }
        var read: Set<String> = []
        var everythingOf: Set<Int> = []
        let folders = paths.map { Self.normalized(Self.watchedFolder(of: $0)) }
        for change in changed {
            let normal = Self.normalized(change)
            if let file = byNormalized[normal] { read.insert(file); continue }
            let name = (normal as NSString).lastPathComponent
            let parent = (normal as NSString).deletingLastPathComponent
            let folder = Self.normalized(parent.isEmpty ? "." : parent)
            for (index, path) in paths.enumerated() where folders[index] == folder || Self.normalized(path) == normal {
                let isListedFolder = folders[index] == Self.normalized(path)
                if isListedFolder, Self.isManifestName(name), Self.normalized(path) != normal { continue } // Deleted.
                everythingOf.insert(index)
            }
        }
        for (file, path) in files where everythingOf.contains(path) { read.insert(file) }
        return read
    }

    public func load() async -> SourceSnapshot {
        lock.withLock { loadLocked(changed: nil) }
    }

    /// Re-reads only the files that the paths in `changed` (as inotify reported them) may affect
    /// (see `filesToRead`); the others keep their last decoding. With `nil`, every file is read again.
    public func load(changed: Set<String>?) async -> SourceSnapshot {
        lock.withLock { loadLocked(changed: changed) }
    }

    /// Called with the objects of each file read by a load (those that decoded cleanly, none from
    /// a file that is not YAML at all), as soon as that file is decoded and on the thread that
    /// decoded it (any thread, several at once), so that work can start before the whole load ends.
    public typealias DecodedHandler = @Sendable (_ objects: [ManifestObject]) -> Void

    /// `load(changed:)`, telling `decoded` about each file read.
    public func load(changed: Set<String>?, decoded: DecodedHandler?) async -> SourceSnapshot {
        lock.withLock { loadLocked(changed: changed, decoded: decoded) }
    }

    /// Synchronous form of `load()`, telling `decoded` about each file read.
    public func loadNow(decoded: DecodedHandler? = nil) -> SourceSnapshot {
        lock.withLock { loadLocked(changed: nil, decoded: decoded) }
    }

    /// What one file contributed to the last snapshot.
    private struct FileOutcome {
        var objects = FileObjects()
        var issues: [ManifestIssue] = []
        var held: Set<ObjectName> = []
        var incomplete = false
    }

    private var outcomes: [String: FileOutcome] = [:]

    private func loadLocked(changed requested: Set<String>?, decoded: DecodedHandler? = nil) -> SourceSnapshot {
        let (listed, pathIssues) = listing()
        let files = listed.map(\.file)
        let changed = requested.map { filesToRead(changed: $0, files: listed) }
        var issues = pathIssues
        var held: Set<ObjectName> = []
        var incomplete = false
        var contents: [(file: String, objects: FileObjects)] = []
        contents.reserveCapacity(files.count)
        /// Files whose contribution may differ from the last snapshot's.
        var touched: Set<String> = []
        let toRead = files.filter { file in changed.map { $0.contains(file) } != false || outcomes[file] == nil }
        let read = decoded == nil && toRead.contains(where: { outcomes[$0] != nil }) ? decodeWaiting(toRead) : prefetch(toRead, decoded: decoded)
        for file in files {
            let outcome: FileOutcome
            if let changed, !changed.contains(file), let cached = outcomes[file] {
                outcome = cached // Not touched since it was read: nothing to redo.
            } else if read[file] == nil, inFlight.contains(file), let cached = outcomes[file] {
                outcome = cached // Still decoding: its last objects until it is done.
            } else {
                outcome = loadFile(file, read[file] ?? Self.read(file, cache: decodedText[file], decoded: decoded))
                outcomes[file] = outcome
                touched.insert(file)
            }
            contents.append((file, outcome.objects))
            issues += outcome.issues
            held.formUnion(outcome.held)
            if outcome.incomplete { incomplete = true }
        }
        // Files that vanished from a listed folder or path keep their objects only when the path
        // itself is missing (reported above); a file deleted from an existing folder is a removal.
        let seen = Set(files)
        let missingPaths = Set(pathIssues.map(\.file))
        for path in missingPaths where !lastGood.keys.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
            incomplete = true
        }
        for file in lastGood.keys.sorted() where !seen.contains(file) {
            touched.insert(file)
            if missingPaths.contains(file) || missingPaths.contains(where: { file.hasPrefix($0 + "/") }) {
                contents.append((file, FileObjects(lastGoodObjects(file))))
            } else {
                lastGood[file] = nil
                lastGoodOrder[file] = nil
                decodedText[file] = nil
                outcomes[file] = nil
            }
        }
        for file in contributed.keys where !seen.contains(file) { touched.insert(file) }

        var snapshot = SourceSnapshot(chunks: contents.map(\.objects.objects), issues: issues)
        snapshot.heldServices = held
        snapshot.incomplete = incomplete
        snapshot.changedServices = recordContributions(contents.filter { touched.contains($0.file) }, removing: touched)
        snapshotNumber += 1
        snapshot.lineage = SourceSnapshot.Lineage(source: lineageSource, number: snapshotNumber)
        snapshot.index = ObjectIndex(files: contents.map(\.objects),
                                     positions: Dictionary(contents.enumerated().map { ($1.file, $0) }) { first, _ in first },
                                     filesByService: filesByService)
        return snapshot
    }

    /// Records what the `touched` files contribute now (`current`; a touched file not in it
    /// contributes nothing any more) and returns the Services whose objects changed.
    private func recordContributions(_ current: [(file: String, objects: FileObjects)], removing touched: Set<String>) -> Set<ObjectName> {
        var changed: Set<ObjectName> = []
        let now = Dictionary(current.map { ($0.file, $0.objects) }) { first, _ in first }
        for file in touched {
            let old = contributed[file]?.byService ?? [:]
            let new = now[file]?.byService ?? [:]
            for (name, objects) in new where old[name] != objects { changed.insert(name) }
            for name in old.keys where new[name] == nil {
                changed.insert(name)
                filesByService[name]?.remove(file)
                if filesByService[name]?.isEmpty == true { filesByService[name] = nil }
            }
            for name in new.keys where old[name] == nil { filesByService[name, default: []].insert(file) }
            contributed[file] = now[file]
        }
        return changed
    }

    /// A file's text and its decoding, or why it could not be read.
    private typealias ReadFile = Result<(text: String, decoding: ManifestDecoding), any Error>

    /// Reads and decodes `file`, reusing `cache` when the text is the same, and tells `decoded`.
    /// Pure but for `decoded`: safe on any thread.
    private static func read(_ file: String, cache: (text: String, decoding: ManifestDecoding)?, decoded: DecodedHandler?) -> ReadFile {
        let result = Result { () throws -> (text: String, decoding: ManifestDecoding) in
            let text = try ManifestFile.read(file)
            if let cache, cache.text == text { return cache }
            return (text, ManifestDecoder.decode(text, file: file))
        }
        if let decoded, case .success(let read) = result, !read.decoding.unreadable { decoded(read.decoding.objects) }
        return result
    }

    /// Reads and decodes `files` on every core: YAML decoding is most of a cold start at thousands of
    /// Services, and files decode independently of each other.
    private func prefetch(_ files: [String], decoded: DecodedHandler?) -> [String: ReadFile] {
        guard files.count > 1 else { return [:] }
        let cache = files.map { decodedText[$0] }
        var results = [ReadFile?](repeating: nil, count: files.count)
        results.withUnsafeMutableBufferPointer { results in
            nonisolated(unsafe) let slots = results // Each iteration writes only its own slot.
            DispatchQueue.concurrentPerform(iterations: files.count) { index in
                slots[index] = Self.read(files[index], cache: cache[index], decoded: decoded)
            }
        }
        var read: [String: ReadFile] = [:]
        for (file, result) in zip(files, results) { read[file] = result }
        return read
    }

    /// Decodes `files` for a reload, each on a thread of its own, waiting `decodingWait` at most for the
    /// files loaded before (for new files, until they are decoded). A file left decoding is in
    /// `inFlight` until it is done, then in `ready`, and `lateDecoding` is told.
    private func decodeWaiting(_ files: [String]) -> [String: ReadFile] {
        var results: [String: ReadFile] = [:]
        var fresh: [String] = []
        for file in files {
            if let late = ready.removeValue(forKey: file) {
                results[file] = late
            } else if inFlight.contains(file) {
                askedWhileInFlight.insert(file) // That decoding may have read an older text.
            } else {
                fresh.append(file)
            }
        }
        guard !fresh.isEmpty else { return results }
        let batch = DecodeBatch()
        let group = DispatchGroup()
        for file in fresh {
            let cache = decodedText[file]
            DispatchQueue.global().async(group: group) { [self] in
                let result = Self.read(file, cache: cache, decoded: nil)
                if batch.finish(file, result) { return } // The reload takes it.
                // The reload went on without it: keep it for the next load of this file.
                lock.withLock {
                    inFlight.remove(file)
                    if askedWhileInFlight.remove(file) == nil { ready[file] = result }
                }
                lateDecoding?(file)
            }
        }
        let mustWait = fresh.filter { outcomes[$0] == nil }
        let (seconds, attoseconds) = decodingWait.components
        let waitMilliseconds = Int(seconds) * 1_000 + Int(attoseconds / 1_000_000_000_000_000)
        if group.wait(timeout: .now() + .milliseconds(waitMilliseconds)) == .timedOut {
            while !batch.hasFinished(mustWait), group.wait(timeout: .now() + .milliseconds(10)) == .timedOut {}
        }
        let finished = batch.abandon()
        for file in fresh where finished[file] == nil {
            inFlight.insert(file)
            logger.warning("a manifest file takes long to decode; the others are applied meanwhile, and it when it is done",
                           metadata: ["file": "\(file)", "waited_milliseconds": "\(waitMilliseconds)"])
        }
        return results.merging(finished) { late, _ in late }
    }

    private func loadFile(_ file: String, _ read: ReadFile) -> FileOutcome {
        var outcome = FileOutcome()
        let decoded: ManifestDecoding
        switch read {
        case .failure(ManifestFile.Problem.notRegular(let what)):
            // Not a manifest at all (a FIFO, a device): reported, and holds nothing back.
            outcome.issues.append(ManifestIssue(file: file, message: ManifestFile.Problem.notRegular(what).message))
            outcome.objects = FileObjects(lastGoodObjects(file))
            return outcome
        case .failure(let error):
            let message = (error as? ManifestFile.Problem)?.message ?? "cannot read the file (\(error.localizedDescription))"
            outcome.issues.append(ManifestIssue(file: file, message: "\(message); its last good objects are kept"))
            outcome.objects = FileObjects(lastGoodObjects(file))
            outcome.incomplete = lastGood[file] == nil
            return outcome
        case .success(let (text, decoding)):
            decoded = decoding
            decodedText[file] = (text, decoding)
        }
        outcome.issues = decoded.issues
        if decoded.unreadable {
            outcome.objects = FileObjects(lastGoodObjects(file))
            outcome.incomplete = lastGood[file] == nil
            return outcome
        }
        var good: [String: ManifestObject] = [:]
        var order: [String] = []
        for object in decoded.objects {
            // The first object of a kind and name in a file is the one used, as it is early.
            if let first = good[object.identity] {
                outcome.issues.append(ManifestIssue(at: object.location, object: object.identity, field: "metadata.name",
                                                    message: "\(object.identity) is also defined at line \(first.location?.line.map(String.init) ?? "?") "
                                                        + "of this file, which came first; this object is ignored"))
                continue
            }
            good[object.identity] = object
            order.append(object.identity)
        }
        // A rejected object keeps its previous version from this file.
        for identity in decoded.rejected.sorted() {
            if let previous = lastGood[file]?[identity], good[identity] == nil {
                logger.warning("keeping the last good version of an invalid object", metadata: ["object": "\(identity)", "file": "\(file)"])
                good[identity] = previous
                order.append(identity)
            } else if let service = decoded.rejectedServices[identity] {
                outcome.held.insert(service)
            }
        }
        lastGood[file] = good
        lastGoodOrder[file] = order
        outcome.objects = FileObjects(order.compactMap { good[$0] })
        return outcome
    }

    private func lastGoodObjects(_ file: String) -> [ManifestObject] {
        (lastGoodOrder[file] ?? []).compactMap { lastGood[file]?[$0] }
    }
}

/// The decodings of one reload: those finished while it waited, and after it stopped waiting.
private final class DecodeBatch: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [String: Result<(text: String, decoding: ManifestDecoding), any Error>] = [:]
    private var abandoned = false

    /// Records `file`'s decoding; `false` when the reload no longer waits for it.
    func finish(_ file: String, _ result: Result<(text: String, decoding: ManifestDecoding), any Error>) -> Bool {
        lock.withLock {
            guard !abandoned else { return false }
            results[file] = result
            return true
        }
    }

    func hasFinished(_ files: [String]) -> Bool {
        lock.withLock { files.allSatisfy { results[$0] != nil } }
    }

    /// Stops waiting: what finished until now.
    func abandon() -> [String: Result<(text: String, decoding: ManifestDecoding), any Error>] {
        lock.withLock {
            abandoned = true
            return results
        }
    }
}
