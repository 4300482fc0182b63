/// IPVS services and real servers are addressed by `IPAddress`, which lives one layer down in
/// `NetworkAddress` (shared with NodeNetwork); re-exported so that `import IPVS` is enough to use them.
@_exported import NetworkAddress
