#!/usr/bin/env bash
# Tests a package made by `make deb` in a clean Debian bookworm root (debootstrap, minbase, from
# Debian's mirror, with only the package's declared dependencies and systemd added):
#   - dpkg -i installs it (every dependency it declares is a Debian package name);
#   - ipvs-agent --version and ipvsctl --version run there, with no Swift installed;
#   - ipvsctl -Ln fails there with the clear "the kernel has no IPVS" error (the host has none);
#   - systemd-analyze verify accepts the installed unit (and `security --offline` is printed);
#   - the man pages format without warnings and the bash completions parse;
#   - the kernel VM (Scripts/kernel-run.sh) runs the installed binaries once: ipvs-agent --once on
#     the example cluster with only the unit's CapabilityBoundingSet=, then ipvsctl -Ln lists what
#     it programmed, and ipvsctl -Ln without CAP_NET_ADMIN fails.
# The root is cached as a tarball under .cache/debian/, keyed on its package list, so a repeated
# run only unpacks it (a few seconds); the first run downloads about 40 MB.
#
# Usage: Scripts/package/deb-test.sh PACKAGE.deb   (as root)
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  grep '^# Usage:' "$0" | sed 's/^# //' >&2
  exit 2
fi
deb=$(realpath "$1")
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=$here/.cache/debian
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
step() { echo "deb-test: $*"; }

# The declared dependencies' package names (versions and alternatives after the first dropped).
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep . | sort -u)
includes=$(printf '%s\n' $depends systemd | sort -u | paste -sd, -)
key=$(printf 'bookworm minbase %s' "$includes" | sha256sum | cut -c1-12)
tarball=$cache/bookworm-$key.tar
mkdir -p "$cache/debs"
if [ ! -f "$tarball" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  step "debootstrap bookworm (minbase + $includes) from $mirror"
  scratch=$(mktemp -d)
  debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$includes" bookworm "$scratch" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; fail "debootstrap failed (log: $cache/debootstrap.log)"; }
  tar -C "$scratch" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  rm -rf "$scratch"
fi

# A fresh root for every run, under .cache so that the kernel VM (which sees the host's files) finds it.
root=$cache/root
umount "$root/proc" 2>/dev/null || true
rm -rf --one-file-system "$root" && mkdir -p "$root" && tar -C "$root" -xf "$tarball"
cp "$deb" "$root/tmp/package.deb"
# /proc as on any running system: the Swift runtime linked in reads the arguments from /proc/self/cmdline.
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step "dpkg -i $(basename "$deb")"
in_root dpkg -i /tmp/package.deb >/dev/null || fail "dpkg -i refused the package"
! in_root sh -c 'ls /usr/lib/swift* /usr/lib/*/libswiftCore* 2>/dev/null | grep -q .' || fail "the root has a Swift runtime"

version=$(dpkg-deb -f "$deb" Version)
got=$(in_root ipvs-agent --version) || fail "ipvs-agent --version exited $?"
[ "$got" = "ipvs-agent $version" ] || fail "ipvs-agent --version printed '$got'"
got=$(in_root ipvsctl --version) || fail "ipvsctl --version exited $?"
[ "$got" = "ipvsadm v1.31 2019/12/24 (compiled with ipvsctl and IPVS v1.2.1)
ipvsctl $version (swift-ipvs)" ] || fail "ipvsctl --version printed '$got'"
step "ipvs-agent --version and ipvsctl --version: $version"

if [ ! -e /proc/net/ip_vs ]; then
  status=0; error=$(in_root ipvsctl -Ln 2>&1 >/dev/null) || status=$?
  [ $status -ne 0 ] || fail "ipvsctl -Ln succeeded on a kernel without IPVS"
  grep -q "the kernel has no IPVS; load the ip_vs module" <<<"$error" || fail "ipvsctl -Ln said: $error"
  step "ipvsctl -Ln without IPVS: exit $status, '$error'"
fi

unit=/usr/lib/systemd/system/ipvs-agent.service
in_root systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify $unit"
step "systemd-analyze verify $unit: ok; $(in_root systemd-analyze security --offline=yes "$unit" 2>&1 | grep 'Overall exposure')"

for page in ipvs-agent ipvsctl; do
  warnings=$(man --warnings -l "$root/usr/share/man/man8/$page.8.gz" 2>&1 >/dev/null) || fail "man $page.8"
  [ -z "$warnings" ] || fail "man $page.8 warns: $warnings"
  bash -n "$root/usr/share/bash-completion/completions/$page" || fail "bash completion of $page"
done
step "man pages and bash completions: ok"

# The installed binaries on a real IPVS kernel (the host's, in a fresh network namespace, or the VM),
# with only the capabilities the systemd unit leaves the agent (its CapabilityBoundingSet=); and
# ipvsctl without CAP_NET_ADMIN, which must fail saying so.
unit_caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$root$unit" | tr 'A-Z ' 'a-z\n' | sed 's/^cap_/+/' | paste -sd, -)
[ -n "$unit_caps" ] || fail "no CapabilityBoundingSet= in $unit"
umount "$root/proc"
listing=$("$here/Scripts/kernel-run.sh" unshare --mount --propagation private -- sh -c \
  'mount -t proc proc "$1/proc" && exec chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CAPS="$2" sh -c "$3"' \
  sh "$root" "$unit_caps" '
  mkdir -p /run/ipvs-agent &&
  setpriv --bounding-set "-all,$CAPS" -- ipvs-agent --manifests /usr/share/doc/swift-ipvs/examples/cluster.yaml \
    --node-name node-1 --node-ip 10.0.0.4 --metrics-address none --once >/tmp/agent.log 2>&1 || { cat /tmp/agent.log; exit 1; }
  ipvsctl -Ln || exit 1
  if setpriv --bounding-set "-all,+setuid,+setgid,+kill" -- ipvsctl -Ln >/dev/null 2>/tmp/denied.log; then echo "ipvsctl -Ln worked without CAP_NET_ADMIN"; exit 1; fi
  echo "denied: $(cat /tmp/denied.log)"') || fail "the installed binaries on the IPVS kernel: $listing"
grep -q '^TCP  10.96.0.10:53 ' <<<"$listing" || fail "ipvsctl -Ln after ipvs-agent --once lacks TCP 10.96.0.10:53: $listing"
step "on the IPVS kernel, with the unit's capabilities only ($unit_caps): ipvs-agent --once programmed $(grep -c '^[TUS]' <<<"$listing") virtual services, ipvsctl -Ln listed them"
step "without CAP_NET_ADMIN: $(grep '^denied: ' <<<"$listing" | sed 's/^denied: //')"
rm -rf --one-file-system "$root"
step "ok"
