/// The most the agent reads of a manifest, and the names and annotations the API server accepts.
///
/// The reading limits stop early, before their cost is paid: a file too big is not read, a YAML
/// text is not parsed past the level, alias or key that goes over (libyaml itself has no limit,
/// and its scanner's cost grows with the size of the text times its nesting depth). The object
/// limits are the API server's own: a manifest that `kubectl apply` would refuse is refused here,
/// naming the field. The README's "Limits" table lists them all.
enum ManifestLimits {
    // MARK: - Reading a file

    /// A manifest file's size in bytes; a bigger file is not read (it keeps its last good objects).
    /// A reload waits for the files it decodes, so with the depth limit this bounds how long one
    /// file can hold back the changes of the others.
    static let fileBytes = 16 << 20
    /// Nested mappings and sequences in a YAML text: the deepest built-in Kubernetes kinds need
    /// about 15, and libyaml's scanner works through every open flow level at each token.
    static let depth = 64
    /// Nodes (scalars, mappings, sequences) in one file: what reading it costs in time and memory,
    /// which a file of one-character list entries would otherwise make four times its size.
    static let nodes = 3_000_000
    /// Aliases (`*name`) in one file: the API server's objects have none.
    static let aliases = 10_000
    /// The nodes that a file's aliases stand for, counted at every alias (what reading the file
    /// with its aliases expanded costs beyond its own nodes).
    static let aliasedNodes = 1_000_000
    /// A mapping key's length in bytes (libyaml's own limit for a key without `? `; label and
    /// annotation keys are at most 317).
    static let keyBytes = 1024

    // MARK: - One object (the API server's limits)

    /// One Service, EndpointSlice or Endpoints object, in characters of its text: etcd's default
    /// request limit (`--max-request-bytes`, 1.5 MiB), the largest object the API server stores.
    static let objectCharacters = 1_572_864
    /// The annotations of one object, keys and values together (`TotalAnnotationSizeLimitB`).
    static let annotationBytes = 262_144

    // MARK: - Names (k8s.io/apimachinery/pkg/util/validation)

    /// The kinds of names the API server checks, each with its longest length.
    enum NameRule {
        /// `IsDNS1035Label`: a Service's name (`[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63).
        case dns1035Label
        /// `IsDNS1123Label`: a namespace (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63).
        case dns1123Label
        /// `IsDNS1123Subdomain`: an EndpointSlice's or Endpoints' name (DNS-1123 labels joined by
        /// dots, at most 253).
        case dns1123Subdomain

        var maximumLength: Int { self == .dns1123Subdomain ? 253 : 63 }

        var summary: String {
            switch self {
            case .dns1035Label: "a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
            case .dns1123Label: "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            case .dns1123Subdomain: "a DNS-1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit"
            }
        }

        /// Why `name` is not a valid name of this kind, or `nil` when it is.
        func problem(_ name: String) -> String? {
            let count = name.utf8.count
            if count > maximumLength { return "is \(count) characters long; it must be \(summary)" }
            let valid = ManifestLimits.withUTF8(name) { bytes in
                switch self {
                case .dns1035Label: ManifestLimits.isLabel(bytes[...], letterFirst: true)
                case .dns1123Label: ManifestLimits.isLabel(bytes[...], letterFirst: false)
                case .dns1123Subdomain: ManifestLimits.isSubdomain(bytes[...])
                }
            }
            return valid ? nil : "\(ManifestLimits.quoted(name)) is not \(summary)"
        }
    }

    /// Why `key` is not a label or annotation key (`IsQualifiedName`: an optional DNS-1123
    /// subdomain prefix and `/`, then a name of at most 63 letters, digits, '-', '_' and '.',
    /// starting and ending with a letter or digit), or `nil` when it is.
    static func keyProblem(_ key: String) -> String? {
        // Checked in place first (every object's keys are, and nearly all are valid); the parts are made for a message.
        let valid = withUTF8(key) { bytes in
            guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else { return bytes.count <= 63 && isQualifiedName(bytes[...]) }
            let name = bytes[(slash + 1)...]
            return slash <= 253 && isSubdomain(bytes[..<slash]) && name.count <= 63 && isQualifiedName(name)
        }
        if valid { return nil }
        let parts = key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts.count == 2 ? parts[1] : parts[0]
        if parts.count == 2, let problem = NameRule.dns1123Subdomain.problem(String(parts[0])) {
            return "\(quoted(key)): the prefix \(problem)"
        }
        if name.utf8.count > 63 { return "\(quoted(key)): the name part is \(name.utf8.count) characters long; at most 63" }
        guard withUTF8(String(name), { isQualifiedName($0[...]) }) else {
            return "\(quoted(key)) is not a qualified name: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        }
        return nil
    }

    /// Why `value` is not a label value (`IsValidLabelValue`: empty, or at most 63 letters,
    /// digits, '-', '_' and '.', starting and ending with a letter or digit), or `nil` when it is.
    static func labelValueProblem(_ value: String) -> String? {
        let count = value.utf8.count
        if count == 0 { return nil }
        if count > 63 { return "is \(count) characters long; a label value has at most 63" }
        return withUTF8(value, { isQualifiedName($0[...]) }) ? nil
            : "\(quoted(value)) is not a label value: at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    }

    // MARK: - Characters

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isLowerAlphanumeric(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// `body` given the UTF-8 of `text`, in place when the string keeps it in one piece (native strings do).
    private static func withUTF8<Result>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        text.utf8.withContiguousStorageIfAvailable(body) ?? Array(text.utf8).withUnsafeBufferPointer(body)
    }

    /// A DNS-1123 subdomain without its length limit: DNS labels joined by dots.
    private static func isSubdomain(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        var start = bytes.startIndex
        for index in bytes.indices where bytes[index] == UInt8(ascii: ".") {
            guard isLabel(bytes[start..<index], letterFirst: false) else { return false }
            start = index + 1
        }
        return isLabel(bytes[start...], letterFirst: false)
    }

    /// A DNS label of at most 63 characters: lowercase letters, digits and '-' inside.
    private static func isLabel(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, letterFirst: Bool) -> Bool {
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
        let firstOK = letterFirst ? (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) : isLowerAlphanumeric(first)
        return firstOK && isLowerAlphanumeric(last) && bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    private static func isQualifiedName(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        guard let first = bytes.first, let last = bytes.last else { return false }
        return isAlphanumeric(first) && isAlphanumeric(last)
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    /// A name as messages show it: quoted, a long one cut (the logs escape control characters).
    static func quoted(_ text: String) -> String {
        "\"" + (text.count > 80 ? String(text.prefix(77)) + "..." : text) + "\""
    }
}

extension Int {
    /// The number with a comma every three digits (`1,572,864`), as limits are shown in messages.
    var grouped: String {
        let digits = String(magnitude)
        var text = ""
        for (position, digit) in digits.enumerated() {
            if position > 0, (digits.count - position) % 3 == 0 { text.append(",") }
            text.append(digit)
        }
        return self < 0 ? "-" + text : text
    }
}
