import IPVS

/// Reads the few fields of a `v1 Node` the agent uses (`KubeNode`): its name, zone label,
/// addresses, and whether it is being deleted or tainted for deletion. Unlike Services and EndpointSlices it is not read strictly: a Node carries many
/// fields the agent has no use for, written by the kubelet, and the API server has checked them.
enum NodeDecoder {
    /// The node `object` describes, or `nil` when it has no `metadata.name`. An address that is not
    /// an IP address (the API server takes any text) is left out.
    static func decode(_ object: YAMLNode) -> KubeNode? {
        guard let metadata = NodeReader.value(of: "metadata", in: object), let name = NodeReader.text(of: "name", in: metadata) else {
            return nil
        }
        var node = KubeNode(name: name)
        if let labels = NodeReader.value(of: "labels", in: metadata) {
            node.zone = NodeReader.text(of: KubeNode.zoneLabel, in: labels)
        }
        if let deletion = NodeReader.value(of: "deletionTimestamp", in: metadata), !NodeReader.isNull(deletion) {
            node.eligible = false
        }
        if let taints = NodeReader.value(of: "spec", in: object).flatMap({ NodeReader.value(of: "taints", in: $0) }), taints.kind == .sequence,
           (0..<taints.count).contains(where: { NodeReader.text(of: "key", in: taints.element($0)) == KubeNode.toBeDeletedTaint }) {
            node.eligible = false
        }
        if let status = NodeReader.value(of: "status", in: object), let addresses = NodeReader.value(of: "addresses", in: status),
           addresses.kind == .sequence {
            for position in 0..<addresses.count {
                let entry = addresses.element(position)
                guard let type = NodeReader.text(of: "type", in: entry), type == "InternalIP" || type == "ExternalIP",
                      let text = NodeReader.text(of: "address", in: entry), let address = IPAddress(text) else { continue }
                node.addresses.append(address)
            }
        }
        return node
    }
}
