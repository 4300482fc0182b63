#!/usr/bin/env bash
# Checks the real-kernel harness end to end through Scripts/kernel-run.sh:
# IPVS services with every scheduler, a dummy interface, a pod network
# namespace on a veth pair serving HTTP, reached directly and through an IPVS
# NAT virtual address, and the exit status coming back. All traffic stays
# inside the namespaces the test creates. Usage: Scripts/vm/selftest.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

# shellcheck disable=SC2016 # runs inside the test kernel
inner='
set -eu
fail() { echo "selftest: FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3; [ -x "$py" ] || py=python3
echo "selftest: kernel $(uname -r) (IPVS_KERNEL=${IPVS_KERNEL:-?})"
ipvsadm -A -t 10.0.0.1:80 -s rr
ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m
port=1000
for s in rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf; do
  port=$((port + 1))
  ipvsadm -A -t "10.1.0.1:$port" -s "$s" || fail "scheduler $s"
done
ip link add kube-ipvs0 type dummy || fail "dummy interface"
ip addr add 10.96.0.10/32 dev kube-ipvs0

ip netns add selftest-pod
trap "ip netns del selftest-pod 2>/dev/null || true" EXIT
ip link add st-host type veth peer name st-pod
ip link set st-pod netns selftest-pod
ip addr add 10.244.0.1/24 dev st-host
ip link set st-host up
ip -n selftest-pod addr add 10.244.0.2/24 dev st-pod
ip -n selftest-pod link set st-pod up
ip -n selftest-pod link set lo up
ip -n selftest-pod route add default via 10.244.0.1
www=$(mktemp -d)
echo "hello from the pod" >"$www/index.html"
ip netns exec selftest-pod "$py" -m http.server 8080 --bind 10.244.0.2 --directory "$www" >/dev/null 2>&1 &
server=$!
trap "kill $server 2>/dev/null; ip netns del selftest-pod 2>/dev/null || true" EXIT
get() { "$py" -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())" "$1"; }
ok=""
for _ in $(seq 100); do
  if ok=$(get http://10.244.0.2:8080/ 2>/dev/null); then break; fi
  sleep 0.3
done
[ "$ok" = "hello from the pod" ] || fail "pod not reachable over veth"
ipvsadm -A -t 10.96.0.10:80 -s rr
ipvsadm -a -t 10.96.0.10:80 -r 10.244.0.2:8080 -m
[ "$(get http://10.96.0.10:80/)" = "hello from the pod" ] || fail "IPVS NAT to the pod"
echo "selftest: $(ipvsadm -Ln | grep -c "^TCP") services, pod reachable directly and through IPVS"
exit 3
'

start=$(date +%s)
set +e
"$repo/Scripts/kernel-run.sh" bash -c "$inner" </dev/null
rc=$?
set -e
if [ "$rc" != 3 ]; then
  echo "selftest: FAILED (exit status $rc, expected 3)" >&2
  exit 1
fi
echo "selftest: ok, exit status passed through, $(($(date +%s) - start)) s"
