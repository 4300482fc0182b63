extension DesiredStateBuilder {
    /// The Service objects the last build mapped, by name: the ones that won their name and
    /// addresses (`ClaimPrecedence`), as the desired state's `origin`s name them.
    var services: [ObjectName: KubeService] { cache.mapValues(\.service) }
}
