/// Which of several Service objects claiming one thing (a Service's namespace and name, or a
/// virtual service's protocol, address and port) keeps it; the others are left out and reported.
///
/// The object that came first keeps it, "first" being stable across reloads and restarts, not the
/// order in which files happen to be read: the incumbent first (the object the desired state
/// holds already, or after a restart the Service the state file records as the owner), then the
/// older `metadata.creationTimestamp` (an object without one counts as the newest), then the
/// object read first by file path, then by line, then by name. The API server never lets two
/// objects claim one name or ClusterIP, so kube-proxy has no such rule.
struct ClaimPrecedence: Comparable {
    /// Whether the object holds the claim already.
    var incumbent: Bool
    var creationTimestamp: String?
    var file: String
    var line: Int
    var name: ObjectName

    init(_ service: KubeService, incumbent: Bool) {
        self.incumbent = incumbent
        creationTimestamp = service.creationTimestamp
        file = service.location?.file ?? ""
        line = service.location?.line ?? 0
        name = service.name
    }

    /// Whether `lhs` keeps the claim against `rhs`.
    static func < (lhs: Self, rhs: Self) -> Bool {
        if lhs.incumbent != rhs.incumbent { return lhs.incumbent }
        if lhs.creationTimestamp != rhs.creationTimestamp {
            // Timestamps as the API server writes them compare as text (`ManifestDecoder.isTimestamp`).
            guard let left = lhs.creationTimestamp else { return false }
            guard let right = rhs.creationTimestamp else { return true }
            return left < right
        }
        return (lhs.file, lhs.line, lhs.name) < (rhs.file, rhs.line, rhs.name)
    }

    /// `file:line` of `service`, to name the object that keeps a claim.
    static func place(of service: KubeService) -> String {
        guard let location = service.location else { return "another manifest" }
        return location.line.map { "\(location.file):\($0)" } ?? location.file
    }
}
