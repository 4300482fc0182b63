#!/usr/bin/env bash
# Prepares the kernel + initrd that Scripts/vm/run.sh boots to test against a
# real IPVS kernel (the host kernel has none). Idempotent; everything is cached
# under <repo>/.cache/vm/ and rebuilt only when an input changes (kernel package
# version, this script, guest-init.sh, the busybox binary).
#
# Usage: Scripts/vm/prepare.sh [--force]
# Prints one line saying what it did.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$repo/.cache/vm"
kdir="$cache/kernel"

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "prepare.sh: unknown argument '$1' (only --force is accepted)" >&2
    exit 2
    ;;
esac

die() {
  echo "prepare.sh: $*" >&2
  exit 1
}

# Host packages the VM harness (and the project's build) needs.
packages=(qemu-system-x86 busybox-static kmod cpio xz-utils ipvsadm iproute2
  libnl-3-dev libnl-genl-3-dev libnl-route-3-dev libnftables-dev libnetfilter-conntrack-dev pkg-config
  nftables iptables)

# Modules loaded in the guest, in this order. "?" marks optional ones (skipped
# when the kernel does not ship them). Dependencies (nf_conntrack, libcrc32c,
# netfs, ...) are resolved with modprobe and copied too.
modules=(
  crc32c_generic # libcrc32c (needed by ip_vs/nf_conntrack) asks for crc32c
  virtio_pci 9pnet_virtio 9p
  overlay # writable (throw-away) layer over the read-only host root
  ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh
  ip_vs_sh ip_vs_sed ip_vs_nq ip_vs_mh ip_vs_fo ip_vs_ovf '?ip_vs_twos'
  '?ip_vs_pe_sip'
  dummy veth
  # The agent's nftables table (PacketFilter) and the cluster tests' NAT, conntrack cleanup and LAN.
  nf_tables nft_ct nft_nat nft_masq nft_chain_nat nf_nat nf_conntrack nf_conntrack_netlink
  '?nft_fib' '?nft_fib_inet' '?nft_fib_ipv4' '?nft_fib_ipv6' '?nft_reject' '?nft_reject_inet'
  '?nft_limit' '?nft_numgen' '?nft_hash' '?nft_objref' '?nft_quota' '?nft_counter' bridge
  '?nft_compat' '?xt_tcpudp' '?iptable_filter' '?ip_tables' '?x_tables'
  '?ipip' '?gre' '?ip_gre' '?fou' '?fou6' '?ip6_tunnel' '?ip6_gre' '?sit'
)

mkdir -p "$cache" "$cache/run"
aptlog="$cache/apt.log"
apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    apt_updated=1
    apt-get update </dev/null >"$aptlog" 2>&1 ||
      die "apt-get update failed (log: .cache/vm/apt.log): $(tail -n 3 "$aptlog")"
  fi
}

need_root() {
  [ "$(id -u)" = 0 ] || die "$1 needs root (run as root, or install: ${packages[*]})"
}

# --- 1. host packages -------------------------------------------------------
missing=()
installed=""
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != 'install ok installed' ]; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  need_root "installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}" </dev/null >>"$aptlog" 2>&1 ||
    die "apt-get install ${missing[*]} failed (log: .cache/vm/apt.log): $(tail -n 3 "$aptlog")"
  installed="installed ${missing[*]}; "
fi

# One prepare at a time (concurrent runs share the cache).
exec 9>"$cache/.prepare.lock"
flock 9

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
busybox_bin=/bin/busybox
[ -x "$busybox_bin" ] || die "$busybox_bin missing; install busybox-static"
inputs_hash=$(hash_of "$0" "$here/guest-init.sh" "$busybox_bin")
have_build() { [ -f "$kdir/stamp" ] && [ -f "$kdir/vmlinuz" ] && [ -f "$kdir/initrd.img" ]; }
stamp_package() { sed -n 's/^package=\([^ ]*\).*/\1/p' "$kdir/stamp" | sed 's/=/ /'; }

# Fast path: same inputs, and apt's package lists have not changed since the
# last check (so linux-image-amd64 cannot point at another kernel).
if [ "$force" = 0 ] && have_build && [ "$kdir/stamp" -nt /var/lib/apt/lists ] &&
  [ "$(sed -n 's/.* inputs=//p' "$kdir/stamp")" = "$inputs_hash" ]; then
  echo "vm: ${installed}up to date ($(stamp_package), cached in .cache/vm/kernel)"
  exit 0
fi

# --- 2. which kernel --------------------------------------------------------
# linux-image-amd64 (candidate version) depends on the versioned image package,
# usually with an exact version: "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
resolve_kernel() {
  apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
    sed -n 's/^Depends: *\(linux-image-[^ ,]*\)\( *(= *\([^)]*\))\)\{0,1\}.*/\1 \3/p' | head -n1
}
kpkg=""
kver_pkg=""
read -r kpkg kver_pkg < <(resolve_kernel || true) || true
if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
  # No package lists yet (fresh machine): fetch them once.
  if (apt_update) 2>/dev/null; then
    apt_updated=1
    read -r kpkg kver_pkg < <(resolve_kernel || true) || true
  fi
fi
if [ -n "$kpkg" ] && [ -z "$kver_pkg" ]; then
  kver_pkg=$(apt-cache show --no-all-versions "$kpkg" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')
fi
if [ -z "$kpkg" ] || [ -z "$kver_pkg" ]; then
  if have_build; then
    echo "vm: ${installed}apt cannot resolve linux-image-amd64 (offline?); using the cached kernel ($(stamp_package))"
    exit 0
  fi
  die "cannot resolve the kernel package: 'apt-cache show linux-image-amd64' gave no linux-image-* dependency. Run 'apt-get update' (needs Debian's mirrors) and retry"
fi

want_stamp="package=$kpkg=$kver_pkg inputs=$inputs_hash"

if [ "$force" = 0 ] && have_build && [ "$(cat "$kdir/stamp")" = "$want_stamp" ]; then
  touch "$kdir/stamp" # newer than apt's lists again: the fast path applies
  echo "vm: ${installed}up to date ($kpkg $kver_pkg, cached in .cache/vm/kernel)"
  exit 0
fi

# --- 3. fetch + unpack the kernel package -----------------------------------
start=$(date +%s)
mkdir -p "$cache/debs"
deb=$(find "$cache/debs" -maxdepth 1 -name "${kpkg}_*.deb" | head -n1)
case "$deb" in
  *"_${kver_pkg//:/%3a}_"*) ;;
  *)
    need_root "downloading $kpkg"
    find "$cache/debs" -maxdepth 1 -name '*.deb' -delete
    (cd "$cache/debs" && apt-get download "$kpkg=$kver_pkg" </dev/null >/dev/null 2>"$cache/debs/download.log") ||
      die "apt-get download $kpkg=$kver_pkg failed: $(tail -n3 "$cache/debs/download.log")"
    deb=$(find "$cache/debs" -maxdepth 1 -name "${kpkg}_*.deb" | head -n1)
    [ -n "$deb" ] || die "apt-get download $kpkg left no .deb in $cache/debs"
    ;;
esac

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg -x "$deb" "$work/pkg"

vmlinuz=$(find "$work/pkg/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n1)
[ -n "$vmlinuz" ] || die "$deb has no /boot/vmlinuz-*"
kver=${vmlinuz##*/vmlinuz-}
moddir=""
for d in "$work/pkg/lib/modules/$kver" "$work/pkg/usr/lib/modules/$kver"; do
  [ -d "$d" ] && moddir=$d && break
done
[ -n "$moddir" ] || die "$deb has no modules for $kver"

# depmod/modprobe -d want <base>/lib/modules/<kver>.
mkdir -p "$work/full/lib/modules"
mv "$moddir" "$work/full/lib/modules/$kver"
depmod -b "$work/full" "$kver"

# --- 4. initrd tree ---------------------------------------------------------
root="$work/initrd"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt,share,root}
cp "$busybox_bin" "$root/bin/busybox"
while read -r applet; do
  [ -n "$applet" ] || continue
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$root/bin/busybox" --list-full)
# The kernel's request_module() runs /sbin/modprobe.
[ -e "$root/sbin/modprobe" ] || ln -s /bin/busybox "$root/sbin/modprobe"
cp "$here/guest-init.sh" "$root/init"
chmod 0755 "$root/init"

imods="$root/lib/modules/$kver"
mkdir -p "$imods"
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [ -f "$work/full/lib/modules/$kver/$f" ] && cp "$work/full/lib/modules/$kver/$f" "$imods/"
done

loaded=()
skipped=()
for spec in "${modules[@]}"; do
  name=${spec#\?}
  if ! deps=$(modprobe -d "$work/full" -S "$kver" --show-depends "$name" 2>/dev/null); then
    if [ "$spec" != "$name" ]; then
      skipped+=("$name")
      continue
    fi
    die "kernel $kver has no module '$name' (required)"
  fi
  while read -r kind path _; do
    [ "$kind" = insmod ] || continue # "builtin NAME" lines need nothing
    rel=${path#"$work/full/"}
    mkdir -p "$root/$(dirname "$rel")"
    cp -n "$path" "$root/$rel"
  done <<<"$deps"
  loaded+=("$name")
done
depmod -b "$root" "$kver"
printf '%s\n' "${loaded[@]}" >"$root/etc/vm-modules"
printf '%s\n' "$kver" >"$root/etc/vm-kernel"

# Uncompressed cpio (a few MB): nothing to decompress at boot under TCG.
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$work/initrd.img"

# --- 5. uncompressed kernel for a PVH boot ----------------------------------
# Under TCG, decompressing the bzImage costs ~3 s per boot. qemu boots an
# uncompressed ELF vmlinux directly through its PVH entry point (CONFIG_PVH)
# instead, so unpack it once here. run.sh falls back to vmlinuz without it.
extract_vmlinux() { # bzImage -> $work/vmlinux (ELF); tries each compressed payload
  local pair magic tool off rc
  for pair in '\xFD7zXZ\x00:xz' '\x1F\x8B\x08:gzip' '\x28\xB5\x2F\xFD:zstd'; do
    magic=${pair%%:*} tool=${pair##*:}
    command -v "$tool" >/dev/null || continue
    while read -r off; do
      rc=0
      # (the decompressor may stop reading early: ignore tail's SIGPIPE)
      case "$tool" in
        xz) { tail -c +$((off + 1)) "$1" || true; } | xz -dc --single-stream 2>/dev/null >"$work/vmlinux" || rc=$? ;;
        gzip) { tail -c +$((off + 1)) "$1" || true; } | gzip -dc 2>/dev/null >"$work/vmlinux" || rc=$? ;;
        zstd) { tail -c +$((off + 1)) "$1" || true; } | zstd -dcq 2>/dev/null >"$work/vmlinux" || rc=$? ;;
      esac
      # gzip exits 2 for "trailing garbage ignored" (the rest of the bzImage)
      if { [ "$rc" = 0 ] || { [ "$tool" = gzip ] && [ "$rc" = 2 ]; }; } &&
        [ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        return 0
      fi
    done < <(LC_ALL=C grep -obUaP "$magic" "$1" 2>/dev/null | cut -d: -f1)
  done
  return 1
}
rm -f "$kdir/vmlinux"
pvh=no
if grep -q '^CONFIG_PVH=y' "$work/pkg/boot/config-$kver" 2>/dev/null && extract_vmlinux "$vmlinuz"; then
  pvh=yes
fi

# --- 6. install atomically --------------------------------------------------
mkdir -p "$kdir"
cp "$vmlinuz" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$kdir/vmlinuz"
[ "$pvh" = no ] || mv -f "$work/vmlinux" "$kdir/vmlinux"
mv -f "$work/initrd.img" "$kdir/initrd.img"
printf '%s\n' "${loaded[@]}" >"$kdir/modules.txt"
printf '%s\n' "$kver" >"$kdir/kernel-release"
printf '%s\n' "$want_stamp" >"$kdir/stamp"

msg="vm: ${installed}built .cache/vm/kernel for $kpkg $kver_pkg ($kver, PVH boot: $pvh): ${#loaded[@]} modules"
[ "${#skipped[@]}" -eq 0 ] || msg+=", not in this kernel: ${skipped[*]}"
echo "$msg, initrd $(du -m "$kdir/initrd.img" | cut -f1) MB, $(($(date +%s) - start)) s"
