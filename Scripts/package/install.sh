#!/usr/bin/env bash
# `make install`: installs the release binaries, their man pages (from their --help), shell
# completions (bash, zsh, fish), the systemd unit and the example configuration.
#
# Usage: Scripts/package/install.sh BIN_DIR PREFIX [DESTDIR]
#   BIN_DIR  where `swift build -c release` put ipvs-agent and ipvsctl
#   PREFIX   /usr/local (make install's default) or /usr (the Debian package)
#   DESTDIR  a staging root the files go under, as for every `make install` (empty: /)
#
# Layout under DESTDIR:
#   PREFIX/sbin/{ipvs-agent,ipvsctl}                     administration commands, as ipvsadm
#   PREFIX/share/man/man8/{ipvs-agent,ipvsctl}.8.gz
#   PREFIX/share/bash-completion/completions/{ipvs-agent,ipvsctl}
#   PREFIX/share/zsh/vendor-completions/_{ipvs-agent,ipvsctl}    (/usr; elsewhere site-functions,
#                                                         where zsh looks outside the distribution's)
#   PREFIX/share/fish/vendor_completions.d/{ipvs-agent,ipvsctl}.fish
#   PREFIX/lib/systemd/system/ipvs-agent.service         ExecStart= points at PREFIX/sbin
#   PREFIX/share/doc/swift-ipvs/                         README, CHANGELOG, LICENSE, examples/
#   /etc/ipvs-agent/                                     the unit's --manifests folder, empty
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  grep '^# Usage:' "$0" | sed 's/^# //' >&2
  exit 2
fi
bin=$1 prefix=$2 root=${3:-}
here=$(cd "$(dirname "$0")/../.." && pwd)
case $prefix in /*) ;; *) echo "install.sh: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;; esac
for tool in ipvs-agent ipvsctl; do
  [ -x "$bin/$tool" ] || { echo "install.sh: $bin/$tool is missing: build it first (make release)" >&2; exit 1; }
done

dest=$root$prefix
zsh_dir=$dest/share/zsh/site-functions
[ "$prefix" != /usr ] || zsh_dir=$dest/share/zsh/vendor-completions
install -d "$dest/sbin" "$dest/share/man/man8" "$dest/share/bash-completion/completions" \
  "$zsh_dir" "$dest/share/fish/vendor_completions.d" \
  "$dest/lib/systemd/system" "$dest/share/doc/swift-ipvs/examples" "$root/etc/ipvs-agent"

install -m 0755 "$bin/ipvs-agent" "$bin/ipvsctl" "$dest/sbin/"

declare -A summary=(
  [ipvs-agent]="program IPVS and VIPs from Kubernetes Services and EndpointSlices"
  [ipvsctl]="administer the kernel's IPVS table, compatible with ipvsadm"
)
for tool in ipvs-agent ipvsctl; do
  "$here/Scripts/package/man-page.sh" "$bin/$tool" 8 "${summary[$tool]}" | gzip -9n > "$dest/share/man/man8/$tool.8.gz"
  "$bin/$tool" --generate-completion-script bash > "$dest/share/bash-completion/completions/$tool"
  "$bin/$tool" --generate-completion-script zsh > "$zsh_dir/_$tool"
  "$bin/$tool" --generate-completion-script fish > "$dest/share/fish/vendor_completions.d/$tool.fish"
done
chmod 0644 "$dest"/share/bash-completion/completions/* "$zsh_dir"/* \
  "$dest"/share/fish/vendor_completions.d/* "$dest"/share/man/man8/*

sed "s|/usr/local/sbin/ipvs-agent|$prefix/sbin/ipvs-agent|" \
  "$here/Examples/ipvs-agent.service" > "$dest/lib/systemd/system/ipvs-agent.service"
chmod 0644 "$dest/lib/systemd/system/ipvs-agent.service"

install -m 0644 "$here/README.md" "$here/CHANGELOG.md" "$here/LICENSE" "$dest/share/doc/swift-ipvs/"
install -m 0644 "$here/Examples/agent-config.yaml" "$here/Examples/cluster.yaml" "$here/Examples/README.md" \
  "$dest/share/doc/swift-ipvs/examples/"
