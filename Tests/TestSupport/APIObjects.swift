import Foundation

/// Objects shaped like `kubectl get -o json` prints them (uid, creationTimestamp, managedFields,
/// status), for `TestAPIServer`.
public enum APIObjects {
    public static func service(_ name: String, namespace: String = "default", clusterIP: String, port: Int = 80,
                        labels: [String: String] = [:], annotations: [String: String] = [:]) -> String {
        """
        {"apiVersion":"v1","kind":"Service","metadata":{"name":"\(name)","namespace":"\(namespace)",\
        "uid":"\(UUID().uuidString.lowercased())","creationTimestamp":"2026-01-01T00:00:00Z",\
        "labels":\(json(labels)),"annotations":\(json(annotations)),\
        "managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1",\
        "time":"2026-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:ports":{}}}}]},\
        "spec":{"clusterIP":"\(clusterIP)","clusterIPs":["\(clusterIP)"],"internalTrafficPolicy":"Cluster",\
        "ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","ports":[{"name":"http","port":\(port),"protocol":"TCP",\
        "targetPort":8080}],"selector":{"app":"\(name)"},"sessionAffinity":"None","type":"ClusterIP"},\
        "status":{"loadBalancer":{}}}
        """
    }

    /// `zones` gives an endpoint (by address) its zone and a hint for that zone, as the EndpointSlice
    /// controller writes them for `trafficDistribution: PreferClose`.
    public static func slice(_ name: String, service: String, namespace: String = "default", addresses: [String],
                      notReady: Set<String> = [], labels: [String: String] = [:], port: Int = 8080,
                      zones: [String: String] = [:]) -> String {
        let endpoints = addresses.map { address in
            let ready = !notReady.contains(address)
            let hints = zones[address].map { ",\"hints\":{\"forZones\":[{\"name\":\"\($0)\"}]}" } ?? ""
            return """
            {"addresses":["\(address)"],"conditions":{"ready":\(ready),"serving":\(ready),"terminating":false},\
            "nodeName":"node-1","targetRef":{"kind":"Pod","name":"\(service)-\(address)","namespace":"\(namespace)",\
            "uid":"\(UUID().uuidString.lowercased())"},"zone":"\(zones[address] ?? "zone-a")"\(hints)}
            """
        }
        var allLabels = labels
        allLabels["kubernetes.io/service-name"] = service
        allLabels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
        return """
        {"addressType":"IPv4","apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",\
        "endpoints":[\(endpoints.joined(separator: ","))],\
        "metadata":{"name":"\(name)","namespace":"\(namespace)","uid":"\(UUID().uuidString.lowercased())",\
        "creationTimestamp":"2026-01-01T00:00:00Z","generateName":"\(service)-","generation":1,\
        "labels":\(json(allLabels)),"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-01-01T00:00:00Z"},\
        "ownerReferences":[{"apiVersion":"v1","blockOwnerDeletion":true,"controller":true,"kind":"Service",\
        "name":"\(service)","uid":"\(UUID().uuidString.lowercased())"}]},\
        "ports":[{"name":"http","port":\(port),"protocol":"TCP"}]}
        """
    }

    /// A Node as the kubelet keeps it: labels (the zone's among them), addresses and a status whose
    /// `heartbeat` time changes every few seconds (`conditions[].lastHeartbeatTime`).
    public static func node(_ name: String, zone: String?, addresses: [String] = ["192.168.0.1"],
                            heartbeat: String = "2026-01-01T00:00:00Z") -> String {
        var labels = ["kubernetes.io/hostname": name, "kubernetes.io/os": "linux"]
        if let zone { labels["topology.kubernetes.io/zone"] = zone }
        let addressList = addresses.map { "{\"type\":\"InternalIP\",\"address\":\"\($0)\"}" } + ["{\"type\":\"Hostname\",\"address\":\"\(name)\"}"]
        return """
        {"apiVersion":"v1","kind":"Node","metadata":{"name":"\(name)","uid":"\(UUID().uuidString.lowercased())",\
        "creationTimestamp":"2026-01-01T00:00:00Z","labels":\(json(labels)),\
        "annotations":{"node.alpha.kubernetes.io/ttl":"0"}},\
        "spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24"]},\
        "status":{"addresses":[\(addressList.joined(separator: ","))],\
        "conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status",\
        "lastHeartbeatTime":"\(heartbeat)","lastTransitionTime":"2026-01-01T00:00:00Z"}],\
        "nodeInfo":{"kubeletVersion":"v1.34.0","kubeProxyVersion":"","operatingSystem":"linux","architecture":"amd64"}}}
        """
    }

    private static func json(_ map: [String: String]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: map, options: [.sortedKeys]), as: UTF8.self)
    }
}
