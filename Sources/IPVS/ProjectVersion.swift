/// The release of swift-ipvs that `ipvs-agent --version` and `ipvsctl --version` print; the one
/// place the version is written (the Makefile reads it from here for packages, CHANGELOG.md lists it).
public enum ProjectVersion {
    /// The version, `MAJOR.MINOR.PATCH` (semantic versioning).
    public static let current = "0.1.0"

    /// The IPVS protocol version this code was written against, as `<linux/ip_vs.h>` encodes it
    /// (`IP_VS_VERSION_CODE`, 1.2.1 in every kernel since 2.6); ipvsadm's `--version` prints it.
    public static let ipvsProtocol = IPVSInfo(version: 0x010201, connectionTableSize: 0)
}
