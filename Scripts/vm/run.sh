#!/usr/bin/env bash
# Boots the cached Debian kernel (see prepare.sh) in qemu and runs COMMAND in
# it, chrooted into the host's root filesystem (read-only), in the host's
# current directory. COMMAND's stdout/stderr stream to ours; we exit with its
# exit status.
#
# Usage: Scripts/vm/run.sh [--memory MB] [--cpus N] [--timeout SECONDS] -- COMMAND [ARG...]
#
# Environment:
#   IPVS_VM_MEMORY, IPVS_VM_CPUS, IPVS_VM_TIMEOUT  defaults for the options
#   IPVS_VM_VERBOSE=1  boot without 'quiet'; print timings and the guest console
#   IPVS_VM_KEEP=1     keep the per-run folder (.cache/vm/run/<id>) afterwards
#   IPVS_VM_SHELL=1    interactive: the guest console is attached to this
#                      terminal and COMMAND defaults to "bash -i"
#   IPVS_VM_PASS_ENV="A B"  extra variable names to pass into the guest
#   IPVS_VM_QEMU_ARGS="..."  extra qemu arguments (debugging)
# Exit status: COMMAND's; 124 if the VM timed out; 125 if the VM failed or
# never ran the command.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$repo/.cache/vm"
kdir="$cache/kernel"
share="$cache/run"

die() {
  echo "vm: $*" >&2
  exit 125
}
usage() {
  sed -n '7p' "$0" | sed 's/^# //' >&2
  exit 2
}

memory=${IPVS_VM_MEMORY:-2048}
cpus=${IPVS_VM_CPUS:-$(nproc)}
timeout=${IPVS_VM_TIMEOUT:-1800}
while [ $# -gt 0 ]; do
  case "$1" in
    --memory) memory=${2:?--memory needs a value in MB}; shift 2 ;;
    --cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
    --timeout) timeout=${2:?--timeout needs a value in seconds}; shift 2 ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) echo "run.sh: unexpected argument '$1'" >&2; usage ;;
  esac
done
bad() {
  echo "run.sh: $*" >&2
  exit 2
}
for v in "$memory" "$cpus" "$timeout"; do
  [[ "$v" =~ ^[0-9]+$ ]] || bad "--memory, --cpus and --timeout take whole numbers (got '$v')"
done
[ "$memory" -ge 256 ] || bad "--memory $memory is too small: the guest needs at least 256 MB"
[ "$cpus" -ge 1 ] || bad "--cpus must be at least 1"
[ "$timeout" -ge 1 ] || bad "--timeout must be at least 1 second"

shell=${IPVS_VM_SHELL:-0}
if [ "$shell" = 1 ]; then
  [ -t 0 ] || bad "IPVS_VM_SHELL=1 needs a terminal on stdin"
  [ $# -gt 0 ] || set -- bash -i
fi
[ $# -gt 0 ] || usage

command -v qemu-system-x86_64 >/dev/null ||
  die "qemu-system-x86_64 not found: run Scripts/vm/prepare.sh (installs qemu-system-x86)"
if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$kdir/initrd.img" ]; then
  "$here/prepare.sh" >&2 || die "Scripts/vm/prepare.sh failed"
fi

# The guest only sees the host's root through 9p: its own /tmp, /run, /proc,
# /sys and /dev hide the host's.
cwd=$(pwd -P)
case "$cwd/" in
  /tmp/* | /run/* | /proc/* | /sys/* | /dev/*)
    die "the current directory $cwd is not visible in the VM (the guest has its own /tmp, /run, /proc, /sys, /dev); cd elsewhere, e.g. the repository"
    ;;
esac

mkdir -p "$share"
# Forget runs older than a day (left by IPVS_VM_KEEP=1 or a killed run).
find "$share" -mindepth 1 -maxdepth 1 -type d -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
run=$(mktemp -d "$share/XXXXXXXX")
id=${run##*/}

qpid=""
tails=()
keep=${IPVS_VM_KEEP:-0}
# shellcheck disable=SC2317 # invoked through trap
cleanup() {
  local rc=$?
  [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
  for t in "${tails[@]}"; do kill "$t" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then
    echo "vm: kept $run" >&2
  else
    rm -rf "$run"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the job script, run by bash inside the chroot ----------------------------
path=${PATH:-}
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
  case ":$path:" in *":$d:"*) ;; *) path="${path:+$path:}$d" ;; esac
done
envs=("PATH=$path" "HOME=/tmp")
names=(LD_LIBRARY_PATH LANG LC_ALL PYENV_ROOT PYENV_VERSION CI)
# shellcheck disable=SC2206 # word splitting of the list is intended
names+=(${IPVS_VM_PASS_ENV:-})
while IFS= read -r n; do names+=("$n"); done < <(compgen -e | grep -E '^(IPVS_|TEST_)' || true)
for n in "${names[@]}"; do
  case "$n" in IPVS_VM_*) continue ;; esac # harness settings stay outside
  [ -n "${!n+set}" ] && envs+=("$n=${!n}")
done
{
  echo '#!/bin/bash'
  printf 'dir=%q\n' "$cwd"
  # shellcheck disable=SC2016 # expanded by the job script, not here
  echo 'cd -- "$dir" || { echo "vm: cannot cd to $dir inside the VM" >&2; exit 125; }'
  printf 'exec env -i'
  printf ' %q' "${envs[@]}" "$@"
  printf '\n'
} >"$run/job.sh"
printf '%s\n' "$share" >"$run/hostshare"
: >"$run/stdout"
: >"$run/stderr"

# The uncompressed vmlinux (PVH entry) boots ~3 s faster than the bzImage.
kernel="$kdir/vmlinuz"
[ ! -f "$kdir/vmlinux" ] || kernel="$kdir/vmlinux"
# qemu's option parser needs commas doubled in paths.
qpath() { printf '%s' "${1//,/,,}"; }
append="console=ttyS0 panic=-1 ipvsvm.job=$id"
# Verbose runs keep the kernel's boot messages in the console log.
[ "${IPVS_VM_VERBOSE:-0}" = 1 ] || append="quiet $append"
qemu=(qemu-system-x86_64 -accel 'tcg,thread=multi' -cpu max -m "$memory" -smp "$cpus"
  -nodefaults -no-user-config -no-reboot -display none
  -kernel "$(qpath "$kernel")" -initrd "$(qpath "$kdir/initrd.img")"
  -virtfs 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap'
  -virtfs "local,path=$(qpath "$share"),mount_tag=runshare,security_model=none,multidevs=remap")
# shellcheck disable=SC2206 # extra qemu arguments, split on spaces
qemu+=(${IPVS_VM_QEMU_ARGS:-})
if [ "$shell" = 1 ]; then
  qemu+=(-serial mon:stdio -append "$append ipvsvm.shell=1")
else
  qemu+=(-monitor none -serial "file:$(qpath "$run/console.log")" -append "$append")
fi

t0=$(date +%s.%N)
if [ "$shell" = 1 ]; then
  echo "vm: booting; the shell starts in $cwd. Leave with 'exit' (or Ctrl-A X)." >&2
  set +e
  timeout --foreground -k 5 "$timeout" "${qemu[@]}"
  qrc=$?
  set -e
else
  timeout -k 5 "$timeout" "${qemu[@]}" </dev/null >"$run/qemu.log" 2>&1 &
  qpid=$!
  tail -q -n +1 -s 0.2 --pid="$qpid" -F "$run/stdout" 2>/dev/null &
  tails+=($!)
  tail -q -n +1 -s 0.2 --pid="$qpid" -F "$run/stderr" >&2 2>/dev/null &
  tails+=($!)
  set +e
  wait "$qpid"
  qrc=$?
  set -e
  qpid=""
  for t in "${tails[@]}"; do wait "$t" 2>/dev/null || true; done
  tails=()
fi
t1=$(date +%s.%N)

failed_mods=$(cat "$run/modules-failed" 2>/dev/null || true)
[ -z "$failed_mods" ] || echo "vm: warning: modules that failed to load in the guest: $failed_mods" >&2

show_console() {
  echo "vm: ---- guest console (last 40 lines) ----" >&2
  tail -n 40 "$run/console.log" >&2 2>/dev/null || true
  if [ -s "$run/qemu.log" ]; then
    echo "vm: ---- qemu ----" >&2
    tail -n 20 "$run/qemu.log" >&2
  fi
  echo "vm: ----" >&2
}

if [ "${IPVS_VM_VERBOSE:-0}" = 1 ]; then
  [ "$shell" = 1 ] || show_console
  awk -v t0="$t0" -v t1="$t1" -v s="$(cat "$run/started" 2>/dev/null || echo '?')" \
    -v f="$(cat "$run/finished" 2>/dev/null || echo '?')" \
    'BEGIN { printf "vm: timings: guest boot-to-command %s s, command %s s, total wall %.1f s\n", s, (s == "?" || f == "?") ? "?" : sprintf("%.2f", f - s), t1 - t0 }' >&2
fi

if [ -f "$run/status" ]; then
  status=$(cat "$run/status")
  [[ "$status" =~ ^[0-9]+$ ]] || die "the guest wrote a bad exit status '$status'"
  exit "$status"
fi
if [ "$qrc" = 124 ]; then
  echo "vm: timed out after ${timeout} s (raise it with --timeout or IPVS_VM_TIMEOUT)" >&2
  [ "$shell" = 1 ] || show_console
  exit 124
fi
if [ -f "$run/started" ]; then
  echo "vm: the VM stopped while the command was running (qemu exit $qrc, no exit status written)" >&2
else
  echo "vm: the VM never ran the command (qemu exit $qrc); see the console below (IPVS_VM_VERBOSE=1 shows the whole boot). Try Scripts/vm/prepare.sh --force" >&2
fi
[ "$shell" = 1 ] || show_console
exit 125
