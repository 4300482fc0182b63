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

    public static func slice(_ name: String, service: String, namespace: String = "default", addresses: [String],
                      notReady: Set<String> = [], labels: [String: String] = [:], port: Int = 8080) -> String {
        let endpoints = addresses.map { address in
            let ready = !notReady.contains(address)
            return """
            {"addresses":["\(address)"],"conditions":{"ready":\(ready),"serving":\(ready),"terminating":false},\
            "nodeName":"node-1","targetRef":{"kind":"Pod","name":"\(service)-\(address)","namespace":"\(namespace)",\
            "uid":"\(UUID().uuidString.lowercased())"},"zone":"zone-a"}
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

    private static func json(_ map: [String: String]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: map, options: [.sortedKeys]), as: UTF8.self)
    }
}
