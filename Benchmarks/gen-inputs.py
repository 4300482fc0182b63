#!/usr/bin/env python3
"""Writes the deterministic inputs of one `make bench` size into a folder.

    gen-inputs.py --services N --reals M OUT

OUT/rules            `ipvsadm -R` input: N TCP services 10.96.x.y:80 (rr), each with M NAT real
                     servers 10.244+.x.y:8080 of weight 1 (every pod address distinct)
OUT/manifests/*.yaml the same as Kubernetes objects for ipvs-agent: one v1 Service and one
                     discovery.k8s.io/v1 EndpointSlice per service, 100 services per file
OUT/change/*.yaml    one of those files with one endpoint added to the middle service
OUT/change.env       CHANGE_FILE (its name), CHANGE_VIP and CHANGE_REAL (the endpoint added)

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


def service_yaml(index, pods):
    name = f"svc-{index:05d}"
    vip = service_address(index)
    endpoints = "".join(f"- addresses: [{pod}]\n  conditions: {{ready: true}}\n" for pod in pods)
    return (
        "---\n"
        "apiVersion: v1\n"
        "kind: Service\n"
        f"metadata: {{name: {name}, namespace: bench}}\n"
        "spec:\n"
        f"  clusterIP: {vip}\n"
        f"  clusterIPs: [{vip}]\n"
        f"  selector: {{app: {name}}}\n"
        "  ports:\n"
        "  - {name: http, protocol: TCP, port: 80, targetPort: 8080}\n"
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
        "- {name: http, protocol: TCP, port: 8080}\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, required=True)
    parser.add_argument("--reals", type=int, required=True)
    parser.add_argument("out")
    args = parser.parse_args()
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
