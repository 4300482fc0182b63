#!/usr/bin/env bash
# The inside of `make bench`: runs every workload on the IPVS kernel it is started on (the VM,
# through Scripts/kernel-run.sh, or a real node's fresh network namespace) and appends one line
# per measurement to OUT/results.tsv. Scripts/bench.sh builds everything, starts this once and
# turns the results into docs/benchmarks.md.
#
# Usage: Benchmarks/guest-bench.sh --bin DIR --inputs DIR --out DIR [--sizes "1000:5 10000:3"]
#          [--reps N] [--agent-size N] [--kube-proxy-max SIZE] [--slow-max SIZE] [--quick]
#          [--agent-health-size N] [--agent-health-time "WARMUP WINDOW"] [--agent-health-only]
#          [--cold-only "TOOL..."] [--daemon-only "AGENT..."]
#          [--api-samples N] [--api-rate EVENTS] [--api-only] [--first-reps N]
#
#   --bin     ipvsctl, ipvs-agent, ipvs-floor, ipvs-wait and moby-ipvs-bench (and nft-bench, when there)
#   --inputs  one folder per size (SIZE/rules, SIZE/manifests, ...) and warmup/, from
#             Benchmarks/gen-inputs.py
#   --sizes   SERVICES:REPETITIONS of cold programming; --reps: repetitions of the other workloads
#   --agent-size: services of the agent daemon workloads and of the listings (of the agent's table)
#   --kube-proxy-max: the kube-proxy pattern of the moby/ipvs driver runs up to this size only;
#   --slow-max: ipvsadm, moby/ipvs, the agent and the floor with VIPs (minutes each in the emulator) up to this size only
#   --quick   no copy to memory and no warm-up: every path once, for the smoke run
#   --agent-health-size N: the agent with health checks on N TCP backends (inputs/agent-health, from
#             gen-inputs.py --health-backends N), then health-bench on the same backends (0: not run);
#             --agent-health-time: its warm-up and CPU window in seconds (default "5 10");
#             --agent-health-only: that workload alone (and --bin needs health-bench and health-backends)
#   --cold-only: cold programming alone, of these tools only (e.g. "floor-vips ipvs-agent"), taking
#             turns in each repetition; no other workload (ipvs-agent-base: the agent of --bin's
#             ipvs-agent-base, an earlier build, when Scripts/bench.sh was given one)
#   --daemon-only: the agent daemon workload (start, no-op resyncs, one endpoint changed) alone, with
#             each of these agent builds in turn (ipvs-agent, ipvs-agent-base); the base's records
#             are named with -base (noop-base, endpoint-add-base)
#   --api-samples N, --api-rate EVENTS: the agent following an API server (Benchmarks/api, the tests'
#             TestAPIServer) that serves the --agent-size objects, in a fresh network namespace: start to
#             every Service programmed, then N one-endpoint changes timed from the watch event sent to the
#             kernel updated while EVENTS watch events a second change other Services (default 200 and
#             100; --api-samples 0: not run); --api-only: the files daemon workload (the reference) and
#             this one alone (--bin needs api-bench)
#   --first-reps N: with the API server workload, N - 1 more pairs of first programmings after it, the
#             files source's then the API server's, each in a fresh network namespace, so that the two
#             are compared over runs alternated in one boot (default 1: the workloads' own runs only)
#   --out     results.tsv (workload, tool, size, repetition, value, unit), environment.tsv, errors.txt
#
# Exit status 0 when every tool path worked, 1 otherwise (see OUT/errors.txt).
set -uo pipefail

bin="" inputs="" out="" sizes="1000:5 10000:3" reps=3 agent_size=10000 kube_proxy_max=1000
slow_max=1000000 quick=0 settle=2 cold_once=""
agent_health_size=0 agent_health_time="5 10" agent_health_only=0 cold_only="" daemon_only=""
api_samples=200 api_rate=100 api_only=0 api_once=0 first_reps=1 files_once=0 first_only=0 rep=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --inputs) inputs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --agent-size) agent_size=$2; shift 2 ;;
    --cold-once) cold_once=$2; shift 2 ;; # internal: TOOL:DIR:VERIFY, one cold run in this namespace
    --kube-proxy-max) kube_proxy_max=$2; shift 2 ;;
    --slow-max) slow_max=$2; shift 2 ;;
    --quick) quick=1 settle=1; shift ;;
    --agent-health-size) agent_health_size=$2; shift 2 ;;
    --agent-health-time) agent_health_time=$2; shift 2 ;;
    --agent-health-only) agent_health_only=1; shift ;;
    --cold-only) cold_only=$2; shift 2 ;;
    --daemon-only) daemon_only=$2; shift 2 ;;
    --api-samples) api_samples=$2; shift 2 ;;
    --api-rate) api_rate=$2; shift 2 ;;
    --api-only) api_only=1; shift ;;
    --api-once) api_once=1; shift ;; # internal: the API server workload in this (new) namespace
    --first-reps) first_reps=$2; shift 2 ;;
    --files-once) files_once=1; shift ;; # internal: the files source's first programming in this (new) namespace
    --first-only) first_only=1; shift ;; # internal: --api-once up to its first programming only
    --rep) rep=$2; shift 2 ;; # internal: the repetition --files-once and --first-only record
    *) echo "guest-bench.sh: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$bin" ] || [ -z "$inputs" ] || [ -z "$out" ]; then
  sed -n 7,8p "$0" >&2
  exit 2
fi

work=/tmp/ipvs-bench
state=$work/agent-state.json
metrics_port=10249
mkdir -p "$work" "$out"
failed=0

# ---- helpers ----------------------------------------------------------------------------------

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# record WORKLOAD TOOL SIZE REP VALUE UNIT
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$out/results.tsv"; }

fail() {
  log "FAILED: $*"
  printf '%s\n' "$*" >>"$out/errors.txt"
  failed=1
}

# Timestamps are ${EPOCHREALTIME/./}: microseconds since the epoch, without a fork.

# The IPVS table and the agent's leftovers gone. Cold runs use a fresh network namespace each
# instead: the kernel keeps deleted real servers in a per-namespace trash list for minutes, and
# every real server added meanwhile walks that list, which makes a run after a large flush
# quadratic.
reset_kernel() {
  ipvsadm -C
  ip link del kube-ipvs0 2>/dev/null
  rm -f "$state"
}

# Whether the IPVS table, as `ipvsadm -S -n` lines, holds exactly the lines of rules file $1.
# (No process substitution: the guest has no /dev/fd.)
table_matches() {
  ipvsadm -S -n | sort >"$work/table.sorted"
  sort "$1" >"$work/rules.sorted"
  cmp -s "$work/table.sorted" "$work/rules.sorted"
}

# One cold programming run of TOOL from an empty table; prints the elapsed microseconds.
cold_run() {
  local tool=$1 dir=$2
  local log=$work/$tool.log
  case "$tool" in
    ipvsctl) "$bin/ipvsctl" -R <"$dir/rules" ;;
    ipvsadm) ipvsadm -R <"$dir/rules" ;;
    moby-ipvs) "$bin/moby-ipvs-bench" restore "$dir/rules" ;;
    moby-ipvs-kube-proxy) "$bin/moby-ipvs-bench" kube-proxy "$dir/rules" ;;
    moby-ipvs-vips) "$bin/moby-ipvs-bench" restore "$dir/rules" --bind kube-ipvs0 ;;
    floor) "$bin/ipvs-floor" "$dir/rules" ;;
    floor-vips) "$bin/ipvs-floor" "$dir/rules" --bind kube-ipvs0 ;;
    ipvs-agent | ipvs-agent-base) "$bin/$tool" --manifests "$dir/manifests" --once --state-file "$state" --metrics-address none \
      --node-name bench --node-ip 192.0.2.1 --log-level warning ;;
  esac >"$log" 2>&1
}

# The agent's /metrics into the array M (name -> value), with bash alone: in the emulated guest
# starting a process (curl, awk) takes longer than what is measured.
declare -A M
fetch_metrics() {
  local line
  M=()
  exec 8<>"/dev/tcp/127.0.0.1/$metrics_port" || return 1
  printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&8
  while IFS= read -r -t 10 line <&8; do
    line=${line%$'\r'}
    case "$line" in "#"* | "") continue ;; esac
    M[${line%% *}]=${line##* }
  done
  exec 8<&-
}
# The integer part of metric $1 (0 when absent): gauges print as 10.0.
int() { local v=${M[$1]:-0}; REPLY=${v%%.*}; }

# A sleep without a process: read with a timeout from a FIFO nobody writes.
[ -p "$work/pause.fifo" ] || mkfifo "$work/pause.fifo"
exec 9<>"$work/pause.fifo"
pause() { read -r -t "$1" -u 9 || true; }
# Whether process $1 still runs. `kill -0` alone also succeeds on a child that has exited but that
# bash has not reaped yet (a zombie, as in an EXIT trap), which made a stopped agent look stuck.
# Builtins only: loops ask every 10 ms.
running() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# The "milliseconds" (or field $2) of the agent's last log line with message $1 (its first with
# $3 = first; JSON log, $agent_log), as microseconds; empty when the agent does not log it.
agent_log=$work/agent-daemon.log
logged_us() {
  grep -F "\"message\":\"$1\"" "$agent_log" | if [ "${3:-}" = first ]; then head -n 1; else tail -n 1; fi |
    sed -n "s/.*\"${2:-milliseconds}\":\"\([0-9.]*\)\".*/\1/p" | awk '{ printf "%d", $1 * 1000 }'
}
# record_logged WORKLOAD TOOL SIZE REP MESSAGE [FIELD [first]]: records logged_us when there is one.
record_logged() {
  local value
  value=$(logged_us "$5" "${6:-}" "${7:-}")
  [ -z "$value" ] || record "$1" "$2" "$3" "$4" "$value" us
}

# A time as bash's `times` prints it (1m2.345s) in microseconds.
times_us() {
  local minutes=${1%%m*} seconds=${1#*m}
  seconds=${seconds%s}
  echo $(((10#$minutes * 60 + 10#${seconds%.*}) * 1000000 + 10#${seconds#*.} * 1000))
}

# utime + stime of process $1, in clock ticks.
cpu_ticks() {
  local stat
  read -r stat <"/proc/$1/stat" || return 1
  # shellcheck disable=SC2086 # the fields after "(comm) "
  set -- ${stat##*) }
  REPLY=$((${12} + ${13}))
}

# Waits until the agent (process $1) has programmed $2 Services and reconciled once, as its /metrics
# say (ipvs_agent_services_programmed, ipvs_agent_sync_duration_seconds_count): its start to synced.
# Asked every 50 ms by metrics-wait (Benchmarks/wait): asked from bash (fetch_metrics, which reads
# one byte per system call), each answer took about 2 s of a vCPU and the asking most of one of the
# two vCPUs the agent ran on. Fails when the agent exits or after 1,200 s.
wait_programmed() {
  "$bin/metrics-wait" "$metrics_port" "$2" "$1" 1200 >/dev/null
}

# One cold run of TOOL in a fresh network namespace (see reset_kernel): the elapsed microseconds
# go to $work/cold.us; exit status 3 when the table (or the VIPs bound) differs from the rules afterwards.
if [ -n "$cold_once" ]; then
  tool=${cold_once%%:*} rest=${cold_once#*:}
  dir=${rest%:*} verify=${rest##*:}
  ip link set lo up
  rm -f "$state"
  times >"$work/cold.times"
  { read -r _; read -r child_user child_system; } <"$work/cold.times"
  cpu0=$(($(times_us "$child_user") + $(times_us "$child_system")))
  t0=${EPOCHREALTIME/./}
  cold_run "$tool" "$dir"
  rc=$?
  t1=${EPOCHREALTIME/./}
  echo $((t1 - t0)) >"$work/cold.us"
  # The tool's CPU time (user + system, every thread): what bash's `times` counts for its waited
  # children grew by while it ran.
  times >"$work/cold.times"
  { read -r _; read -r child_user child_system; } <"$work/cold.times"
  echo $(($(times_us "$child_user") + $(times_us "$child_system") - cpu0)) >"$work/cold.cpu"
  if [ "$rc" = 0 ] && [ "$verify" = 1 ] && ! table_matches "$dir/rules"; then rc=3; fi
  # The tools that bind VIPs must have bound one address per service.
  case "$tool" in floor-vips | moby-ipvs-vips | ipvs-agent | ipvs-agent-base)
    if [ "$rc" = 0 ] && [ "$verify" = 1 ] &&
      [ "$(ip -4 -o addr show dev kube-ipvs0 | wc -l)" != "$(grep -c '^-A' "$dir/rules")" ]; then
      echo "$tool: kube-ipvs0 does not hold one address per service" >>"$work/$tool.log"
      rc=3
    fi ;;
  esac
  ipvsadm -C # flushed here, the namespace's teardown is light
  exit "$rc"
fi

# Starts the files daemon workload's agent, build $1, on the manifests in $2, its log in $3, and sets
# agent (its pid) and t0 (its start): one command line for every run the API server's is compared with.
start_files_agent() {
  "$bin/$1" --manifests "$2" --state-file "$state" --metrics-address "127.0.0.1:$metrics_port" \
    --sync-period 1h --node-name bench --node-ip 192.0.2.1 --log-format json 2>"$3" &
  agent=$!
  t0=${EPOCHREALTIME/./}
}

# Records workload $1's first programming as repetition $2: start (t0) to every Service programmed
# (t1), and the CPU agent $agent used meanwhile (none recorded when it cannot be read).
record_synced() {
  record "$1" start-to-synced "$size" "$2" $((t1 - t0)) us
  cpu_ticks "$agent" && record "$1" cpu-to-synced "$size" "$2" $((REPLY * 1000000 / $(getconf CLK_TCK))) us
}

# The files source's first programming alone (--files-once, run in a fresh network namespace by the
# alternated repetitions after the API server workload): the files daemon workload's agent and flags,
# from an empty table, to every Service programmed; records agent-daemon start-to-synced and
# cpu-to-synced as repetition --rep, then stops the agent and flushes the table.
if [ "$files_once" = 1 ]; then
  size=$agent_size
  ip link set lo up
  rm -f "$state"
  start_files_agent ipvs-agent "$work/$size/manifests" "$work/agent-files-once.log"
  if wait_programmed "$agent" "$size"; then
    t1=${EPOCHREALTIME/./}
    record_synced agent-daemon "$rep"
    log "files: the agent programmed $size Services in $(((t1 - t0) / 1000)) ms (rep $rep)"
  else
    fail "files rep $rep: the agent did not program the $size Services; log: $(tail -n 5 "$work/agent-files-once.log")"
  fi
  kill -TERM "$agent" 2>/dev/null
  wait "$agent" 2>/dev/null
  ipvsadm -C # flushed here, the namespace's teardown is light
  exit "$failed"
fi

# The agent following an API server (--api-once, run by api_workload in a fresh network namespace:
# the files workload's table, flushed, would slow its first programming, see reset_kernel).
# Benchmarks/api's api-bench serves the Services and EndpointSlices of the $agent_size manifests (the
# tests' TestAPIServer, TLS and a bearer token) and writes the kubeconfig; the agent follows it from an
# empty table with the files daemon workload's flags, and --min-sync-period 0s (each change applied at
# once, as --manifests does). Records api-daemon (start to every Service programmed, detected as in the
# files workload; CPU; RSS), api-change (each sample: one endpoint added to one Service, from the watch
# event sent to the kernel updated, as ipvs-wait sees it, while api-bench sends --api-rate other watch
# events a second, each turning another Service's endpoint not ready or ready again) and api-load (the
# events' rate reached, the agent's CPU meanwhile).
if [ "$api_once" = 1 ]; then
  size=$agent_size dir=$work/api server="" agent=""
  # The server first: its events stop and its watches close, so an agent behind on them can stop;
  # an agent that has not stopped 60 s after SIGTERM is killed (and that is said).
  api_cleanup() {
    local waited=0
    [ -z "$server" ] || { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null; }
    if [ -n "$agent" ]; then
      kill -TERM "$agent" 2>/dev/null
      while running "$agent" && [ "$waited" -lt 600 ]; do pause 0.1; waited=$((waited + 1)); done
      if running "$agent"; then
        # Where it is stuck: its state and each thread's name and kernel wait.
        local where
        where=$(awk '/^State/ { print $2 $3 }' "/proc/$agent/status" 2>/dev/null)
        for task in /proc/"$agent"/task/*; do where+=" $(cat "$task/comm" 2>/dev/null):$(cat "$task/wchan" 2>/dev/null)"; done
        fail "api: the agent did not stop within 60 s of SIGTERM; killed (state and threads: $where)"
        kill -KILL "$agent"
      fi
      wait "$agent" 2>/dev/null
    fi
    agent="" server=""
    if [ "$first_only" = 0 ]; then # the logs kept are the whole workload's
      cp "$work/agent-api.log" "$out/agent-api.log" 2>/dev/null
      cp "$work/api-bench.log" "$out/api-bench.log" 2>/dev/null
    fi
    ipvsadm -C # flushed here, the namespace's teardown is light
  }
  trap api_cleanup EXIT
  # The next answer of api-bench that starts with $1 into ANSWER, waiting at most $2 s; fails on an error.
  api_answer() {
    local line
    while read -r -t "$2" -u 5 line; do
      case "$line" in "$1"*) ANSWER=$line; return 0 ;; error*) ANSWER=$line; return 1 ;; esac
    done
    ANSWER="no answer within $2 s"
    return 1
  }
  ip link set lo up
  rm -rf "$dir" "$state"
  mkdir -p "$dir"
  mkfifo "$dir/commands" "$dir/answers"
  exec 5<>"$dir/answers" 6<>"$dir/commands"
  t0=${EPOCHREALTIME/./}
  "$bin/api-bench" "$work/$size/manifests" --kubeconfig "$dir/kubeconfig" --samples "$api_samples" \
    --samples-file "$dir/samples" <"$dir/commands" >"$dir/answers" 2>"$work/api-bench.log" 5>&- 6>&- &
  server=$!
  if ! api_answer ready 1200; then
    fail "api: api-bench did not start ($ANSWER): $(tail -n 3 "$work/api-bench.log")"
    exit 1
  fi
  record api-daemon server-ready "$size" "$rep" $((${EPOCHREALTIME/./} - t0)) us
  log "api: api-bench serves $size Services and their EndpointSlices"

  agent_log=$work/agent-api.log hz=$(getconf CLK_TCK)
  "$bin/ipvs-agent" --kubeconfig "$dir/kubeconfig" --state-file "$state" --metrics-address "127.0.0.1:$metrics_port" \
    --sync-period 1h --min-sync-period 0s --node-name bench --node-ip 192.0.2.1 --log-format json 2>"$agent_log" 5>&- 6>&- &
  agent=$!
  t0=${EPOCHREALTIME/./}
  if ! wait_programmed "$agent" "$size"; then
    fail "api: the agent did not program the $size Services; log: $(tail -n 5 "$agent_log")"
    exit 1
  fi
  t1=${EPOCHREALTIME/./}
  record_synced api-daemon "$rep"
  if [ "$first_only" = 1 ]; then
    log "api: the agent programmed $size Services in $(((t1 - t0) / 1000)) ms (rep $rep)"
    exit "$failed" # api_cleanup stops the server and the agent
  fi
  int ipvs_agent_operations_applied_total && record api-daemon operations "$size" 1 "$REPLY" count
  # The first pass ends after the kernel is programmed (the nftables table, the health checks, freed
  # memory given back): its log line, then the memory.
  for _ in $(seq 600); do grep -qF "\"message\":\"applied the API server's objects\"" "$agent_log" && break; pause 0.1; done
  # The first line: watch events queued meanwhile may have been applied since.
  record_logged api-daemon first-pass "$size" 1 "applied the API server's objects" milliseconds first
  record api-daemon rss "$size" 1 "$(awk '/^VmRSS/ { print $2 }' "/proc/$agent/status")" KiB
  record api-daemon peak-rss "$size" 1 "$(awk '/^VmHWM/ { print $2 }' "/proc/$agent/status")" KiB
  log "api: the agent programmed $size Services in $(((t1 - t0) / 1000)) ms"

  echo "load $api_rate" >&6
  api_answer load 60 || { fail "api: api-bench refused the load ($ANSWER)"; exit 1; }
  pause "$settle" # the background events flowing
  mapfile -t samples <"$dir/samples"
  cpu_ticks "$agent" && ticks0=$REPLY
  w0=${EPOCHREALTIME/./}
  for k in "${!samples[@]}"; do
    read -r _ vip real <<<"${samples[$k]}"
    rm -f "$dir/wait.ready"
    "$bin/ipvs-wait" "$vip" "$real" weight=1 "$dir/wait.ready" 60 >"$dir/wait.out" 2>"$dir/wait.err" 5>&- 6>&- &
    waiter=$!
    until [ -e "$dir/wait.ready" ] || ! running "$waiter"; do pause 0.01; done
    echo "change $k" >&6
    api_answer "sent $k " 60 || { fail "api: change $k not sent ($ANSWER)"; break; }
    sent=${ANSWER##* }
    if ! wait "$waiter"; then fail "api: change $k ($real to $vip): $(cat "$dir/wait.err")"; break; fi
    read -r seen polls <"$dir/wait.out"
    record api-change watch-to-kernel "$size" "$k" $((seen - sent)) us
    record api-change poll-interval "$size" "$k" $(((seen - sent) / polls)) us
  done
  cpu_ticks "$agent" && ticks1=$REPLY
  w1=${EPOCHREALTIME/./}
  echo rate >&6
  if api_answer rate 60; then
    read -r _ events seconds <<<"$ANSWER"
    record api-load events-per-second "$size" 1 "$(awk -v e="$events" -v s="$seconds" 'BEGIN { printf "%.1f", e / s }')" events/s
  fi
  record api-load agent-cpu "$size" 1 "$(awk -v t=$((ticks1 - ticks0)) -v hz="$hz" -v us=$((w1 - w0)) 'BEGIN { printf "%.1f", t / hz / (us / 1e6) * 100 }')" percent-of-core
  log "api: $(grep -cP '^api-change\twatch-to-kernel\t' "$out/results.tsv") changes timed at $api_rate events/s"
  exit "$failed"
fi

# fresh_cold_run TOOL DIR VERIFY: cold_run in a new namespace; waits for the old one to go.
fresh_cold_run() {
  rm -f "$work/cold.us"
  unshare --net -- bash "$0" --bin "$bin" --inputs "$inputs" --out "$out" --cold-once "$1:$2:$3"
  local rc=$?
  pause "$settle"
  return "$rc"
}

: >"$out/results.tsv"
: >"$out/errors.txt"

# ---- environment -------------------------------------------------------------------------------

{
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'vcpus\t%s\n' "$(nproc)"
  printf 'guest_cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  printf 'guest_memory_mb\t%s\n' "$(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo)"
  printf 'ipvsadm\t%s\n' "$(ipvsadm --version 2>&1 | head -n1)"
  printf 'hypervisor\t%s\n' "$(grep -qw hypervisor /proc/cpuinfo && echo yes || echo no)"
} >"$out/environment.tsv"

if [ "$quick" = 0 ]; then
  # The inputs and the binaries onto local memory, so 9p reads are not what is timed.
  log "copying inputs and binaries"
  cp -r "$inputs/." "$work/"
  mkdir -p "$work/bin"
  cp "$bin/ipvsctl" "$bin/ipvs-agent" "$bin/ipvs-floor" "$bin/ipvs-wait" "$bin/metrics-wait" "$bin/moby-ipvs-bench" "$work/bin/"
  [ ! -x "$bin/nft-bench" ] || cp "$bin/nft-bench" "$work/bin/"
  # Scripts/bench.sh's BENCH_BASE_AGENT: an earlier build of the agent, for before/after runs.
  [ ! -x "$bin/ipvs-agent-base" ] || cp "$bin/ipvs-agent-base" "$work/bin/"
  [ "$agent_health_size" = 0 ] || cp "$bin/health-bench" "$bin/health-backends" "$work/bin/"
  [ "$api_samples" = 0 ] || cp "$bin/api-bench" "$work/bin/"
  bin=$work/bin

  # Warm-up: load every binary and its libraries once (on the small warmup input).
  [ "$agent_health_only" = 1 ] ||
    for tool in ipvsctl ipvsadm moby-ipvs moby-ipvs-vips floor floor-vips ipvs-agent; do
      fresh_cold_run "$tool" "$work/warmup" 0 || fail "warm-up $tool: $(tail -n 3 "$work/$tool.log")"
    done
else
  cp -r "$inputs/." "$work/"
fi

# ---- 4. the agent with health checks (defined here, run last) ----------------------------------

# N TCP backends (Benchmarks/health/health-backends.c) in a network namespace behind a veth pair, as
# Scripts/bench.sh's host veth topology: 10.203.0.0/16 local in that namespace, the pod side's receive
# work steered (RPS) to the last CPU, where the backends run; the agent, and then health-bench, pinned
# to the other CPUs. The agent checks them as the endpoints of N / 100 annotated Services (TCP, 1 s,
# timeout 500 ms, fall 2); its CPU (utime + stime of /proc/PID/stat) is measured over a window in steady
# state, then 1% of the backends are killed and ipvs-wait times each one's kill -> weight 0 in the
# kernel. Then health-bench (the HealthCheck library alone) runs on the same backends, same CPUs,
# same warm-up and window: the agent / library ratio is the agent's cost above its checker.
ah_netns="" ah_host_if="" ah_backends="" ah_agent="" ah_backlog=""
# net.core.netdev_max_backlog: prints it, or sets it to $1.
ah_sysctl_backlog() {
  nsenter -t 1 -n sh -c '[ -z "$1" ] && cat /proc/sys/net/core/netdev_max_backlog || echo "$1" >/proc/sys/net/core/netdev_max_backlog' sh "${1:-}" 2>/dev/null
}
ah_cleanup() {
  [ -z "$ah_agent" ] || { kill -TERM "$ah_agent" 2>/dev/null; wait "$ah_agent" 2>/dev/null; }
  ah_agent=""
  [ ! -e "$work/agent-health.log" ] || cp "$work/agent-health.log" "$out/" 2>/dev/null
  if [ -n "$ah_backends" ]; then
    exec 7>&- 2>/dev/null # the backends exit when their stdin closes
    wait "$ah_backends" 2>/dev/null
    ah_backends=""
  fi
  [ -z "$ah_backlog" ] || ah_sysctl_backlog "$ah_backlog"
  ah_backlog=""
  [ -z "$ah_host_if" ] || ip link del "$ah_host_if" 2>/dev/null
  [ -z "$ah_netns" ] || ip netns del "$ah_netns" 2>/dev/null
  ah_netns="" ah_host_if=""
}

# The agent's Services programmed, backends up and checks done so far (sums over every series), into
# AH_PROGRAMMED, AH_UP and AH_CHECKS. curl and awk rather than fetch_metrics: with thousands of backends
# /metrics has thousands of lines, which bash would read a byte at a time.
ah_metrics() {
  local text
  text=$(curl -sf --max-time 20 "http://127.0.0.1:$metrics_port/metrics" | awk '
    /^ipvs_agent_services_programmed / { p = $2 } /^ipvs_health_backend_up[ {]/ { u += $2 } /^ipvs_health_checks_total[ {]/ { c += $2 }
    END { printf "%d %d %d\n", p, u, c }') || return 1
  read -r AH_PROGRAMMED AH_UP AH_CHECKS <<<"$text"
}

# Starts health-backends (COUNT PORT BASE) in $ah_netns on CPU $4, killed through their stdin (fd 7);
# returns once they all listen, non-zero if they did not start.
ah_start_backends() {
  rm -f "$work/ah-backends.in" "$work/ah-backends.out"
  mkfifo "$work/ah-backends.in"
  ip netns exec "$ah_netns" taskset -c "$4" "$bin/health-backends" "$1" "$2" "$3" \
    <"$work/ah-backends.in" >>"$work/ah-backends.out" 2>&1 &
  ah_backends=$!
  exec 7>"$work/ah-backends.in"
  local line="" t0
  t0=${EPOCHREALTIME/./}
  until [ "$line" = ready ]; do
    read -r line <"$work/ah-backends.out"
    case "$line" in error* ) break ;; esac
    running "$ah_backends" && [ $((${EPOCHREALTIME/./} - t0)) -lt 120000000 ] || break
    pause 0.05
  done
  [ "$line" = ready ]
}

# TCP connects opened so far from this network namespace (ActiveOpens of /proc/net/snmp), into REPLY.
tcp_active_opens() {
  REPLY=$(awk '$1 == "Tcp:" && $6 ~ /^[0-9]+$/ { print $6 }' /proc/net/snmp)
  [ -n "$REPLY" ]
}

# keepalived, the reference checker, on the same backends (inputs/agent-health/keepalived.conf: the same
# Services, TCP_CHECK every 1 s, connect_timeout 0.5 s), in the foreground (-n) with its health-checker
# subsystem only (-C), pinned where the agent ran. Its CPU is its processes' (the parent and the checker
# child); its checks are the TCP connects this namespace opened over the window (nothing else connects).
# Records agent-health keepalived-* beside the agent's numbers. Args: SIZE PORT BASE POD_CPU PIN WARMUP WINDOW.
ah_keepalived() {
  local size=$1 conf=$work/agent-health/keepalived.conf ka="" t0 reals=0 hz ticks0=0 ticks1=0 opens0 opens1 w0 w1 pid
  command -v keepalived >/dev/null || { fail "agent health: keepalived is not installed (Scripts/bench.sh installs it)"; return; }
  [ -f "$conf" ] || { fail "agent health: no $conf (gen-inputs.py --health-backends)"; return; }
  reset_kernel
  if ! ah_start_backends "$size" "$2" "$3" "$4"; then
    fail "agent health: the backends did not start for keepalived: $(tail -n 2 "$work/ah-backends.out")"
    return
  fi
  taskset -c "$5" keepalived -n -l -D -C -f "$conf" -p "$work/keepalived.pid" -c "$work/keepalived-checkers.pid" \
    >"$work/keepalived.log" 2>&1 &
  ka=$!
  # Steady: every backend programmed by keepalived.
  t0=${EPOCHREALTIME/./}
  while [ $((${EPOCHREALTIME/./} - t0)) -lt 120000000 ] && running "$ka"; do
    reals=$(ipvsadm -Ln | awk '$1 == "->" && $4 == 1' | wc -l)
    [ "$reals" -lt "$size" ] || break
    pause 0.2
  done
  if [ "$reals" -lt "$size" ]; then
    fail "agent health: keepalived did not program the $size backends ($reals): $(tail -n 3 "$work/keepalived.log")"
  else
    log "agent health: keepalived checks the $size backends; warm-up $6 s, window $7 s"
    pause "$6"
    hz=$(getconf CLK_TCK)
    tcp_active_opens && opens0=$REPLY
    for pid in "$ka" $(pgrep -P "$ka"); do cpu_ticks "$pid" && ticks0=$((ticks0 + REPLY)); done
    w0=${EPOCHREALTIME/./}
    pause "$7"
    tcp_active_opens && opens1=$REPLY
    for pid in "$ka" $(pgrep -P "$ka"); do cpu_ticks "$pid" && ticks1=$((ticks1 + REPLY)); done
    w1=${EPOCHREALTIME/./}
    if [ -z "${opens0:-}" ] || [ -z "${opens1:-}" ] || [ "$opens1" -le "$opens0" ]; then
      fail "agent health: no keepalived checks counted over the window (alive: $(running "$ka" && echo yes || echo no))"
    else
      awk -v t=$((ticks1 - ticks0)) -v hz="$hz" -v us=$((w1 - w0)) -v c=$((opens1 - opens0)) 'BEGIN {
        cpu = t / hz; wall = us / 1e6
        printf "keepalived-cpu\t%.2f\tpercent-of-core\n", cpu / wall * 100
        printf "keepalived-cpu-per-check\t%.2f\tus\n", cpu / c * 1e6
        printf "keepalived-checks-per-second\t%.0f\tchecks/s\n", c / wall
      }' | while IFS=$'\t' read -r tool value unit; do record agent-health "$tool" "$size" 1 "$value" "$unit"; done
    fi
  fi
  kill -TERM "$ka" 2>/dev/null
  wait "$ka" 2>/dev/null
  cp "$work/keepalived.log" "$out/agent-health-keepalived.log" 2>/dev/null
  exec 7>&-
  wait "$ah_backends" 2>/dev/null
  ah_backends=""
  reset_kernel
}

run_agent_health() {
  local size=$agent_health_size dir=$work/agent-health warmup window cpus pod_cpu pin services victims
  read -r warmup window <<<"$agent_health_time"
  local bound_ms=2500 interval_ms=1000 port=18080 prefix=10.203.0.0/16
  [ -f "$dir/victims" ] || { fail "agent health: no inputs in $dir (gen-inputs.py --health-backends)"; return; }
  services=$(((size + 99) / 100))
  victims=$(wc -l <"$dir/victims")
  cpus=$(nproc)
  [ "$cpus" -ge 2 ] || { fail "agent health: needs 2 CPUs or more (the backends get the last one), has $cpus"; return; }
  pod_cpu=$((cpus - 1)) pin="0-$((cpus - 2))"
  log "agent with health checks: $size backends in $services Services, $victims to kill"
  reset_kernel

  ah_netns=ipvs-bench-ah-$$ ah_host_if=ibah$$h
  local pod_if=ibah$$p
  if ! { ip netns add "$ah_netns" &&
    ip link add "$ah_host_if" type veth peer name "$pod_if" netns "$ah_netns" &&
    ip addr add 169.254.203.1/30 dev "$ah_host_if" && ip link set "$ah_host_if" up &&
    ip -n "$ah_netns" link set lo up && ip -n "$ah_netns" addr add 169.254.203.2/30 dev "$pod_if" &&
    ip -n "$ah_netns" link set "$pod_if" up && ip -n "$ah_netns" route add local "$prefix" dev lo &&
    ip route add "$prefix" via 169.254.203.2 dev "$ah_host_if" &&
    ip netns exec "$ah_netns" sh -c "printf '%x' $((1 << pod_cpu)) >/sys/class/net/$pod_if/queues/rx-0/rps_cpus"; } 2>"$work/ah-topology.err"; then
    fail "agent health: the veth topology could not be set up: $(tail -n 2 "$work/ah-topology.err")"
    ah_cleanup
    return
  fi
  # A deeper receive backlog for the pod side (see bench.sh). The setting is the kernel's, shown only in
  # the first network namespace: set through PID 1's (restored in ah_cleanup).
  ah_backlog=$(ah_sysctl_backlog) && ah_sysctl_backlog 30000 || ah_backlog=""
  printf 'agent_health_backlog\t%s\n' "$([ -n "$ah_backlog" ] && echo "30000 (raised from $ah_backlog while it runs)" || echo "not raised (unreadable here)")" >>"$out/environment.tsv"

  if ! ah_start_backends "$size" "$port" "${prefix%/*}" "$pod_cpu"; then
    fail "agent health: the backends did not start: $(tail -n 2 "$work/ah-backends.out")"
    ah_cleanup
    return
  fi
  local line="" t0

  # The agent, and its steady state: every Service programmed and every backend up.
  rm -rf "$work/ah-manifests"
  cp -r "$dir/manifests" "$work/ah-manifests"
  taskset -c "$pin" "$bin/ipvs-agent" --manifests "$work/ah-manifests" --state-file "$state" \
    --metrics-address "127.0.0.1:$metrics_port" --sync-period 1h --node-name bench --node-ip 192.0.2.1 \
    --log-format json 2>"$work/agent-health.log" &
  ah_agent=$!
  local up=0 programmed=0 steady=0
  t0=${EPOCHREALTIME/./}
  while [ $((${EPOCHREALTIME/./} - t0)) -lt 300000000 ]; do
    running "$ah_agent" || break
    if ah_metrics; then
      programmed=$AH_PROGRAMMED up=$AH_UP
      if [ "$programmed" = "$services" ] && [ "$up" = "$size" ]; then steady=1; break; fi
    fi
    pause 0.2
  done
  if [ "$steady" = 0 ]; then
    fail "agent health: not steady after $(((${EPOCHREALTIME/./} - t0) / 1000000)) s ($programmed of $services Services programmed, $up of $size backends up); log: $(tail -n 3 "$work/agent-health.log")"
    cp "$work/agent-health.log" "$out/" 2>/dev/null
    ah_cleanup
    return
  fi
  record agent-health start-to-steady "$size" 1 $((${EPOCHREALTIME/./} - t0)) us
  log "agent health: $size backends up after $(((${EPOCHREALTIME/./} - t0) / 1000)) ms; warm-up $warmup s, window $window s"
  pause "$warmup"

  # CPU over the window: utime + stime of the agent, every thread; checks from its metrics.
  local hz ticks0="" ticks1="" checks0="" checks1="" w0 w1
  hz=$(getconf CLK_TCK)
  # The check counts are read first (curl takes a while to start in the emulator; the agent renders
  # its metrics at the end of that), the CPU and the clock right after, so that both cover one span.
  ah_metrics && checks0=$AH_CHECKS
  cpu_ticks "$ah_agent" && ticks0=$REPLY
  w0=${EPOCHREALTIME/./}
  pause "$window"
  ah_metrics && checks1=$AH_CHECKS
  cpu_ticks "$ah_agent" && ticks1=$REPLY
  w1=${EPOCHREALTIME/./}
  if [ -z "${ticks0:-}" ] || [ -z "${ticks1:-}" ] || [ -z "${checks0:-}" ] || [ -z "${checks1:-}" ] || [ "$checks1" -le "$checks0" ]; then
    fail "agent health: no CPU or check count over the window (agent alive: $(running "$ah_agent" && echo yes || echo no))"
    ah_cleanup
    return
  fi
  awk -v t=$((ticks1 - ticks0)) -v hz="$hz" -v us=$((w1 - w0)) -v c=$((checks1 - checks0)) -v n="$size" -v i="$interval_ms" 'BEGIN {
    cpu = t / hz; wall = us / 1e6; rate = c / wall
    printf "agent-cpu\t%.2f\tpercent-of-core\n", cpu / wall * 100
    printf "agent-cpu-per-check\t%.2f\tus\n", cpu / c * 1e6
    printf "agent-cpu-projected\t%.2f\tpercent-of-core\n", cpu / c * 1e6 * (n * 1000 / i) / 1e4
    printf "agent-checks-per-second\t%.0f\tchecks/s\n", rate
    printf "target-rate\t%.0f\tchecks/s\n", n * 1000 / i
  }' | while IFS=$'\t' read -r tool value unit; do record agent-health "$tool" "$size" 1 "$value" "$unit"; done
  record agent-health agent-rss "$size" 1 "$(awk '/^VmRSS/ { print $2 }' "/proc/$ah_agent/status")" KiB
  record agent-health agent-peak-rss "$size" 1 "$(awk '/^VmHWM/ { print $2 }' "/proc/$ah_agent/status")" KiB
  record agent-health agent-threads "$size" 1 "$(awk '/^Threads/ { print $2 }' "/proc/$ah_agent/status")" count
  local quiesced_before
  quiesced_before=$(ipvsadm -Ln | awk '$1 == "->" && $4 == 0' | wc -l)

  # Kill 1% of the backends; ipvs-wait polls the kernel for each one's weight 0.
  rm -f "$work/ah-wait.ready"
  "$bin/ipvs-wait" --list "$dir/victims" weight=0 "$work/ah-wait.ready" 60 >"$work/ah-wait.out" 2>"$work/ah-wait.err" &
  local waiter=$!
  until [ -e "$work/ah-wait.ready" ] || ! running "$waiter"; do pause 0.01; done
  : >"$work/ah-backends.out" # appended to by the backends (O_APPEND): their answer is its first line
  echo "kill $(cut -d' ' -f1 "$dir/victims" | paste -sd' ')" >&7
  local killed=""
  t0=${EPOCHREALTIME/./}
  until [ -n "$killed" ] || [ $((${EPOCHREALTIME/./} - t0)) -gt 10000000 ]; do
    read -r line <"$work/ah-backends.out" && case "$line" in killed*) killed=${line#killed } ;; esac
    [ -n "$killed" ] || pause 0.01
  done
  wait "$waiter"
  local waited=$?
  if [ -z "$killed" ] || [ "$waited" = 2 ] || [ "$waited" = 3 ] || { [ "$waited" != 0 ] && ! grep -q 'after the timeout' "$work/ah-wait.err"; }; then
    fail "agent health: killing backends or waiting for weight 0 failed (ipvs-wait status $waited): $(tail -n 2 "$work/ah-wait.err") $(tail -n 1 "$work/ah-backends.out")"
    ah_cleanup
    return
  fi
  local quiesced_after
  quiesced_after=$(ipvsadm -Ln | awk '$1 == "->" && $4 == 0' | wc -l)
  awk -v killed="$killed" -v victims="$victims" -v bound="$bound_ms" -v before="$quiesced_before" -v after="$quiesced_after" -v i="$interval_ms" '
    $1 == "polls" { polls = $2; span = $4 - $3; next }
    $2 == "already" { already++; next }
    { ms[++n] = ($2 - killed / 1000) / 1000 }
    function pct(p,  r) { r = int(p / 100 * n); if (r < p / 100 * n) r++; if (r < 1) r = 1; return ms[r] }
    END {
      for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++) if (ms[b] < ms[a]) { t = ms[a]; ms[a] = ms[b]; ms[b] = t }
      if (n > 0) {
        printf "detect-p50\t%.1f\tms\n", pct(50); printf "detect-p99\t%.1f\tms\n", pct(99); printf "detect-max\t%.1f\tms\n", ms[n]
      }
      printf "detect-bound\t%.1f\tms\n", bound; printf "interval\t%.1f\tms\n", i
      printf "killed\t%d\tbackends\n", victims; printf "missed\t%d\tbackends\n", victims - n - already
      printf "already-down\t%d\tbackends\n", already
      fd = after - n - already; if (before > fd) fd = before; printf "false-down\t%d\tbackends\n", fd
      if (polls > 1) printf "poll-interval\t%.0f\tus\n", span / (polls - 1)
    }' "$work/ah-wait.out" | while IFS=$'\t' read -r tool value unit; do record agent-health "$tool" "$size" 1 "$value" "$unit"; done
  log "agent health: $(awk '$1 != "polls" && $2 != "already"' "$work/ah-wait.out" | wc -l) of $victims killed backends at weight 0 in the kernel ($(tail -n 1 "$work/ah-wait.err" 2>/dev/null))"
  kill -TERM "$ah_agent" 2>/dev/null
  wait "$ah_agent" 2>/dev/null
  ah_agent=""
  cp "$work/agent-health.log" "$out/" 2>/dev/null
  exec 7>&-
  wait "$ah_backends" 2>/dev/null
  ah_backends=""
  reset_kernel

  # The library alone on the same backends: health-bench starts its own health-backends, same place.
  log "agent health: health-bench (the library) on the same $size backends"
  if ! taskset -c "$pin" "$bin/health-bench" --server "$bin/health-backends" --backends "$size" --port "$port" \
    --base-address "${prefix%/*}" --server-launcher "ip netns exec $ah_netns taskset -c $pod_cpu" \
    --warmup "$warmup" --window "$window" --tsv 2>"$work/ah-library.log" >"$work/ah-library.tsv"; then
    fail "agent health: health-bench on $size backends failed: $(tail -n 2 "$work/ah-library.log")"
  fi
  sed 's/^health\t\([^\t]*\)/agent-health\tlibrary-\1/' "$work/ah-library.tsv" >>"$out/results.tsv"
  cp "$work/ah-library.log" "$out/agent-health-library.log" 2>/dev/null

  # keepalived on the same backends, same CPUs, warm-up and window: the agent / keepalived ratio.
  ah_keepalived "$size" "$port" "${prefix%/*}" "$pod_cpu" "$pin" "$warmup" "$window"
  ah_cleanup
}
trap 'ah_cleanup' EXIT
trap 'exit 130' INT TERM

if [ "$agent_health_only" = 1 ]; then
  [ "$agent_health_size" != 0 ] || fail "--agent-health-only without --agent-health-size"
  [ "$agent_health_size" = 0 ] || run_agent_health
  log "done"
  exit "$failed"
fi

# ---- 1. cold programming -----------------------------------------------------------------------

[ -z "$daemon_only" ] && [ "$api_only" = 0 ] || sizes="" # --daemon-only, --api-only: no cold programming
for entry in $sizes; do
  size=${entry%%:*} n=${entry#*:}
  tools="floor ipvsctl"
  # floor-vips and moby-ipvs-vips too: adding tens of thousands of addresses to one interface grows
  # faster than linearly.
  [ "$size" -gt "$slow_max" ] || tools="$tools floor-vips ipvsadm moby-ipvs moby-ipvs-vips ipvs-agent"
  [ "$size" -gt "$kube_proxy_max" ] || tools="$tools moby-ipvs-kube-proxy"
  [ -z "$cold_only" ] || tools=$cold_only
  for rep in $(seq 1 "$n"); do
    for tool in $tools; do
      fresh_cold_run "$tool" "$work/$size" "$([ "$rep" = 1 ] && echo 1 || echo 0)"
      rc=$?
      if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
        fail "cold $tool $size rep $rep: $(tail -n 3 "$work/$tool.log")"
        continue
      fi
      read -r us <"$work/cold.us"
      read -r cpu_us <"$work/cold.cpu"
      record cold "$tool" "$size" "$rep" "$us" us
      record cold-cpu "$tool" "$size" "$rep" "$cpu_us" us
      log "cold $tool $size services rep $rep: $((us / 1000)) ms, CPU $((cpu_us / 1000)) ms"
      [ "$rc" = 0 ] || fail "cold $tool $size: the kernel table or the VIPs differ from the rules: $(tail -n 1 "$work/$tool.log")"
    done
  done
done

if [ -n "$cold_only" ]; then
  log "done"
  exit "$failed"
fi

# ---- 2. the agent as a daemon --------------------------------------------------------------------

# daemon_workload TOOL SUFFIX: the workload with the agent build TOOL (ipvs-agent, or
# ipvs-agent-base for a before/after run); its records' workload names end in SUFFIX.
daemon_workload() {
  local tool=$1 suffix=$2
  size=$agent_size
  reset_kernel
  daemon_dir=$work/agentd
  rm -rf "$daemon_dir"
  mkdir -p "$daemon_dir"
  cp -r "$work/$size/manifests" "$daemon_dir/manifests"
  # shellcheck disable=SC1090,SC1091 # written by gen-inputs.py
  . "$work/$size/change.env"
  hz=$(getconf CLK_TCK)
  # Microseconds of CPU (user + system, every thread) the agent used since $1 clock ticks.
  agent_cpu_us_since() { cpu_ticks "$agent" && echo $(((REPLY - $1) * 1000000 / hz)); }
  start_files_agent "$tool" "$daemon_dir/manifests" "$work/agent-daemon.log"
  synced=0
  wait_programmed "$agent" "$size" && synced=1
  t1=${EPOCHREALTIME/./}

  # Waits until the agent's reconcile count exceeds $1; fails after 120 s.
  wait_sync() {
    local start
    start=${EPOCHREALTIME/./}
    while [ $((${EPOCHREALTIME/./} - start)) -lt 120000000 ]; do
      fetch_metrics && int ipvs_agent_sync_duration_seconds_count && [ "$REPLY" -gt "$1" ] && return 0
      pause 0.02
    done
    return 1
  }
  # Microseconds of reconcile time since the sum $1 (seconds) of the sync-duration metric.
  sync_us_since() { awk -v a="${M[ipvs_agent_sync_duration_seconds_sum]:-0}" -v b="$1" 'BEGIN { printf "%d", (a - b) * 1000000 }'; }

  if [ "$synced" = 1 ]; then
    record_synced "agent-daemon$suffix" 1
    record agent-daemon$suffix first-sync "$size" 1 "$(sync_us_since 0)" us
    int ipvs_agent_operations_applied_total && record agent-daemon$suffix operations "$size" 1 "$REPLY" count
    record_logged agent-daemon$suffix load "$size" 1 "loaded manifests" milliseconds first
    record_logged agent-daemon$suffix apply "$size" 1 "applied manifests" apply_milliseconds first
    # The memory once the first pass has ended (this build logs its end; an older one is read at once).
    if [ "$tool" = ipvs-agent ]; then
      for _ in $(seq 600); do grep -qF '"message":"applied manifests"' "$work/agent-daemon.log" && break; pause 0.1; done
    fi
    record agent-daemon$suffix rss "$size" 1 "$(awk '/^VmRSS/ { print $2 }' "/proc/$agent/status")" KiB
    record agent-daemon$suffix peak-rss "$size" 1 "$(awk '/^VmHWM/ { print $2 }' "/proc/$agent/status")" KiB
    log "$tool daemon synced $size services in $(((t1 - t0) / 1000)) ms"

    # No-op resync: SIGHUP reloads every manifest and reconciles; nothing may be written.
    for rep in $(seq 1 "$reps"); do
      fetch_metrics
      int ipvs_agent_sync_duration_seconds_count && count=$REPLY
      int ipvs_agent_operations_applied_total && ops=$REPLY
      sum=${M[ipvs_agent_sync_duration_seconds_sum]}
      cpu_ticks "$agent" && ticks0=$REPLY
      t0=${EPOCHREALTIME/./}
      kill -HUP "$agent"
      if ! wait_sync "$count"; then fail "no-op resync rep $rep: no reconcile within 120 s"; break; fi
      t1=${EPOCHREALTIME/./}
      record noop$suffix cpu "$size" "$rep" "$(agent_cpu_us_since "$ticks0")" us
      int ipvs_agent_operations_applied_total && record noop$suffix writes "$size" "$rep" $((REPLY - ops)) count
      record noop$suffix reconcile "$size" "$rep" "$(sync_us_since "$sum")" us
      record noop$suffix signal-to-done "$size" "$rep" $((t1 - t0)) us
      record_logged noop$suffix load "$size" "$rep" "applied manifests" load_milliseconds
      log "$tool no-op resync rep $rep: $(((t1 - t0) / 1000)) ms from SIGHUP to reconciled"
    done

    # One endpoint added to one service among $size (and removed again), by replacing one file;
    # ipvs-wait polls the kernel every millisecond from one process and says when it changed.
    original=$work/$size/manifests/$CHANGE_FILE
    changed=$work/$size/change/$CHANGE_FILE
    for rep in $(seq 1 "$reps"); do
      for step in add remove; do
        fetch_metrics
        int ipvs_agent_sync_duration_seconds_count && count=$REPLY
        int ipvs_agent_operations_applied_total && ops=$REPLY
        sum=${M[ipvs_agent_sync_duration_seconds_sum]}
        if [ "$step" = add ]; then source=$changed state_wanted=weight=1; else source=$original state_wanted=not-weight=1; fi
        cp "$source" "$daemon_dir/manifests/.$CHANGE_FILE.tmp"
        rm -f "$work/wait.ready"
        "$bin/ipvs-wait" "$CHANGE_VIP" "$CHANGE_REAL" "$state_wanted" "$work/wait.ready" 120 >"$work/wait.out" 2>"$work/wait.err" &
        waiter=$!
        until [ -e "$work/wait.ready" ] || ! running "$waiter"; do pause 0.01; done
        cpu_ticks "$agent" && ticks0=$REPLY
        t0=${EPOCHREALTIME/./}
        mv "$daemon_dir/manifests/.$CHANGE_FILE.tmp" "$daemon_dir/manifests/$CHANGE_FILE"
        if ! wait "$waiter"; then fail "endpoint $step rep $rep: $(cat "$work/wait.err")"; break 2; fi
        read -r seen polls <"$work/wait.out"
        wait_sync "$count" || true
        record "endpoint-$step$suffix" cpu "$size" "$rep" "$(agent_cpu_us_since "$ticks0")" us
        record "endpoint-$step$suffix" file-to-kernel "$size" "$rep" $((seen - t0)) us
        record "endpoint-$step$suffix" poll-interval "$size" "$rep" $(((seen - t0) / polls)) us
        int ipvs_agent_operations_applied_total && record "endpoint-$step$suffix" writes "$size" "$rep" $((REPLY - ops)) count
        record "endpoint-$step$suffix" reconcile "$size" "$rep" "$(sync_us_since "$sum")" us
        # An incremental sync logs one line (its load and its reconcile timed in it).
        record_logged "endpoint-$step$suffix" load "$size" "$rep" "applied manifests" load_milliseconds
        record_logged "endpoint-$step$suffix" apply "$size" "$rep" "applied manifests" apply_milliseconds
        log "$tool endpoint $step rep $rep: $(((seen - t0) / 1000)) ms from file replaced to kernel updated"
        pause "$settle" # the agent's upkeep after a change (draining endpoints, health) done
      done
    done
  else
    fail "agent daemon: not synced after $(((t1 - t0) / 1000000)) s; log: $(tail -n 5 "$work/agent-daemon.log")"
  fi
  kill -TERM "$agent" 2>/dev/null # the agent leaves its table in place
  wait "$agent" 2>/dev/null
  cp "$work/agent-daemon.log" "$out/agent-daemon$suffix.log" 2>/dev/null # kept with the results, for a look at each pass
}

for tool in ${daemon_only:-ipvs-agent}; do
  case "$tool" in ipvs-agent) daemon_workload "$tool" "" ;; *) daemon_workload "$tool" "-${tool#ipvs-agent-}" ;; esac
done
if [ -n "$daemon_only" ]; then
  log "done"
  exit "$failed"
fi

# ---- 2b. the agent following an API server ----------------------------------------------------------

# In a fresh network namespace (see --api-once above), with the files workload's objects.
if [ "$api_samples" -gt 0 ]; then
  log "the agent following an API server: $agent_size Services, $api_samples changes at $api_rate events/s"
  quick_flag=()
  [ "$quick" = 0 ] || quick_flag=(--quick)
  unshare --net -- bash "$0" --bin "$bin" --inputs "$inputs" --out "$out" --agent-size "$agent_size" \
    --api-samples "$api_samples" --api-rate "$api_rate" --api-once "${quick_flag[@]}" ||
    { failed=1; [ -s "$out/errors.txt" ] || fail "api: the workload exited with an error"; }
  # The two sources' first programmings again, alternated, each in a fresh namespace: one run each
  # says little on a shared, emulated machine.
  for rep in $(seq 2 "$first_reps"); do
    log "first programming, rep $rep of $first_reps: the files source, then the API server"
    unshare --net -- bash "$0" --bin "$bin" --inputs "$inputs" --out "$out" --agent-size "$agent_size" --files-once --rep "$rep" ||
      { failed=1; [ -s "$out/errors.txt" ] || fail "files rep $rep: the run exited with an error"; }
    pause "$settle"
    unshare --net -- bash "$0" --bin "$bin" --inputs "$inputs" --out "$out" --agent-size "$agent_size" \
      --api-samples "$api_samples" --api-rate "$api_rate" --api-once --first-only --rep "$rep" "${quick_flag[@]}" ||
      { failed=1; [ -s "$out/errors.txt" ] || fail "api rep $rep: the run exited with an error"; }
    pause "$settle"
  done
fi
if [ "$api_only" = 1 ]; then
  log "done"
  exit "$failed"
fi

# ---- 3. listing the whole table (the agent's, left in place) ----------------------------------------------------------------

size=$agent_size
if table_matches "$work/$size/rules" || { reset_kernel && "$bin/ipvs-floor" "$work/$size/rules"; }; then
  ipvsadm -L -n >"$work/ipvsadm-L.txt"
  "$bin/ipvsctl" -L -n >"$work/ipvsctl-L.txt"
  cmp -s "$work/ipvsadm-L.txt" "$work/ipvsctl-L.txt" || fail "ipvsctl -Ln differs from ipvsadm -Ln at $size services"
  for rep in $(seq 1 "$reps"); do
    for tool in "ipvsctl -Ln" "ipvsadm -Ln" "ipvsctl -Sn" "ipvsadm -Sn" "moby-ipvs dump"; do
      case "$tool" in
        ipvsctl*) command=("$bin/ipvsctl" "${tool#* }") ;;
        ipvsadm*) command=(ipvsadm "${tool#* }") ;;
        moby-ipvs*) command=("$bin/moby-ipvs-bench" dump) ;;
      esac
      t0=${EPOCHREALTIME/./}
      if ! "${command[@]}" >/dev/null 2>"$work/list.err"; then
        fail "list $tool: $(tail -n 3 "$work/list.err")"
        continue
      fi
      t1=${EPOCHREALTIME/./}
      record list "$tool" "$size" "$rep" $((t1 - t0)) us
      log "list $tool $size services rep $rep: $(((t1 - t0) / 1000)) ms"
    done
  done
else
  fail "list: ipvs-floor could not load $size services"
fi

reset_kernel

# ---- 5. the agent's nftables table at --agent-size Services (nft-bench) ------------------------

# The agent's PacketFilter in a namespace of its own: the first sync (the whole table), then one
# endpoint changed again and again (set elements only), beside the IPVS figures of the same boot.
if [ -x "$bin/nft-bench" ]; then
  if "$bin/nft-bench" --tsv "$agent_size" $((reps * 7)) >>"$out/results.tsv" 2>"$work/nft-bench.err"; then
    log "nft-bench: the nftables table's first sync and one endpoint changed at $agent_size services"
  else
    fail "nft-bench: $(tail -n 3 "$work/nft-bench.err")"
  fi
fi

[ "$agent_health_size" = 0 ] || run_agent_health

log "done"
exit "$failed"
