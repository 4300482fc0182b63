#!/usr/bin/env bash
# Runs COMMAND against a real IPVS kernel, in a fresh network namespace whose
# loopback is up, and exits with COMMAND's exit status.
#
# Usage: Scripts/kernel-run.sh COMMAND [ARG...]
#
# - Host kernel with IPVS (/proc/net/ip_vs exists or `modprobe ip_vs` works),
#   i.e. a real node: COMMAND runs here, IPVS_KERNEL=host.
# - Otherwise (or with IPVS_FORCE_VM=1): COMMAND runs in a qemu VM booting
#   Debian's stock kernel (Scripts/vm/), IPVS_KERNEL=vm. See Scripts/vm/README.md.
# Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN for IPVS).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ $# -eq 0 ]; then
  sed -n '5p' "$0" | sed 's/^# //' >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "kernel-run.sh: must run as root (network namespaces and IPVS need CAP_SYS_ADMIN/CAP_NET_ADMIN)" >&2
  exit 2
fi

# A fresh network namespace: lo must be up before IPVS accepts real servers
# (until then the namespace has no local routes and every address is rejected).
in_netns=(unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh)

host_has_ipvs() {
  [ -e /proc/net/ip_vs ] && return 0
  command -v modprobe >/dev/null && modprobe -q ip_vs 2>/dev/null && [ -e /proc/net/ip_vs ]
}

if [ "${IPVS_FORCE_VM:-0}" != 1 ] && host_has_ipvs; then
  export IPVS_KERNEL=host
  exec "${in_netns[@]}" "$@"
fi

# prepare.sh's one-line report goes to stderr: stdout is COMMAND's alone.
"$here/vm/prepare.sh" >&2
export IPVS_KERNEL=vm
exec "$here/vm/run.sh" -- "${in_netns[@]}" "$@"
