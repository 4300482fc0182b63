#!/usr/bin/env bash
# `make deb`: a Debian package of the release build (dpkg-deb), installed under /usr as
# `make install PREFIX=/usr` lays it out. Its dependencies are what dpkg-shlibdeps finds the two
# binaries linked to (libnl, libyaml, libc, libstdc++, ...), and kmod and procps for the systemd
# unit (its ExecStartPre= modprobe and ExecReload= kill); the Swift runtime is linked
# statically (--static-swift-stdlib), and the build fails if either binary still needs a Swift
# library, so the package needs no Swift install.
#
# Usage: Scripts/package/deb.sh BIN_DIR OUT_DIR   (prints the package's path)
set -euo pipefail

if [ $# -ne 2 ]; then
  grep '^# Usage:' "$0" | sed 's/^# //' >&2
  exit 2
fi
bin=$1 out=$2
here=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/.*static let current = "\(.*\)"/\1/p' "$here/Sources/IPVS/ProjectVersion.swift")
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "deb.sh: no version in Sources/IPVS/ProjectVersion.swift" >&2; exit 1; }

for tool in ipvs-agent ipvsctl; do
  if swift_libs=$(ldd "$bin/$tool" | grep -o 'libswift[^ ]*\|libFoundation[^ ]*\|libdispatch[^ ]*\|libBlocksRuntime[^ ]*'); then
    echo "deb.sh: $bin/$tool is linked to the Swift runtime ($(echo $swift_libs)): build with --static-swift-stdlib (make release)" >&2
    exit 1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
"$here/Scripts/package/install.sh" "$bin" /usr "$stage"
# Stripped, as Debian's policy asks (the symbols are most of their size).
strip --strip-unneeded "$stage/usr/sbin/ipvs-agent" "$stage/usr/sbin/ipvsctl"
# The one configuration file the package owns is the example's place: /etc/ipvs-agent/ stays empty.
cat > "$stage/usr/share/doc/swift-ipvs/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: swift-ipvs

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0 (and in LICENSE beside this file).
COPYRIGHT
rm "$stage/usr/share/doc/swift-ipvs/LICENSE"

# dpkg-shlibdeps reads a source package's debian/control: a minimal one is enough.
mkdir -p "$work/src/debian"
printf 'Source: swift-ipvs\n\nPackage: swift-ipvs\nArchitecture: any\n' > "$work/src/debian/control"
command -v dpkg-shlibdeps >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
depends=$(cd "$work/src" && dpkg-shlibdeps -O "$stage/usr/sbin/ipvs-agent" "$stage/usr/sbin/ipvsctl" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -d "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: swift-ipvs
Version: $version
Architecture: $arch
Maintainer: swift-ipvs developers <swift-ipvs@example.com>
Section: net
Priority: optional
Depends: $depends, kmod, procps
Suggests: ipvsadm
Installed-Size: $(du -sk "$stage/usr" | cut -f1)
Homepage: https://github.com/example/swift-ipvs
Description: IPVS load-balancer manager: ipvs-agent and ipvsctl
 ipvs-agent programs the kernel's IPVS table and the VIPs of a dummy interface from
 Kubernetes Services and EndpointSlices, as kube-proxy's IPVS mode does, with health checks,
 drain, drift repair and metrics. ipvsctl is a drop-in for ipvsadm with JSON output and an
 all-or-nothing restore. The systemd unit ipvs-agent.service is installed, not enabled.
CONTROL
mkdir -p "$out"
package=$out/swift-ipvs_${version}_$arch.deb
# zstd: a hundredth of xz's CPU time for a package a third bigger; every dpkg that can meet its
# dependencies (bookworm's libc6 and libstdc++6 or newer) reads it.
dpkg-deb --root-owner-group -Zzstd --build "$stage" "$package" >/dev/null
echo "$package"
