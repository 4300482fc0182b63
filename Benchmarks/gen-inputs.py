#!/usr/bin/env python3
"""Writes the deterministic inputs of one `make bench` size into a folder.

    gen-inputs.py --services N --reals M OUT

OUT/rules            `ipvsadm -R` input: N TCP services 10.96.x.y:80 (rr), each with M NAT real
                     servers 10.244+.x.y:8080 of weight 1 (every pod address distinct)
OUT/manifests/*.yaml the same as Kubernetes objects for ipvs-agent: one v1 Service and one
                     discovery.k8s.io/v1 EndpointSlice per service, 100 services per file
OUT/change/*.yaml    one of those files with one endpoint added to the middle service
OUT/change.env       CHANGE_FILE (its name), CHANGE_VIP and CHANGE_REAL (the endpoint added)

    gen-inputs.py --health-backends N OUT

The inputs of the agent-with-health-checks workload instead: N backends 10.203.(i / 250).(i % 250 + 1)
(health-backends.c's addresses with base 10.203.0.0), port 18080, as the endpoints of N / 100 Services
(100 backends each) annotated for TCP health checks every 1 s, timeout 500 ms, fall 2, rise 2:
OUT/manifests/*.yaml the Services and EndpointSlices, 100 Services per file
OUT/victims          the 1% of the backends killed (at least 1), spread evenly as health-bench spreads
                     them: one line "INDEX VIP:80 BACKEND:18080" each
OUT/keepalived.conf  the same Services for keepalived, the reference checker: one virtual_server each (NAT,
                     rr), its backends checked by TCP_CHECK every 1 s (delay_loop), connect_timeout 0.5 s,
                     one retry 1 s later (two failures, as fall 2), quiesced on failure (inhibit_on_failure)

The same N and M always give the same bytes.
"""
import argparse
import os

SERVICES_PER_FILE = 100


def service_address(index):
    return f"10.96.{index // 250}.{index % 250 + 1}"


def pod_address(index):
    # 62,500 pods per /16 from 10.244.0.0 on, never .0 or .255 in the last two octets.
    return f"10.{244 + index // 62500}.{(index % 62500) // 250 + 1}.{index % 250 + 1}"


HEALTH_PORT = 18080
HEALTH_PER_SERVICE = 100
HEALTH_ANNOTATIONS = {
    "ipvs.swift.dev/health-check": "tcp", "ipvs.swift.dev/health-interval": "1s",
    "ipvs.swift.dev/health-timeout": "500ms", "ipvs.swift.dev/health-fall": "2", "ipvs.swift.dev/health-rise": "2",
}


def backend_address(index):
    # health-backends.c with base 10.203.0.0
    return f"10.203.{index // 250}.{index % 250 + 1}"


def service_yaml(index, pods, port=8080, annotations=None):
    name = f"svc-{index:05d}"
    vip = service_address(index)
    endpoints = "".join(f"- addresses: [{pod}]\n  conditions: {{ready: true}}\n" for pod in pods)
    metadata = f"metadata: {{name: {name}, namespace: bench}}\n"
    if annotations:
        metadata = (f"metadata:\n  name: {name}\n  namespace: bench\n  annotations:\n"
                    + "".join(f"    {key}: \"{value}\"\n" for key, value in annotations.items()))
    return (
        "---\n"
        "apiVersion: v1\n"
        "kind: Service\n"
        f"{metadata}"
        "spec:\n"
        f"  clusterIP: {vip}\n"
        f"  clusterIPs: [{vip}]\n"
        f"  selector: {{app: {name}}}\n"
        "  ports:\n"
        f"  - {{name: http, protocol: TCP, port: 80, targetPort: {port}}}\n"
        "---\n"
        "apiVersion: discovery.k8s.io/v1\n"
        "kind: EndpointSlice\n"
        "metadata:\n"
        f"  name: {name}-bench\n"
        "  namespace: bench\n"
        f"  labels: {{kubernetes.io/service-name: {name}}}\n"
        "addressType: IPv4\n"
        "endpoints:\n"
        f"{endpoints}"
        "ports:\n"
        f"- {{name: http, protocol: TCP, port: {port}}}\n"
    )


def health_inputs(backends, out):
    """The agent-with-health-checks inputs (see the docstring)."""
    services = (backends + HEALTH_PER_SERVICE - 1) // HEALTH_PER_SERVICE
    os.makedirs(os.path.join(out, "manifests"), exist_ok=True)
    members = [range(s * HEALTH_PER_SERVICE, min((s + 1) * HEALTH_PER_SERVICE, backends)) for s in range(services)]
    for first in range(0, services, SERVICES_PER_FILE):
        name = f"services-{first // SERVICES_PER_FILE:04d}.yaml"
        with open(os.path.join(out, "manifests", name), "w") as f:
            f.writelines(service_yaml(s, [backend_address(i) for i in members[s]], HEALTH_PORT, HEALTH_ANNOTATIONS)
                         for s in range(first, min(first + SERVICES_PER_FILE, services)))
    with open(os.path.join(out, "keepalived.conf"), "w") as f:
        f.write("global_defs {\n    router_id bench\n}\n")
        for s in range(services):
            f.write(f"virtual_server {service_address(s)} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n"
                    "    protocol TCP\n    inhibit_on_failure\n")
            for i in members[s]:
                f.write(f"    real_server {backend_address(i)} {HEALTH_PORT} {{\n        weight 1\n"
                        "        TCP_CHECK {\n            connect_timeout 0.5\n            retry 1\n"
                        "            delay_before_retry 1\n        }\n    }\n")
            f.write("}\n")
    # The victims as health-bench picks them: 1% (at least 1), every (backends / count)-th.
    count = max(1, backends // 100)
    stride = max(1, backends // count)
    with open(os.path.join(out, "victims"), "w") as f:
        for k in range(count):
            i = (k * stride) % backends
            f.write(f"{i} {service_address(i // HEALTH_PER_SERVICE)}:80 {backend_address(i)}:{HEALTH_PORT}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int)
    parser.add_argument("--reals", type=int)
    parser.add_argument("--health-backends", type=int)
    parser.add_argument("out")
    args = parser.parse_args()
    if args.health_backends is not None:
        if not 1 <= args.health_backends <= 62500:
            parser.error("--health-backends must be 1...62500")
        health_inputs(args.health_backends, args.out)
        return
    if args.services is None or args.reals is None:
        parser.error("--services and --reals are required (or --health-backends)")
    if not 1 <= args.services <= 62500 or not 1 <= args.reals <= 20:
        parser.error("--services must be 1...62500 and --reals 1...20")

    pods = [[i * args.reals + j for j in range(args.reals)] for i in range(args.services)]
    os.makedirs(os.path.join(args.out, "manifests"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "change"), exist_ok=True)

    with open(os.path.join(args.out, "rules"), "w") as rules:
        for i in range(args.services):
            vip = service_address(i)
            rules.write(f"-A -t {vip}:80 -s rr\n")
            for p in pods[i]:
                rules.write(f"-a -t {vip}:80 -r {pod_address(p)}:8080 -m -w 1\n")

    changed = args.services // 2
    extra = args.services * args.reals  # the first pod address no service uses
    for first in range(0, args.services, SERVICES_PER_FILE):
        name = f"services-{first // SERVICES_PER_FILE:04d}.yaml"
        indexes = range(first, min(first + SERVICES_PER_FILE, args.services))
        with open(os.path.join(args.out, "manifests", name), "w") as f:
            f.writelines(service_yaml(i, [pod_address(p) for p in pods[i]]) for i in indexes)
        if changed in indexes:
            with open(os.path.join(args.out, "change", name), "w") as f:
                f.writelines(service_yaml(i, [pod_address(p) for p in pods[i] + ([extra] if i == changed else [])])
                             for i in indexes)
            with open(os.path.join(args.out, "change.env"), "w") as f:
                f.write(f"CHANGE_FILE={name}\nCHANGE_VIP={service_address(changed)}:80\n"
                        f"CHANGE_REAL={pod_address(extra)}:8080\n")


if __name__ == "__main__":
    main()
