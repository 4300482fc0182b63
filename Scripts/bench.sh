#!/usr/bin/env bash
# `make bench`: our tools side by side with ipvsadm, moby/ipvs (kube-proxy's library) and a libnl C
# floor, on one boot of a real IPVS kernel; writes docs/benchmarks.md and docs/benchmarks.png.
#
# Usage: Scripts/bench.sh [--smoke] [--sizes "1000:3 10000:2 30000:2"] [--reps N] [--slow-max N] [--no-docs]
#                         [--health-size N] [--health-reps N] [--health-only] [--health-topology both|veth|loopback]
#                         [--agent-health-size N] [--agent-health-only] [--cold-only "TOOL..."]
#                         [--daemon-only "AGENT..."] [--api-only] [--api-samples N] [--api-rate EVENTS]
#                         [--first-reps N]
#
#   (default)  the full benchmark: release build in .build-bench; cold programming of 1,000 /
#              10,000 / 30,000 services x 10 real servers with 3 / 2 / 2 repetitions (--sizes,
#              SERVICES:REPETITIONS), ipvsadm, moby/ipvs and the agent up to 10,000 (--slow-max:
#              minutes per run in the emulator); listings and the agent daemon at 10,000 with 3
#              repetitions (--reps); then the report is printed and written to docs/
#   --smoke    every tool path once on 10 services x 2 real servers (debug build in $BUILD_DIR,
#              default .build), no docs; exits non-zero if any path breaks. For `make test`.
#   --no-docs  print the report but leave docs/ alone
#   --health-size N, --health-reps N
#              the health-check workload, run on the host after the VM (checks need no IPVS, and host
#              CPU numbers are real rather than emulated): HealthChecker against N TCP backends
#              checked every second, 1% of them killed, and the C floor on the same backends
#              (default 10,000 x 3; smoke 200 x 1)
#   --health-only  only the health-check workload: no VM, report printed, docs/ left alone
#   --health-topology both|veth|loopback
#              where the health workload's backends live (the checker and the C floor always share it):
#              veth in a network namespace behind a veth pair, like pods, with the pod side's receive
#              work steered (RPS) to the last CPU, where the backends run, and the checker and the floor
#              pinned to the other CPUs: what the checker itself costs, the issue's measure; loopback on
#              the host's 127.1.0.0/16, so the checker's CPU also does the backends' half of every
#              handshake: the bound for pods on the checker's own node; both (default): veth, then
#              loopback reported beside it (see health_topology_up and Benchmarks/README.md)
#   --agent-health-size N
#              the agent with health checks, in the VM after the agent daemon workloads (same boot):
#              ipvs-agent checking N TCP backends (in a network namespace behind a veth pair) as the
#              endpoints of N / 100 annotated Services every second; its CPU per check, RSS and each
#              killed backend's kill -> weight 0 in the kernel; then health-bench (the library alone)
#              and keepalived (TCP_CHECK) on the same backends, for the agent / library and agent /
#              keepalived ratios of CPU per check. Emulated: read the ratios
#              (default 300: at 1,000 the agent saturated its emulated core; smoke 20; 0: not run)
#   --agent-health-only  only that workload (one VM boot, no host health workload): report printed,
#              docs/ left alone
#   --cold-only "TOOL..."  cold programming alone at --sizes, of these tools only, taking turns in
#              each repetition (floor, floor-vips, ipvsctl, ipvsadm, moby-ipvs, moby-ipvs-vips,
#              moby-ipvs-kube-proxy, ipvs-agent); each run's time printed, docs/ left alone. E.g.
#              --sizes 10000:4 --cold-only "floor-vips ipvs-agent": issue 4's cold-start ratio alone
#   --daemon-only "AGENT..."  the agent daemon workload alone (start to synced, no-op resyncs, one
#              endpoint added and removed at --agent-size services, --reps times), with each of these
#              builds in turn: ipvs-agent, and ipvs-agent-base with BENCH_BASE_AGENT; docs/ left alone
#   --api-samples N, --api-rate EVENTS
#              the agent following an API server, in the VM after the agent daemon workload (same boot):
#              api-bench (Benchmarks/api: the tests' TestAPIServer over TLS with a bearer token) serves
#              the daemon workload's Services and EndpointSlices (--agent-size, 10,000 x 10) and
#              ipvs-agent --kubeconfig programs them from an empty table (start to every Service
#              programmed, against the files daemon workload's; RSS); then N one-endpoint changes, each
#              timed from its watch event sent to the kernel updated (ipvs-wait), while EVENTS other
#              watch events a second change other Services' endpoints: p50/p99 (default 200 changes at
#              100 events/s; smoke 2 at 5 events/s; --api-samples 0: not run)
#   --first-reps N  the two first programmings (files, API server) N times each, alternated in the same
#              boot, each in a fresh network namespace; their medians are compared (default 3; smoke 2)
#   --api-only  the files daemon workload (the reference) and that workload alone (one VM boot, at
#              --sizes' largest size or 10,000): each number printed, docs/ left alone
#
# Environment: BENCH_BASE_AGENT (an earlier build of ipvs-agent, run as the tool ipvs-agent-base:
# --cold-only "floor-vips ipvs-agent ipvs-agent-base" compares two builds in one boot, taking turns;
# --daemon-only "ipvs-agent ipvs-agent-base" runs the daemon workload with each),
# BUILD_DIR (scratch path of the Swift build), BENCH_CONFIGURATION (debug or release;
# the defaults are above), IPVS_VM_MEMORY / IPVS_VM_CPUS /
# IPVS_VM_TIMEOUT (the VM, see Scripts/vm/README.md). Installs the Debian packages it needs.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

smoke=0 docs=1 sizes="1000:3 10000:2 30000:2" reps=3 reals=10 slow_max=10000 quick=()
health_size="" health_reps="" health_only=0 health_topologies=both
agent_health_size="" agent_health_only=0 cold_only="" daemon_only=""
api_samples="" api_rate="" api_only=0 first_reps=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; shift ;;
    --sizes) sizes=${2:?--sizes needs a list}; shift 2 ;;
    --reps) reps=${2:?--reps needs a number}; shift 2 ;;
    --slow-max) slow_max=${2:?--slow-max needs a number}; shift 2 ;;
    --no-docs) docs=0; shift ;;
    --health-size) health_size=${2:?--health-size needs a number}; shift 2 ;;
    --health-reps) health_reps=${2:?--health-reps needs a number}; shift 2 ;;
    --health-only) health_only=1 docs=0; shift ;;
    --agent-health-size) agent_health_size=${2:?--agent-health-size needs a number}; shift 2 ;;
    --agent-health-only) agent_health_only=1 docs=0; shift ;;
    --cold-only) cold_only=${2:?--cold-only needs tools}; docs=0; shift 2 ;;
    --daemon-only) daemon_only=${2:?--daemon-only needs agent builds}; docs=0; shift 2 ;;
    --api-only) api_only=1 docs=0; shift ;;
    --api-samples) api_samples=${2:?--api-samples needs a number}; shift 2 ;;
    --api-rate) api_rate=${2:?--api-rate needs a number}; shift 2 ;;
    --first-reps) first_reps=${2:?--first-reps needs a number}; shift 2 ;;
    --health-topology) health_topologies=${2:?--health-topology needs both, veth or loopback}; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "bench.sh: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$smoke" = 1 ]; then
  sizes=10:1 reps=1 reals=2 docs=0 quick=(--quick)
  build_dir=${BUILD_DIR:-.build} configuration=${BENCH_CONFIGURATION:-debug}
  agent_size=10
  health_size=${health_size:-200} health_reps=${health_reps:-1} health_time=(--warmup 2 --window 3)
  agent_health_size=${agent_health_size:-20} agent_health_time="2 3"
  api_samples=${api_samples:-2} api_rate=${api_rate:-5} first_reps=${first_reps:-2}
else
  build_dir=${BUILD_DIR:-.build-bench} configuration=${BENCH_CONFIGURATION:-release}
  agent_size=10000
  case " $sizes " in *" 10000:"*) ;; *) agent_size=$(echo "$sizes" | tr ' ' '\n' | cut -d: -f1 | sort -n | tail -n1) ;; esac
  health_size=${health_size:-10000} health_reps=${health_reps:-3} health_time=(--warmup 5 --window 10)
  agent_health_size=${agent_health_size:-300} agent_health_time="10 30"
  api_samples=${api_samples:-200} api_rate=${api_rate:-100} first_reps=${first_reps:-3}
fi
[[ "$api_samples" =~ ^[0-9]+$ && "$api_rate" =~ ^[0-9]+$ ]] && [ "$api_rate" -gt 0 ] || { echo "bench.sh: --api-samples takes a number and --api-rate one above 0" >&2; exit 2; }
[[ "$first_reps" =~ ^[0-9]+$ ]] && [ "$first_reps" -gt 0 ] || { echo "bench.sh: --first-reps takes a number above 0" >&2; exit 2; }
[ "$api_only" = 0 ] || agent_health_size=0
[ "$api_only" = 0 ] || [ "$api_samples" -gt 0 ] || { echo "bench.sh: --api-only needs --api-samples above 0" >&2; exit 2; }
[[ "$health_size" =~ ^[0-9]+$ && "$health_reps" =~ ^[0-9]+$ ]] || { echo "bench.sh: --health-size and --health-reps take numbers" >&2; exit 2; }
[[ "$agent_health_size" =~ ^[0-9]+$ ]] && [ "$agent_health_size" -le 62500 ] || { echo "bench.sh: --agent-health-size takes a number up to 62500" >&2; exit 2; }
[ "$agent_health_only" = 0 ] || [ "$agent_health_size" -gt 0 ] || { echo "bench.sh: --agent-health-only needs --agent-health-size above 0" >&2; exit 2; }
case "$health_topologies" in
  both) health_topologies="veth loopback" ;;
  loopback | veth) ;;
  *) echo "bench.sh: --health-topology takes both, veth or loopback" >&2; exit 2 ;;
esac

step() { printf '==> %s\n' "$*" >&2; }

# ---- host packages -------------------------------------------------------------------------------

packages=(golang-go golang-github-docker-docker-dev gcc libc6-dev pkg-config libnl-3-dev libnl-genl-3-dev ipvsadm curl keepalived)
[ "$smoke" = 1 ] || packages+=(gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- builds --------------------------------------------------------------------------------------

# The release build is the one make install and make deb ship (the Swift runtime linked in), in the
# same folder, so the binaries measured are the binaries shipped and they are compiled once.
# The source measured, named before it is built (a commit made while the run goes on is not it).
source_built=$(git describe --always --dirty 2>/dev/null || echo unknown)
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
swift_build=(swift build -c "$configuration" --scratch-path "$build_dir")
[ "$configuration" != release ] || swift_build+=(--static-swift-stdlib)
step "building health-bench ($configuration, $build_dir)"
"${swift_build[@]}" --product health-bench >&2
products=$("${swift_build[@]}" --show-bin-path)
mkdir -p "$build_dir/bench/bin"
bench=$(cd "$build_dir/bench" && pwd)
bin=$bench/bin
cp "$products/health-bench" "$bin/"
cc -O2 -Wall -Wextra -o "$bin/health-backends" Benchmarks/health/health-backends.c
cc -O2 -Wall -Wextra -o "$bin/health-floor" Benchmarks/health/health-floor.c

# Where the health workload's backends live. On loopback every handshake is done twice by the host
# that runs the checker, and mostly in the checker's own context: its connect() runs the backend's
# SYN handling and sends the SYN-ACK in its softirq, which (tick-based CPU accounting) is charged to
# the checker. On a real node the backends are pods (or other nodes) behind veth pairs or a NIC: their
# half of the handshake runs in their own network stack, on whichever CPU takes the packet (a NIC's
# interrupt, RPS), not on the checker's syscall path. --health-topology veth reproduces that: the
# backends listen in a network namespace behind a veth pair (10.203.0.0/16, all local there), the pod
# side's receive queue steers its softirq work with RPS to the last CPU, the backends run on that CPU,
# and health-bench (so the checker and the C floor it starts, under identical conditions) is pinned to
# the other CPUs. What remains charged to the checker is what it costs on a node: its system calls,
# building and sending its own packets, and its userspace. Needs root and at least 2 CPUs.
# The pod side's CPU also runs the backends, and on a shared host it can stall for tens of
# milliseconds; its receive backlog (net.core.netdev_max_backlog, 1,000 packets by default) then
# overflows and drops SYNs, which the checker rightly reports as timeouts ("reported down but not
# killed"). A backend's host keeps up with 30,000 packets a second, so the pod side gets a deeper
# backlog while the workload runs (restored after).
health_netns="" health_host_if="" health_pin=() health_server_args=() health_backlog="" health_prefix=10.203.0.0/16
health_topology_up() {
  health_server_args=() health_pin=()
  [ "$health_topology" = veth ] || return 0
  local cpus; cpus=$(nproc)
  [ "$cpus" -ge 2 ] || { echo "bench.sh: --health-topology veth needs at least 2 CPUs" >&2; return 1; }
  if [ -n "$(ip route show "$health_prefix")" ]; then
    echo "bench.sh: the veth topology routes $health_prefix to its backends, but this host routes it already:" \
      "$(ip route show "$health_prefix" | head -n1). Remove that route (a namespace left by an interrupted run:" \
      "ip netns list), or use --health-topology loopback." >&2
    return 1
  fi
  health_netns=ipvs-bench-health-$$ health_host_if=ibh$$h
  local pod_if=ibh$$p pod_cpu=$((cpus - 1))
  ip netns add "$health_netns"
  ip link add "$health_host_if" type veth peer name "$pod_if" netns "$health_netns"
  ip addr add 169.254.203.1/30 dev "$health_host_if"
  ip link set "$health_host_if" up
  ip -n "$health_netns" link set lo up
  ip -n "$health_netns" addr add 169.254.203.2/30 dev "$pod_if"
  ip -n "$health_netns" link set "$pod_if" up
  ip -n "$health_netns" route add local "$health_prefix" dev lo
  ip route add "$health_prefix" via 169.254.203.2 dev "$health_host_if"
  ip netns exec "$health_netns" sh -c "printf '%x' $((1 << pod_cpu)) >/sys/class/net/$pod_if/queues/rx-0/rps_cpus"
  health_backlog=$(cat /proc/sys/net/core/netdev_max_backlog)
  echo 30000 >/proc/sys/net/core/netdev_max_backlog
  health_server_args=(--base-address "${health_prefix%/*}" --server-launcher "ip netns exec $health_netns taskset -c $pod_cpu")
  health_pin=(taskset -c "0-$((pod_cpu - 1))")
}
# Removes the namespace and the veth pair (deleting either end deletes both, and the route); safe to
# call twice and when nothing was set up.
health_topology_down() {
  [ -z "$health_backlog" ] || echo "$health_backlog" >/proc/sys/net/core/netdev_max_backlog
  health_backlog=""
  [ -n "$health_netns" ] || return 0
  ip link del "$health_host_if" 2>/dev/null || true
  ip netns del "$health_netns" 2>/dev/null || true
  health_netns="" health_host_if=""
}
trap 'exit 130' INT TERM

# The health-check workload on the host, in each topology of $health_topologies: appends to
# $1/results.tsv (workload "health" for the first topology, "health-TOPOLOGY" for the others),
# failures to $1/errors.txt.
run_health() {
  local rep workload
  [ "$health_reps" -gt 0 ] || return 0
  printf 'health_load\t%s (before the health workload), 1/5/15-minute load averages\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$1/environment.tsv"
  printf 'health_topology\t%s\n' "${health_topologies%% *}" >>"$1/environment.tsv"
  for health_topology in $health_topologies; do
    step "health checks: $health_size TCP backends, topology $health_topology, $health_reps repetition(s)"
    workload=health
    [ "$health_topology" = "${health_topologies%% *}" ] || workload=health-$health_topology
    health_topology_up
    for rep in $(seq 1 "$health_reps"); do
      if ! "${health_pin[@]}" "$bin/health-bench" --server "$bin/health-backends" --floor "$bin/health-floor" --backends "$health_size" \
        "${health_server_args[@]}" "${health_time[@]}" --repetition "$rep" --tsv 2>>"$1/health.log" |
        sed "s/^health\t/$workload\t/" >>"$1/results.tsv"; then
        echo "health-bench at $health_size backends ($health_topology) failed (repetition $rep): $(tail -n1 "$1/health.log")" >>"$1/errors.txt"
      fi
    done
    health_topology_down
  done
}

if [ "$health_only" = 1 ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"; health_topology_down' EXIT
  printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$out/environment.tsv"
  printf 'host_cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" >>"$out/environment.tsv"
  printf 'host_cpus\t%s\n' "$(nproc)" >>"$out/environment.tsv"
  printf 'source\t%s\n' "$source_built" >>"$out/environment.tsv"
  run_health "$out"
  cat "$out/results.tsv"
  [ ! -s "$out/errors.txt" ] || { sed 's/^/bench: /' "$out/errors.txt" >&2; exit 1; }
  /usr/bin/python3 Benchmarks/report.py "$out" --markdown "$bench/health.md" --plot-data "$bench/health-plot.tsv"
  sed -n '/^## Health checks/,/^## Targets/p' "$bench/health.md" | sed '$d'
  grep 'issue 5' "$bench/health.md"
  exit 0
fi

step "building ipvsctl, ipvs-agent, nft-bench and api-bench ($configuration, $build_dir)"
"${swift_build[@]}" --product ipvsctl >&2
"${swift_build[@]}" --product ipvs-agent >&2
"${swift_build[@]}" --product nft-bench >&2
"${swift_build[@]}" --product api-bench >&2
cp "$products/ipvsctl" "$products/ipvs-agent" "$products/nft-bench" "$products/api-bench" "$bin/"
if [ -n "${BENCH_BASE_AGENT:-}" ]; then
  [ -x "$BENCH_BASE_AGENT" ] || { echo "bench: BENCH_BASE_AGENT: $BENCH_BASE_AGENT is not an executable" >&2; exit 2; }
  cp "$BENCH_BASE_AGENT" "$bin/ipvs-agent-base"
fi
step "building the libnl floor and the moby/ipvs driver"
# shellcheck disable=SC2046 # pkg-config prints several flags
cc -O2 -Wall -Wextra -o "$bin/ipvs-floor" Benchmarks/floor/ipvs-floor.c $(pkg-config --cflags --libs libnl-genl-3.0 libnl-route-3.0)
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -o "$bin/ipvs-wait" Benchmarks/wait/ipvs-wait.c $(pkg-config --cflags --libs libnl-genl-3.0)
cc -O2 -Wall -Wextra -o "$bin/metrics-wait" Benchmarks/wait/metrics-wait.c
# Debian ships moby/ipvs and its netlink dependencies as GOPATH sources: no network needed.
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$bench/go-cache go build -o "$bin/moby-ipvs-bench" ./Benchmarks/moby-ipvs

counts=$(for entry in $sizes; do echo "${entry%%:*}"; done)
[ "$agent_health_only" = 0 ] || counts=""
[ "$api_only" = 0 ] || counts=$agent_size
for size in $counts; do
  [[ "$size" =~ ^[0-9]+$ ]] || { echo "bench.sh: --sizes takes SERVICES:REPETITIONS pairs (got '$sizes')" >&2; exit 2; }
done
step "generating inputs for $(echo "$counts" | paste -sd, -) services x $reals real servers"
inputs=$bench/inputs
rm -rf "$inputs"
/usr/bin/python3 Benchmarks/gen-inputs.py --services 10 --reals 2 "$inputs/warmup"
for size in $counts; do
  /usr/bin/python3 Benchmarks/gen-inputs.py --services "$size" --reals "$reals" "$inputs/$size"
done
agent_health=()
if [ "$agent_health_size" -gt 0 ]; then
  /usr/bin/python3 Benchmarks/gen-inputs.py --health-backends "$agent_health_size" "$inputs/agent-health"
  agent_health=(--agent-health-size "$agent_health_size" --agent-health-time "$agent_health_time")
  [ "$agent_health_only" = 0 ] || agent_health+=(--agent-health-only)
fi

# ---- the run -------------------------------------------------------------------------------------

# Results come back through the VM's read-write share (.cache/vm/run).
mkdir -p .cache/vm/run
out=$(mktemp -d .cache/vm/run/bench.XXXXXX)
trap 'rm -rf "$out"; health_topology_down' EXIT
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
step "running the workloads on a real IPVS kernel (one boot)"
export IPVS_VM_MEMORY=${IPVS_VM_MEMORY:-3072} IPVS_VM_TIMEOUT=${IPVS_VM_TIMEOUT:-5400}
set +e
Scripts/kernel-run.sh Benchmarks/guest-bench.sh --bin "$bin" --inputs "$inputs" --out "$out" --sizes "$sizes" \
  --reps "$reps" --slow-max "$slow_max" --agent-size "$agent_size" "${quick[@]}" "${agent_health[@]}" \
  ${cold_only:+--cold-only "$cold_only"} ${daemon_only:+--daemon-only "$daemon_only"} \
  --api-samples "$api_samples" --api-rate "$api_rate" --first-reps "$first_reps" $([ "$api_only" = 0 ] || echo --api-only)
status=$?
set -e
elapsed=$(($(date +%s) - t0))
# After the VM has stopped, so that the two do not share the host's cores.
[ "$agent_health_only" = 1 ] || [ "$api_only" = 1 ] || [ -n "$cold_only$daemon_only" ] || run_health "$out"
# The nftables table also on the host's own kernel (nftables works in a namespace here, IPVS does
# not): native figures beside the emulated ones of the VM.
if [ "$agent_health_only" = 0 ] && [ "$api_only" = 0 ] && [ -z "$cold_only$daemon_only" ]; then
  step "the nftables table on the host: nft-bench at $agent_size services"
  "$bin/nft-bench" --tsv "$agent_size" $((reps * 7)) 2>>"$out/nft-host.log" | sed 's/^nft\t/nft-host\t/' >>"$out/results.tsv" ||
    echo "nft-bench on the host failed: $(tail -n1 "$out/nft-host.log")" >>"$out/errors.txt"
fi

{
  printf 'date\t%s\n' "$started"
  printf 'host_cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  printf 'host_cpus\t%s\n' "$(nproc)"
  printf 'emulated\t%s\n' "$([ -e /proc/net/ip_vs ] && echo no || echo "yes (qemu TCG, no KVM)")"
  printf 'qemu\t%s\n' "$(qemu-system-x86_64 --version 2>/dev/null | head -n1 || echo none)"
  printf 'elapsed_s\t%s\n' "$elapsed"
  printf 'source\t%s\n' "$source_built (built at $built_at)"
  printf 'host_load\t%s (before) / %s (after), 1/5/15-minute load averages\n' "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'sizes\t%s\n' "$sizes"
  printf 'reals\t%s\n' "$reals"
  printf 'reps\t%s\n' "$reps"
  printf 'slow_max\t%s\n' "$slow_max"
  printf 'agent_health_size\t%s\n' "$agent_health_size"
  printf 'api_rate\t%s\n' "$api_rate"
  printf 'first_reps\t%s\n' "$first_reps"
} >>"$out/environment.tsv"

# Kept for a look after the run: $build_dir/bench/last-run/ (last-smoke/ for --smoke).
kept=$bench/last-run
[ "$smoke" = 0 ] || kept=$bench/last-smoke
rm -rf "$kept"
cp -r "$out" "$kept"

if [ -s "$out/errors.txt" ]; then
  echo "bench: some tool paths failed:" >&2
  sed 's/^/  /' "$out/errors.txt" >&2
fi
[ "$status" = 0 ] || [ -s "$out/errors.txt" ] || echo "bench: the run exited with status $status" >&2

if [ -n "$cold_only" ]; then
  # Each repetition's times, then the ratio of each repetition (the tools took turns).
  awk -F'\t' '$1 == "cold-cpu" { cpu[$2 FS $3 FS $4] = $5 }
    $1 == "cold" { key[++n] = $2 FS $3 FS $4; wall[n] = $5 }
    END { for (i = 1; i <= n; i++) { split(key[i], k, FS)
      printf "%s\t%s services\trep %s\t%d ms\tCPU %d ms (user + system)\n", k[1], k[2], k[3], wall[i] / 1000, cpu[key[i]] / 1000 } }' "$out/results.tsv"
  [ "$status" = 0 ] || echo "bench: the run did not complete (status $status). Results: $kept/" >&2
  exit "$status"
fi

if [ -n "$daemon_only" ]; then
  # Each repetition of each build, as the guest logged it, from the results.
  awk -F'\t' '$1 ~ /^(agent-daemon|noop|endpoint-add|endpoint-remove)/ && $2 ~ /^(start-to-synced|cpu-to-synced|signal-to-done|file-to-kernel|cpu|writes|rss)$/ {
      printf "%s\t%s\trep %s\t%s %s\n", $1, $2, $4, $5, $6 }' "$out/results.tsv"
  [ "$status" = 0 ] || echo "bench: the run did not complete (status $status). Results: $kept/" >&2
  exit "$status"
fi

if [ "$api_only" = 1 ]; then
  # Every record of the two workloads (the samples summarised by the report), then the report's section.
  awk -F'\t' '$1 ~ /^(agent-daemon|endpoint-add|endpoint-remove|api-daemon|api-load)$/ { printf "%s\t%s\trep %s\t%s %s\n", $1, $2, $4, $5, $6 }' "$out/results.tsv"
  /usr/bin/python3 Benchmarks/report.py "$out" --markdown "$bench/api.md" --plot-data "$bench/api-plot.tsv"
  sed -n '/^## The agent following an API server/,/^## /p' "$bench/api.md" | sed '$d'
  grep 'issue 19' "$bench/api.md"
  [ "$status" = 0 ] || echo "bench: the run did not complete (status $status). Results: $kept/" >&2
  exit "$status"
fi

if [ "$agent_health_only" = 1 ]; then
  grep -P '^agent-health\t' "$out/results.tsv" || true
  /usr/bin/python3 Benchmarks/report.py "$out" --markdown "$bench/agent-health.md" --plot-data "$bench/agent-health-plot.tsv"
  sed -n '/^## The agent with health checks/,/^## Targets/p' "$bench/agent-health.md" | sed '$d'
  [ "$status" = 0 ] || echo "bench: the run did not complete (status $status). Results: $kept/" >&2
  exit "$status"
fi

if [ "$smoke" = 1 ]; then
  # Every tool path must have produced a number.
  expected=(cold/floor cold/floor-vips cold/ipvsctl cold/ipvsadm cold/moby-ipvs cold/moby-ipvs-vips cold/moby-ipvs-kube-proxy cold/ipvs-agent
    cold-cpu/floor-vips cold-cpu/ipvs-agent cold-cpu/moby-ipvs-vips agent-daemon/cpu-to-synced noop/cpu endpoint-add/cpu
    "list/ipvsctl -Ln" "list/ipvsadm -Ln" "list/ipvsctl -Sn" "list/ipvsadm -Sn" "list/moby-ipvs dump"
    agent-daemon/first-sync noop/writes endpoint-add/file-to-kernel endpoint-remove/file-to-kernel
    health/cpu health/detect-p99
    agent-health/agent-cpu-per-check agent-health/agent-rss agent-health/detect-p99 agent-health/library-cpu-per-check
    agent-health/keepalived-cpu-per-check api-daemon/start-to-synced api-daemon/rss api-change/watch-to-kernel api-load/events-per-second)
  for e in "${expected[@]}"; do
    awk -F'\t' -v w="${e%%/*}" -v t="${e#*/}" '$1 == w && $2 == t { found = 1 } END { exit !found }' "$out/results.tsv" ||
      { echo "bench smoke: no result for ${e/\// }" >&2; status=1; }
  done
  # The alternated first programmings: each source's run --first-reps times.
  for w in agent-daemon api-daemon; do
    n=$(awk -F'\t' -v w="$w" '$1 == w && $2 == "start-to-synced" { n++ } END { print n + 0 }' "$out/results.tsv")
    [ "$n" = "$first_reps" ] || { echo "bench smoke: $w's first programming ran $n times, not --first-reps $first_reps" >&2; status=1; }
  done
  writes=$(awk -F'\t' '$1 == "noop" && $2 == "writes" { print $5 }' "$out/results.tsv")
  [ "${writes:-x}" = 0 ] || { echo "bench smoke: the agent's no-op resync wrote ${writes:-?} operations" >&2; status=1; }
  missed=$(awk -F'\t' '$1 == "health" && ($2 == "missed" || $2 == "false-down") { n += $5 } END { print n + 0 }' "$out/results.tsv")
  [ "$missed" = 0 ] || { echo "bench smoke: the health checker missed killed backends or reported live ones down ($missed)" >&2; status=1; }
  # Killed backends still serving after a minute: a broken path, not a slow one. (Live backends reported
  # down are not asserted here: in the emulator a stall longer than the timeout makes them, rightly.)
  missed=$(awk -F'\t' '$1 == "agent-health" && ($2 == "missed" || $2 == "library-missed") { n += $5 } END { print n + 0 }' "$out/results.tsv")
  [ "$missed" = 0 ] || { echo "bench smoke: killed backends never taken out by the agent (kernel weight 0) or the library ($missed)" >&2; status=1; }
  [ "$status" = 0 ] && echo "bench smoke: every tool path works (${elapsed} s)" >&2
  exit "$status"
fi

if [ "$status" != 0 ]; then
  echo "bench: the run did not complete (status $status); docs/ left alone. Results: $kept/" >&2
  /usr/bin/python3 Benchmarks/report.py "$out" --markdown "$bench/benchmarks.md" --plot-data "$bench/plot.tsv" &&
    echo "bench: partial report in $bench/benchmarks.md" >&2
  exit "$status"
fi

step "writing the report"
/usr/bin/python3 Benchmarks/report.py "$out" --markdown "$bench/benchmarks.md" --plot-data "$bench/plot.tsv"
gnuplot -e "data='$bench/plot.tsv'; output='$bench/benchmarks.png'" Benchmarks/plot.gp
cat "$bench/benchmarks.md"
if [ "$docs" = 1 ]; then
  mkdir -p docs
  cp "$bench/benchmarks.md" docs/benchmarks.md
  cp "$bench/benchmarks.png" docs/benchmarks.png
  step "wrote docs/benchmarks.md and docs/benchmarks.png (${elapsed} s in the VM)"
fi
exit "$status"
