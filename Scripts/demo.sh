#!/usr/bin/env bash
# The demo: ipvs-agent balancing real traffic to pods on a real IPVS kernel.
#
# Run it with `make demo` (which builds, then runs this through Scripts/kernel-run.sh: in a fresh
# network namespace of the host when its kernel has IPVS, else in the kernel VM). It needs root.
#
# Pods are network namespaces joined to the node by veth pairs, each running a small HTTP server
# and a UDP echo server that answer with the pod's name. The agent reads Kubernetes manifests
# written below, programs IPVS and binds the ClusterIPs on kube-ipvs0; the node then sends
# requests to the ClusterIPs and counts which pod answered. The web Service has HTTP health checks:
# a pod whose server is killed gets weight 0 within their bound and its weight back once it restarts.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${DEMO_BIN:-$repo/.build/debug}
agent=$bin/ipvs-agent
ipvsctl=$bin/ipvsctl
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3)
for tool in "$agent" "$ipvsctl"; do
    [[ -x $tool ]] || { echo "demo: $tool is missing; run 'make demo' (it builds first)" >&2; exit 2; }
done

work=$(mktemp -d)
manifests=$work/manifests
mkdir -p "$manifests"
agent_pid=""
cleanup() {
    [[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
    for pod in pod-a pod-b pod-c; do ip netns pids "$pod" 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns del "$pod" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# Whether `ipvsctl ARGS` prints a line matching PATTERN (no grep -q: with pipefail, an early
# exit of grep would make the listing fail with SIGPIPE).
table_has() { local pattern=$1; shift; [[ $("$ipvsctl" "$@") =~ $pattern ]]; }
# Waits up to $1 seconds for `table_has` to hold (or, with "!" first, not to hold). When it does
# not, the demo fails here: it prints what it waited for, the table and the agent's log, and
# exits 1 (the EXIT trap cleans up).
wait_for() {
    local seconds=$1 negate=0; shift
    [[ $1 == "!" ]] && { negate=1; shift; }
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        if table_has "$@"; then ((negate)) || return 0; else ((negate)) && return 0; fi
        sleep 0.2
    done
    {
        echo "demo: FAILED: after ${seconds}s, \`ipvsctl ${*:2}\` still $( ((negate)) && echo "matches" || echo "does not match") /$1/"
        echo "\$ ipvsctl -Ln"; "$ipvsctl" -Ln | sed 's/^/  /' || true
        if [[ -f $work/agent.log ]]; then echo "agent log (last lines):"; tail -n 20 "$work/agent.log" | sed 's/^/  /'; fi
    } >&2
    exit 1
}
show_table() { echo "\$ ipvsctl -Ln"; "$ipvsctl" -Ln | sed 's/^/  /'; }

# Counts which pod answers N requests to URL.
spread() {
    local url=$1 n=$2
    for _ in $(seq "$n"); do curl -s --max-time 3 "$url" || echo "(no answer)"; echo; done | sort | uniq -c | sed 's/^/  /'
}
udp_spread() {
    local host=$1 port=$2 n=$3
    "$python" - "$host" "$port" "$n" <<'PY' | sort | uniq -c | sed 's/^/  /'
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"who?", (host, port))
    try:
        print(s.recvfrom(100)[0].decode())
    except OSError as e:
        print("(no answer)")
    s.close()
PY
}

step "Kernel: $(uname -r) ($IPVS_KERNEL), IPVS $(head -1 /proc/net/ip_vs | awk '{print $4}' || true)"

# Starts pod $1's servers (HTTP on :8080, UDP echo on :5353), both answering with the pod's name.
start_server() {
    local pod=$1
    ip netns exec "$pod" "$python" -c "
import http.server, socketserver, socket, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'$pod'
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353))
    while True:
        _, peer = s.recvfrom(100); s.sendto(b'$pod', peer)
threading.Thread(target=udp, daemon=True).start()
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(('0.0.0.0', 8080), H).serve_forever()
" &
}

step "Starting three pods (network namespaces with an HTTP server on :8080 and a UDP echo on :5353)"
index=0
for pod in pod-a pod-b pod-c; do
    index=$((index + 1))
    address=10.244.0.$((10 + index))
    ip netns add "$pod"
    ip link add "veth-$pod" type veth peer name eth0 netns "$pod"
    ip link set "veth-$pod" up
    ip route add "$address/32" dev "veth-$pod"
    ip -n "$pod" link set lo up
    ip -n "$pod" addr add "$address/24" dev eth0
    ip -n "$pod" link set eth0 up
    ip -n "$pod" route add default dev eth0
    start_server "$pod"
    echo "  $pod  $address"
done
sleep 1

write_manifests() {   # $@: the pods whose endpoints are ready
    local endpoints="" pod address
    for pod in "$@"; do
        case $pod in pod-a) address=10.244.0.11 ;; pod-b) address=10.244.0.12 ;; pod-c) address=10.244.0.13 ;; esac
        endpoints+="- addresses: [$address]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: demo-node
  targetRef: {kind: Pod, name: $pod, namespace: demo}
"
    done
    # Written aside and renamed into place, as configuration tools (and kubelet's ConfigMap
    # volumes) do, so the agent never reads a half-written file.
    cat >"$work/web.yaml" <<YAML
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
  annotations:
    ipvs.swift.dev/health-check: http    # GET / every 1s, timeout 500ms, fall 2, rise 2
    ipvs.swift.dev/health-path: /
spec:
  clusterIP: 10.96.0.80
  clusterIPs: [10.96.0.80]
  selector: {app: web}
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: http}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
${endpoints}ports:
- {name: http, protocol: TCP, port: 8080}
YAML
    cat >"$work/dns.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  clusterIP: 10.96.0.53
  clusterIPs: [10.96.0.53]
  ports:
  - {name: echo, protocol: UDP, port: 53, targetPort: 5353}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-xyz34
  namespace: demo
  labels: {kubernetes.io/service-name: echo}
addressType: IPv4
endpoints:
${endpoints}ports:
- {name: echo, protocol: UDP, port: 5353}
YAML
    mv "$work/web.yaml" "$work/dns.yaml" "$manifests/"
}

step "Manifests: Service web (TCP 10.96.0.80:80 -> named port http, HTTP health checks) and echo (UDP 10.96.0.53:53), three ready pods"
write_manifests pod-a pod-b pod-c
sed 's/^/  /' "$manifests/web.yaml"

step "What the agent would do (--dry-run, in ipvsadm -S form)"
"$agent" --manifests "$manifests" --node-name demo-node --dry-run 2>&1 | sed 's/^/  /'

step "Starting ipvs-agent (watching the manifests, resync every 2s, drain timeout 10s)"
"$agent" --manifests "$manifests" --node-name demo-node --sync-period 2s --drain-timeout 10s \
    --state-file "$work/state.json" --log-level info >"$work/agent.log" 2>&1 &
agent_pid=$!
wait_for 30 '10\.244\.0\.13:5353' -Ln
show_table
echo "\$ ip addr show kube-ipvs0"
ip -brief addr show kube-ipvs0 | sed 's/^/  /'

step "9 HTTP requests to http://10.96.0.80/ (round robin over the ready pods)"
spread http://10.96.0.80/ 9
step "6 UDP datagrams to 10.96.0.53:53"
udp_spread 10.96.0.53 53 6

step "Three long-lived TCP connections (one lands on each pod), held open for 8 seconds"
"$python" - <<'PY' &
import socket, time
held = []
for _ in range(3):
    s = socket.create_connection(("10.96.0.80", 80), timeout=5)
    held.append(s)
time.sleep(8)
PY
holder=$!
sleep 1
show_table

step "pod-c leaves the EndpointSlice: the agent sets its weight to 0 and lets its connection drain"
write_manifests pod-a pod-b
wait_for 30 '10\.244\.0\.13:8080 +Masq +0 ' -Ln -t 10.96.0.80:80
show_table
step "9 HTTP requests while pod-c drains: no new connections reach it"
spread http://10.96.0.80/ 9
echo "  (the held connections close; the agent then deletes pod-c)"
wait "$holder" || true
wait_for 40 ! '10\.244\.0\.13:8080' -Ln -t 10.96.0.80:80
show_table

step "Someone deletes the web service behind the agent's back (ipvsadm -D); the next resync repairs it"
ipvsadm -D -t 10.96.0.80:80
echo "  \$ ipvsadm -D -t 10.96.0.80:80"
wait_for 30 '10\.96\.0\.80:80' -Ln
show_table

step "pod-b's HTTP server dies (the pod stays in the EndpointSlice): its health checks fail"
echo "  A backend failing 'fall' checks in a row gets weight 0; the documented bound is"
echo "  fall x interval + timeout = 2 x 1s + 500ms = 2.5 s (README, HealthCheck)."
ip netns pids pod-b | xargs -r kill
killed_at=$EPOCHREALTIME
wait_for 10 '10\.244\.0\.12:8080 +Masq +0 ' -Ln -t 10.96.0.80:80
elapsed_ms=$(awk -v a="$killed_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
echo "  pod-b at weight 0 about ${elapsed_ms} ms after its server was killed (seen by polling the table every 200 ms)"
if ((elapsed_ms > 2500 + 1500)); then
    echo "demo: FAILED: pod-b took ${elapsed_ms} ms to reach weight 0, over the 2.5 s bound plus 1.5 s for polling and a busy machine" >&2
    exit 1
fi
show_table
echo "\$ ipvsctl status --service demo/web"
"$ipvsctl" status --agent-address 127.0.0.1:10249 --service demo/web | sed 's/^/  /'
[[ $("$ipvsctl" status --agent-address 127.0.0.1:10249 --service demo/web) =~ 10\.244\.0\.12:8080\ +0\ +http\ +down ]] ||
    { echo "demo: FAILED: ipvsctl status does not show pod-b down" >&2; exit 1; }
step "6 HTTP requests while pod-b is down: all reach pod-a"
spread http://10.96.0.80/ 6

step "pod-b's server restarts: after 'rise' (2) good checks it gets its weight back"
start_server pod-b
wait_for 15 '10\.244\.0\.12:8080 +Masq +1 ' -Ln -t 10.96.0.80:80
show_table
"$ipvsctl" status --agent-address 127.0.0.1:10249 --service demo/web | sed 's/^/  /'

step "The agent's metrics"
curl -s http://127.0.0.1:10249/metrics | grep -E '^ipvs_(agent_(operations|sync|drift|services|real_servers)|health_(transitions_total|backend_up))' | head -16 | sed 's/^/  /' || true

step "SIGTERM: the agent stops and leaves the kernel state in place"
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
"$ipvsctl" -Ln | sed 's/^/  /'

step "ipvs-agent --cleanup removes what it owns, and nothing else"
ipvsadm -A -t 10.1.2.3:80 -s rr   # somebody else's rule
"$agent" --cleanup --state-file "$work/state.json" 2>&1 | sed 's/^/  /'
show_table

step "Agent log (last lines)"
tail -n 15 "$work/agent.log" | sed 's/^/  /'
echo
echo "demo: done"
