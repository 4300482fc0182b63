#!/usr/bin/env bash
# The inside of `make bench`: runs every workload on the IPVS kernel it is started on (the VM,
# through Scripts/kernel-run.sh, or a real node's fresh network namespace) and appends one line
# per measurement to OUT/results.tsv. Scripts/bench.sh builds everything, starts this once and
# turns the results into docs/benchmarks.md.
#
# Usage: Benchmarks/guest-bench.sh --bin DIR --inputs DIR --out DIR [--sizes "1000:5 10000:3"]
#          [--reps N] [--agent-size N] [--kube-proxy-max SIZE] [--slow-max SIZE] [--quick]
#
#   --bin     ipvsctl, ipvs-agent, ipvs-floor, ipvs-wait and moby-ipvs-bench
#   --inputs  one folder per size (SIZE/rules, SIZE/manifests, ...) and warmup/, from
#             Benchmarks/gen-inputs.py
#   --sizes   SERVICES:REPETITIONS of cold programming; --reps: repetitions of the other workloads
#   --agent-size: services of the agent daemon workloads and of the listings (of the agent's table)
#   --kube-proxy-max: the kube-proxy pattern of the moby/ipvs driver runs up to this size only;
#   --slow-max: ipvsadm, moby/ipvs, the agent and the floor with VIPs (minutes each in the emulator) up to this size only
#   --quick   no copy to memory and no warm-up: every path once, for the smoke run
#   --out     results.tsv (workload, tool, size, repetition, value, unit), environment.tsv, errors.txt
#
# Exit status 0 when every tool path worked, 1 otherwise (see OUT/errors.txt).
set -uo pipefail

bin="" inputs="" out="" sizes="1000:5 10000:3" reps=3 agent_size=10000 kube_proxy_max=1000
slow_max=1000000 quick=0 settle=2 cold_once=""
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
    ipvs-agent) "$bin/ipvs-agent" --manifests "$dir/manifests" --once --state-file "$state" --metrics-address none \
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

# The "milliseconds" of the agent's last log line with message $1 (JSON log), as microseconds;
# empty when the agent does not log it.
logged_us() {
  grep -F "\"message\":\"$1\"" "$work/agent-daemon.log" | tail -n 1 |
    sed -n 's/.*"milliseconds":"\([0-9.]*\)".*/\1/p' | awk '{ printf "%d", $1 * 1000 }'
}
# record_logged WORKLOAD TOOL SIZE REP MESSAGE: records logged_us when there is one.
record_logged() {
  local value
  value=$(logged_us "$5")
  [ -z "$value" ] || record "$1" "$2" "$3" "$4" "$value" us
}

# One cold run of TOOL in a fresh network namespace (see reset_kernel): the elapsed microseconds
# go to $work/cold.us; exit status 3 when the table (or the VIPs bound) differs from the rules afterwards.
if [ -n "$cold_once" ]; then
  tool=${cold_once%%:*} rest=${cold_once#*:}
  dir=${rest%:*} verify=${rest##*:}
  ip link set lo up
  rm -f "$state"
  t0=${EPOCHREALTIME/./}
  cold_run "$tool" "$dir"
  rc=$?
  t1=${EPOCHREALTIME/./}
  echo $((t1 - t0)) >"$work/cold.us"
  if [ "$rc" = 0 ] && [ "$verify" = 1 ] && ! table_matches "$dir/rules"; then rc=3; fi
  # The tools that bind VIPs must have bound one address per service.
  case "$tool" in floor-vips | moby-ipvs-vips | ipvs-agent)
    if [ "$rc" = 0 ] && [ "$verify" = 1 ] &&
      [ "$(ip -4 -o addr show dev kube-ipvs0 | wc -l)" != "$(grep -c '^-A' "$dir/rules")" ]; then
      echo "$tool: kube-ipvs0 does not hold one address per service" >>"$work/$tool.log"
      rc=3
    fi ;;
  esac
  ipvsadm -C # flushed here, the namespace's teardown is light
  exit "$rc"
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
  cp "$bin/ipvsctl" "$bin/ipvs-agent" "$bin/ipvs-floor" "$bin/ipvs-wait" "$bin/moby-ipvs-bench" "$work/bin/"
  bin=$work/bin

  # Warm-up: load every binary and its libraries once (on the small warmup input).
  for tool in ipvsctl ipvsadm moby-ipvs moby-ipvs-vips floor floor-vips ipvs-agent; do
    fresh_cold_run "$tool" "$work/warmup" 0 || fail "warm-up $tool: $(tail -n 3 "$work/$tool.log")"
  done
else
  cp -r "$inputs/." "$work/"
fi

# ---- 1. cold programming -----------------------------------------------------------------------

for entry in $sizes; do
  size=${entry%%:*} n=${entry#*:}
  tools="floor ipvsctl"
  # floor-vips and moby-ipvs-vips too: adding tens of thousands of addresses to one interface grows
  # faster than linearly.
  [ "$size" -gt "$slow_max" ] || tools="$tools floor-vips ipvsadm moby-ipvs moby-ipvs-vips ipvs-agent"
  [ "$size" -gt "$kube_proxy_max" ] || tools="$tools moby-ipvs-kube-proxy"
  for rep in $(seq 1 "$n"); do
    for tool in $tools; do
      fresh_cold_run "$tool" "$work/$size" "$([ "$rep" = 1 ] && echo 1 || echo 0)"
      rc=$?
      if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
        fail "cold $tool $size rep $rep: $(tail -n 3 "$work/$tool.log")"
        continue
      fi
      read -r us <"$work/cold.us"
      record cold "$tool" "$size" "$rep" "$us" us
      log "cold $tool $size services rep $rep: $((us / 1000)) ms"
      [ "$rc" = 0 ] || fail "cold $tool $size: the kernel table or the VIPs differ from the rules: $(tail -n 1 "$work/$tool.log")"
    done
  done
done

# ---- 2. the agent as a daemon --------------------------------------------------------------------

size=$agent_size
reset_kernel
daemon_dir=$work/agentd
rm -rf "$daemon_dir"
mkdir -p "$daemon_dir"
cp -r "$work/$size/manifests" "$daemon_dir/manifests"
# shellcheck disable=SC1090,SC1091 # written by gen-inputs.py
. "$work/$size/change.env"
"$bin/ipvs-agent" --manifests "$daemon_dir/manifests" --state-file "$state" --metrics-address "127.0.0.1:$metrics_port" \
  --sync-period 1h --node-name bench --node-ip 192.0.2.1 --log-format json 2>"$work/agent-daemon.log" &
agent=$!
t0=${EPOCHREALTIME/./}
synced=0
while [ $((${EPOCHREALTIME/./} - t0)) -lt 1200000000 ]; do
  kill -0 "$agent" 2>/dev/null || break
  if fetch_metrics 2>/dev/null; then
    int ipvs_agent_services_programmed && services=$REPLY
    int ipvs_agent_sync_duration_seconds_count && count=$REPLY
    if [ "$services" = "$size" ] && [ "$count" != 0 ]; then
      synced=1
      break
    fi
  fi
  pause 0.05
done
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
  record agent-daemon start-to-synced "$size" 1 $((t1 - t0)) us
  record agent-daemon first-sync "$size" 1 "$(sync_us_since 0)" us
  int ipvs_agent_operations_applied_total && record agent-daemon operations "$size" 1 "$REPLY" count
  record_logged agent-daemon load "$size" 1 "loaded manifests"
  record_logged agent-daemon apply "$size" 1 "applied changes"
  record agent-daemon rss "$size" 1 "$(awk '/^VmRSS/ { print $2 }' "/proc/$agent/status")" KiB
  record agent-daemon peak-rss "$size" 1 "$(awk '/^VmHWM/ { print $2 }' "/proc/$agent/status")" KiB
  log "agent daemon synced $size services in $(((t1 - t0) / 1000)) ms"

  # No-op resync: SIGHUP reloads every manifest and reconciles; nothing may be written.
  for rep in $(seq 1 "$reps"); do
    fetch_metrics
    int ipvs_agent_sync_duration_seconds_count && count=$REPLY
    int ipvs_agent_operations_applied_total && ops=$REPLY
    sum=${M[ipvs_agent_sync_duration_seconds_sum]}
    t0=${EPOCHREALTIME/./}
    kill -HUP "$agent"
    if ! wait_sync "$count"; then fail "no-op resync rep $rep: no reconcile within 120 s"; break; fi
    t1=${EPOCHREALTIME/./}
    int ipvs_agent_operations_applied_total && record noop writes "$size" "$rep" $((REPLY - ops)) count
    record noop reconcile "$size" "$rep" "$(sync_us_since "$sum")" us
    record noop signal-to-done "$size" "$rep" $((t1 - t0)) us
    record_logged noop load "$size" "$rep" "loaded manifests"
    log "no-op resync rep $rep: $(((t1 - t0) / 1000)) ms from SIGHUP to reconciled"
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
      until [ -e "$work/wait.ready" ] || ! kill -0 "$waiter" 2>/dev/null; do pause 0.01; done
      t0=${EPOCHREALTIME/./}
      mv "$daemon_dir/manifests/.$CHANGE_FILE.tmp" "$daemon_dir/manifests/$CHANGE_FILE"
      if ! wait "$waiter"; then fail "endpoint $step rep $rep: $(cat "$work/wait.err")"; break 2; fi
      read -r seen polls <"$work/wait.out"
      wait_sync "$count" || true
      record "endpoint-$step" file-to-kernel "$size" "$rep" $((seen - t0)) us
      record "endpoint-$step" poll-interval "$size" "$rep" $(((seen - t0) / polls)) us
      int ipvs_agent_operations_applied_total && record "endpoint-$step" writes "$size" "$rep" $((REPLY - ops)) count
      record "endpoint-$step" reconcile "$size" "$rep" "$(sync_us_since "$sum")" us
      record_logged "endpoint-$step" load "$size" "$rep" "loaded manifests"
      record_logged "endpoint-$step" apply "$size" "$rep" "applied changes"
      log "endpoint $step rep $rep: $(((seen - t0) / 1000)) ms from file replaced to kernel updated"
      pause "$settle" # a removed endpoint without connections is deleted at the next drain check (1 s)
    done
  done
else
  fail "agent daemon: not synced after $(((t1 - t0) / 1000000)) s; log: $(tail -n 5 "$work/agent-daemon.log")"
fi
kill -TERM "$agent" 2>/dev/null # the agent leaves its table in place
wait "$agent" 2>/dev/null
cp "$work/agent-daemon.log" "$out/" 2>/dev/null # kept with the results, for a look at each pass

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

log "done"
exit "$failed"
