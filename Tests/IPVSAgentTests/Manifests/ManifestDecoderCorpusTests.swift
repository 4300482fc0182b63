import IPVS
import XCTest
@testable import IPVSAgent

/// Every accepted shape and every error path of the decoder, each with the whole outcome it gives
/// (objects, issues with file, line, document, object and field, rejected objects). The expected
/// outcomes were recorded from the decoder before it was rewritten for speed; any change of
/// behaviour, even of one word of an error message, fails here.
final class ManifestDecoderCorpusTests: XCTestCase {
    /// `ManifestDecoderTests.web` with labels, external IPs, a selector, traffic policies and a status.
    static let service = ManifestDecoderTests.web
        .replacingOccurrences(of: "  namespace: shop\n", with: "  namespace: shop\n  labels: {app: web}\n")
        .replacingOccurrences(of: "\"fd00::10\"]\n", with: "\"fd00::10\"]\n  externalIPs: [192.0.2.7]\n")
        .replacingOccurrences(of: "  ipFamilies: [IPv4, IPv6]\n", with: "  ipFamilies: [IPv4, IPv6]\n  selector: {app: web}\n")
        + """

          externalTrafficPolicy: Local
          internalTrafficPolicy: Cluster
        status:
          loadBalancer:
            ingress:
            - ip: 192.0.2.1
            - ip: 192.0.2.2
              ipMode: Proxy
            - hostname: lb.example
        """

    static let slice = """
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-abc
          namespace: shop
          labels: {kubernetes.io/service-name: web}
        addressType: IPv4
        endpoints:
        - addresses: [10.244.1.5]
          conditions: {ready: true, serving: yes, terminating: Off}
          nodeName: n1
        - addresses: [10.244.1.6]
          conditions: {ready: false}
        - addresses: [10.244.1.7]
        ports:
        - {name: http, protocol: TCP, port: 8080}
        - {name: dns, protocol: UDP, port: 5353}
        """

    static let endpoints = """
        apiVersion: v1
        kind: Endpoints
        metadata: {name: legacy, namespace: old}
        subsets:
        - addresses: [{ip: 10.244.2.1, nodeName: n2}]
          notReadyAddresses: [{ip: 10.244.2.2}]
          ports: [{port: 80, name: http}]
        - addresses: [{ip: 10.244.2.3}]
          ports: [{name: http, port: 80}]
        """

    /// (name, text): the base objects, then one change each.
    static let cases: [(String, String)] = {
        var cases: [(String, String)] = [
            ("service", service), ("slice", slice), ("endpoints", endpoints),
            ("all three", service + "\n---\n" + slice + "\n---\n" + endpoints),
            ("empty file", ""), ("only separators", "---\n---\n"), ("null document", "~\n"),
            ("scalar document", "hello\n"), ("list document", "- a\n- b\n"),
            ("comments only", "# nothing\n"),
            ("invalid yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n"),
            ("bad indentation", "apiVersion: v1\n kind: Service\n"),
            ("duplicate key", "apiVersion: v1\nkind: Service\nkind: Service\nmetadata: {name: a}\n"),
            ("duplicate nested key", "apiVersion: v1\nkind: Service\nmetadata: {name: a, name: b}\n"),
            ("duplicate quoted key", "apiVersion: v1\nkind: Service\nmetadata: {name: a, \"name\": b}\n"),
            ("same key other tag", "apiVersion: v1\nkind: Service\nmetadata: {name: a, !foo name: b}\nspec: {ports: [{port: 1}]}\n"),
            ("tagged kind", "apiVersion: v1\n!foo kind: Service\nmetadata: {name: a}\n"),
            ("str tagged kind", "apiVersion: v1\n!!str kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 1}]}\n"),
            ("undefined alias", "apiVersion: v1\nkind: *nope\n"),
            ("anchors and aliases", "apiVersion: v1\nkind: Service\nmetadata: {name: &n a}\nspec: {ports: [&p {port: 1, name: *n}]}\n"),
            ("unknown kind", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {anything: [1, 2]}\n"),
            ("missing kind", "apiVersion: v1\nmetadata: {name: a}\n"),
            ("kind is a mapping", "apiVersion: v1\nkind: {a: b}\nmetadata: {name: a}\n"),
            ("wrong apiVersion service", "apiVersion: v2\nkind: Service\nmetadata: {name: a}\n"),
            ("wrong apiVersion slice", "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: a}\n"),
            ("wrong apiVersion endpoints", "apiVersion: apps/v1\nkind: Endpoints\nmetadata: {name: a, namespace: x}\n"),
            ("json service", #"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}, "spec": {"clusterIP": "10.96.0.3", "ports": [{"port": 443, "targetPort": 8443}]}}"#),
            ("json quoted port", #"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}, "spec": {"ports": [{"port": "443"}]}}"#),
            ("json list", #"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}, {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}]}"#),
            ("list without items", "apiVersion: v1\nkind: List\n"),
            ("list items not a list", "apiVersion: v1\nkind: List\nitems: {a: b}\n"),
            ("list null items", "apiVersion: v1\nkind: List\nitems: ~\n"),
            ("service list", "apiVersion: v1\nkind: ServiceList\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {ports: [{port: 1}]}}\n- {apiVersion: v1, kind: Service, metadata: {name: b}, spec: {ports: [{port: 0}]}}\n"),
            ("list item errors", "apiVersion: v1\nkind: List\nitems:\n- 7\n- {kind: Service, apiVersion: v1, metadata: {name: c}}\n- {kind: Service, apiVersion: v1, metadata: {name: d}, spec: {ports: [{port: 1, bad: 2}]}}\n- {apiVersion: v1}\n"),
            ("other list kind", "apiVersion: foo/v1\nkind: FooList\nitems: [1]\n"),
            ("any list kind", "apiVersion: foo/v1\nkind: List\nitems: [{apiVersion: v1, kind: Service, metadata: {name: z}, spec: {ports: [{port: 9}]}}]\n"),
            ("headless", "apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None, clusterIPs: [None]}\n"),
            ("external name", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ExternalName, externalName: example.com}\n"),
            ("no ports", "apiVersion: v1\nkind: Service\nmetadata: {name: p}\nspec: {clusterIP: 10.96.0.1}\n"),
            ("no spec", "apiVersion: v1\nkind: Service\nmetadata: {name: p}\n"),
            ("null spec", "apiVersion: v1\nkind: Service\nmetadata: {name: p}\nspec: null\n"),
            ("spec a list", "apiVersion: v1\nkind: Service\nmetadata: {name: p}\nspec: [1]\n"),
            ("no metadata", "apiVersion: v1\nkind: Service\nspec: {ports: [{port: 1}]}\n"),
            ("metadata a scalar", "apiVersion: v1\nkind: Service\nmetadata: web\nspec: {ports: [{port: 1}]}\n"),
            ("empty name", "apiVersion: v1\nkind: Service\nmetadata: {name: \"\"}\nspec: {ports: [{port: 1}]}\n"),
            ("name a list", "apiVersion: v1\nkind: Service\nmetadata: {name: [a]}\nspec: {ports: [{port: 1}]}\n"),
            ("metadata extras", "apiVersion: v1\nkind: Service\nmetadata: {name: m, uid: u, resourceVersion: '1', finalizers: [f], ownerReferences: ~}\nspec: {ports: [{port: 1}]}\n"),
            ("metadata unknown", "apiVersion: v1\nkind: Service\nmetadata: {name: m, nmespace: x}\nspec: {ports: [{port: 1}]}\n"),
            ("labels not text", "apiVersion: v1\nkind: Service\nmetadata: {name: m, labels: {a: [1]}}\nspec: {ports: [{port: 1}]}\n"),
            ("annotations a list", "apiVersion: v1\nkind: Service\nmetadata: {name: m, annotations: [1]}\nspec: {ports: [{port: 1}]}\n"),
            ("complex key", "apiVersion: v1\nkind: Service\nmetadata: {name: m}\nspec: {? [a, b] : c, ports: [{port: 1}]}\n"),
            ("number key", "apiVersion: v1\nkind: Service\nmetadata: {name: m}\nspec: {1: c, ports: [{port: 1}]}\n"),
            ("null key", "apiVersion: v1\nkind: Service\nmetadata: {name: m}\nspec: {~: c, ports: [{port: 1}]}\n"),
            ("null values", "apiVersion: v1\nkind: Service\nmetadata: {name: n, namespace: ~, labels: null}\nspec: {type: ~, clusterIP: , ports: [{port: 2, protocol: NULL, name: Null}], externalIPs: ~}\n"),
            ("quoted null is text", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {type: \"~\", ports: [{port: 2}]}\n"),
            ("two unnamed ports", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 2}, {port: 3}]}\n"),
            ("port protocol sctp", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 2, protocol: SCTP, targetPort: 0x10}]}\n"),
            ("port protocol lowercase", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 2, protocol: tcp}]}\n"),
            ("port a float", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 2.5}]}\n"),
            ("port signed", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: +80, targetPort: -1}]}\n"),
            ("port a mapping", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: {a: 1}}]}\n"),
            ("port missing", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{name: a}]}\n"),
            ("port entry a scalar", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [80]}\n"),
            ("ports a mapping", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: {port: 80}}\n"),
            ("target port names", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{name: a, port: 1, targetPort: web-1}, {name: b, port: 2, targetPort: \"8080\"}, {name: c, port: 3, targetPort: 123}]}\n"),
            ("target port too long", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1, targetPort: abcdefghijklmnop}]}\n"),
            ("target port dash", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1, targetPort: -web}]}\n"),
            ("target port digits", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1, targetPort: '99999'}]}\n"),
            ("target port zero", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1, targetPort: 0}]}\n"),
            ("node port bad", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1, nodePort: 65536}]}\n"),
            ("app protocol", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1, appProtocol: http}]}\n"),
            ("affinity none", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {sessionAffinity: None, ports: [{port: 1}]}\n"),
            ("affinity default timeout", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {sessionAffinity: ClientIP, ports: [{port: 1}]}\n"),
            ("affinity bad", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {sessionAffinity: Cookie, ports: [{port: 1}]}\n"),
            ("affinity config unknown", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeout: 3}}, ports: [{port: 1}]}\n"),
            ("affinity timeout range", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}, ports: [{port: 1}]}\n"),
            ("policy bad", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {externalTrafficPolicy: Nowhere, ports: [{port: 1}]}\n"),
            ("internal policy local", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {internalTrafficPolicy: Local, ports: [{port: 1}]}\n"),
            ("policy a list", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {internalTrafficPolicy: [Local], ports: [{port: 1}]}\n"),
            ("type bad", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {type: Internal, ports: [{port: 1}]}\n"),
            ("type load balancer", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {type: LoadBalancer, ports: [{port: 1}]}\n"),
            ("cluster ips mismatch", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {clusterIP: 10.0.0.1, clusterIPs: [10.0.0.2], ports: [{port: 1}]}\n"),
            ("cluster ips only", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {clusterIPs: [10.0.0.2, \"fd00::2\"], ports: [{port: 1}]}\n"),
            ("cluster ips same family", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {clusterIPs: [10.0.0.2, 10.0.0.3], ports: [{port: 1}]}\n"),
            ("cluster ips three", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {clusterIPs: [10.0.0.2, \"fd00::2\", 10.0.0.4], ports: [{port: 1}]}\n"),
            ("cluster ip empty", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {clusterIP: \"\", ports: [{port: 1}]}\n"),
            ("cluster ip a list", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {clusterIP: [1], ports: [{port: 1}]}\n"),
            ("cluster ips a scalar", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {clusterIPs: 10.0.0.1, ports: [{port: 1}]}\n"),
            ("external ip bad", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {externalIPs: [10.0.0.1, nope], ports: [{port: 1}]}\n"),
            ("status unknown", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1}]}\nstatus: {loadBalancer: {ingress: [{ip: 1.2.3.4, foo: 1}]}}\n"),
            ("status conditions", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1}]}\nstatus: {conditions: [], loadBalancer: {}}\n"),
            ("status bad ip", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1}]}\nstatus: {loadBalancer: {ingress: [{ip: 1.2.3}]}}\n"),
            ("top unknown", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 1}]}\nextra: 1\n"),
            ("two errors first unknown", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {type: Bad, ports: [{port: 0}], colour: red}\n"),
            ("two errors port", "apiVersion: v1\nkind: Service\nmetadata: {name: n}\nspec: {ports: [{port: 0, protocol: ICMP}]}\n"),
            ("several documents", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 1}]}\n---\nfoo\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\nspec: {ports: [{port: 0}]}\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {ports: [{port: 3}]}\n...\n"),
            ("scheduler trimmed", "apiVersion: v1\nkind: Service\nmetadata: {name: s, annotations: {ipvs.swift.dev/scheduler: ' sh ', ipvs.swift.dev/scheduler-flags: 'sh-port, onepacket,'}}\nspec: {ports: [{port: 1}]}\n"),
            ("scheduler unknown flag", "apiVersion: v1\nkind: Service\nmetadata: {name: s, annotations: {ipvs.swift.dev/scheduler-flags: fast}}\nspec: {ports: [{port: 1}]}\n"),
            ("scheduler numeric", "apiVersion: v1\nkind: Service\nmetadata: {name: s, annotations: {ipvs.swift.dev/scheduler: 7}}\nspec: {ports: [{port: 1}]}\n"),
            ("list service errors", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a, annotations: {ipvs.swift.dev/scheduler: nope}}, spec: {ports: [{port: 1}]}}\n- {apiVersion: v2, kind: EndpointSlice, metadata: {name: b, labels: {kubernetes.io/service-name: a}}}\n"),
            ("slice fqdn", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f, labels: {kubernetes.io/service-name: web}}\naddressType: FQDN\nendpoints: [{addresses: [example.com]}]\nports: [{port: 1}]\n"),
            ("slice ipv6", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv6\nendpoints: [{addresses: [\"fd00::1\", \"fd00::2\"], hostname: h, zone: z, hints: {}, targetRef: {kind: Pod}}]\n"),
            ("slice wrong family", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f, labels: {kubernetes.io/service-name: web}}\naddressType: IPv6\nendpoints: [{addresses: [10.0.0.1]}]\n"),
            ("slice bad type", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f, labels: {kubernetes.io/service-name: web}}\naddressType: IPv5\n"),
            ("slice no type", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\n"),
            ("slice no addresses", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [{nodeName: n}]\n"),
            ("slice addresses a scalar", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [{addresses: 10.0.0.1}]\n"),
            ("slice bad address", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.999]}]\n"),
            ("slice conditions unknown", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {alive: true}}]\n"),
            ("slice condition quoted", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: \"true\"}}]\n"),
            ("slice condition word", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {serving: maybe}}]\n"),
            ("slice conditions variants", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: NO, serving: On, terminating: TRUE}}, {addresses: [10.0.0.2], conditions: {ready: ~}}, {addresses: [10.0.0.3], conditions: {ready: [true]}}]\n"),
            ("slice duplicate ports", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nports: [{name: a, port: 1}, {name: a, port: 2}]\n"),
            ("slice port unknown", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nports: [{name: a, port: 1, targetPort: 2}]\n"),
            ("slice unknown", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nspec: {}\n"),
            ("slice endpoints a mapping", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: {a: 1}\n"),
            ("slice endpoint a scalar", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f}\naddressType: IPv4\nendpoints: [1]\n"),
            ("slice label not text", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: f, labels: {kubernetes.io/service-name: [a]}}\naddressType: IPv4\n"),
            ("endpoints different ports", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n- {addresses: [{ip: 10.0.0.1}], ports: [{port: 80}]}\n- {addresses: [{ip: 10.0.0.2}], ports: [{port: 81}]}\n"),
            ("endpoints ports later", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n- {addresses: [{ip: 10.0.0.1}]}\n- {addresses: [{ip: 10.0.0.2}], ports: [{port: 81, protocol: UDP}]}\n"),
            ("endpoints missing ip", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n- {addresses: [{hostname: h}]}\n"),
            ("endpoints not ready bad", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n- {notReadyAddresses: [{ip: 10.0.0.1, podName: p}]}\n"),
            ("endpoints duplicate ports", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n- {ports: [{port: 80}, {port: 81}]}\n"),
            ("endpoints subset unknown", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n- {addresses: [], extra: 1}\n"),
            ("endpoints subsets null", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets: ~\n"),
            ("endpoints unknown", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nspec: {}\n"),
            ("multi-line scalars", "apiVersion: v1\nkind: Service\nmetadata:\n  name: >-\n    folded\n  namespace: |-\n    lit\nspec:\n  ports:\n  - port: 1\n"),
            ("crlf", "apiVersion: v1\r\nkind: Service\r\nmetadata: {name: crlf}\r\nspec: {ports: [{port: 1}]}\r\n"),
            ("unicode", "apiVersion: v1\nkind: Service\nmetadata: {name: \"caf\u{E9}\", labels: {\"\u{1F600}\": \"\u{E9}t\u{E9}\"}}\nspec: {ports: [{port: 1, name: \"\u{E9}\"}]}\n"),
            ("value key", "apiVersion: v1\nkind: Service\nmetadata: {name: {!!value =: v}}\nspec: {ports: [{port: 1}]}\n"),
            ("merge key", "apiVersion: v1\nkind: Service\nmetadata: {name: m}\nspec: {<<: {a: 1}, ports: [{port: 1}]}\n"),
        ]
        // One change each of the full objects.
        let changes: [(String, String, String, String)] = [
            ("service", service, "    targetPort: 5353", "    targetPrt: 5353"),
            ("service", service, "port: 53", "port: 70000"),
            ("service", service, "protocol: UDP", "protocol: ICMP"),
            ("service", service, "clusterIP: 10.96.0.10", "clusterIP: 10.96.0.300"),
            ("service", service, "targetPort: http", "targetPort: Not_A_Name"),
            ("service", service, "    protocol: UDP\n    port: 53", "    protocol: TCP\n    port: 80"),
            ("service", service, "  - name: dns", "  - name: http"),
            ("service", service, "scheduler: mh", "scheduler: fastest"),
            ("service", service, "mh-fallback,mh-port", "sh-port"),
            ("service", service, "      timeoutSeconds: 600", "      timeoutSeconds: soon"),
            ("service", service, "  - ip: 192.0.2.1", "  - ip: 192.0.2.x"),
            ("service", service, "  namespace: shop\n", ""),
            ("slice", slice, "addressType: IPv4", "addressType: IPv6"),
            ("slice", slice, "terminating: Off", "terminating: 0"),
            ("slice", slice, "  nodeName: n1", "  nodeName: [n1]"),
            ("slice", slice, "{name: dns, protocol: UDP, port: 5353}", "{name: http, protocol: TCP, port: 5353}"),
            ("slice", slice, "{name: dns, protocol: UDP, port: 5353}", "{name: http, protocol: UDP, port: 5353}"),
            ("slice", slice, "  labels: {kubernetes.io/service-name: web}\n", ""),
            ("endpoints", endpoints, "ports: [{name: http, port: 80}]", "ports: [{name: http, port: 8080}]"),
            ("endpoints", endpoints, "{ip: 10.244.2.2}", "{ip: \"fd00::2\"}"),
            ("endpoints", endpoints, "{ip: 10.244.2.2}", "{ip: 10.244.2}"),
        ]
        for (index, (base, text, old, new)) in changes.enumerated() {
            precondition(text.contains(old), "change \(index) of \(base) finds no «\(old)»")
            cases.append(("\(base) change \(index)", text.replacingOccurrences(of: old, with: new)))
        }
        return cases
    }()

    /// The whole outcome as text, with dictionaries sorted. Objects are rendered without their
    /// location, which the recorded outcomes predate (ManifestDecoderTests checks locations).
    static func render(_ decoding: ManifestDecoding) -> String {
        var lines: [String] = []
        if decoding.unreadable { lines.append("unreadable") }
        let noLocation = ", locationValue: " + String(reflecting: NotCompared<ManifestLocation?>(nil))
        for object in decoding.objects {
            switch object {
            case .service(var service):
                let annotations = service.annotations.sorted { $0.key < $1.key }
                service.annotations = [:]
                service.location = nil
                // creationTimestamp came after the outcomes were recorded: shown only when set.
                lines.append("service \(service) annotations \(annotations)".replacingOccurrences(of: noLocation, with: "")
                    .replacingOccurrences(of: ", creationTimestamp: nil", with: ""))
            case .endpointSlice(var slice):
                slice.location = nil
                // lastChangeTriggerTime and the hints came after the outcomes were recorded: shown only when set.
                lines.append("slice \(slice)".replacingOccurrences(of: noLocation, with: "")
                    .replacingOccurrences(of: ", lastChangeTriggerTime: nil", with: "")
                    .replacingOccurrences(of: ", zoneHints: [], nodeHints: []", with: ""))
            }
        }
        for issue in decoding.issues {
            lines.append("issue \(issue.description) [document \(issue.document.map(String.init) ?? "-") line \(issue.line.map(String.init) ?? "-") object \(issue.object ?? "-") field \(issue.field ?? "-")]")
        }
        for identity in decoding.rejected.sorted() {
            lines.append("rejected \(identity) service \(decoding.rejectedServices[identity]?.description ?? "-")")
        }
        if decoding.rejectedServices.count != decoding.rejected.count {
            lines.append("rejectedServices \(decoding.rejectedServices.keys.sorted())")
        }
        return lines.joined(separator: "\n")
    }

    func testEveryCaseGivesItsRecordedOutcome() throws {
        var names: Set<String> = []
        var actual: [String] = []
        for (name, text) in Self.cases {
            XCTAssertTrue(names.insert(name).inserted, "two cases named \(name)")
            let outcome = Self.render(ManifestDecoder.decode(text, file: "f.yaml"))
            actual.append("        (\(String(reflecting: name)), \(String(reflecting: outcome))),")
            XCTAssertEqual(outcome, ManifestDecoderCorpusExpected.outcomes[name], "case «\(name)»")
        }
        if ProcessInfo.processInfo.environment["RECORD_DECODER_CORPUS"] != nil {
            print("RECORDED-CORPUS-BEGIN\n" + actual.joined(separator: "\n") + "\nRECORDED-CORPUS-END")
        }
        XCTAssertEqual(ManifestDecoderCorpusExpected.outcomes.count, Self.cases.count, "recorded outcomes without a case")
    }
}
