#!/usr/bin/env bash
# Installs the Debian packages needed to build the project (libnl headers via pkg-config),
# when any is missing. The kernel VM's own packages are installed by Scripts/vm/prepare.sh.
set -euo pipefail

# curl and python3 serve the kernel tests and the demo (pods run tiny python servers); nftables (the
# nft command) is the kernel tests' reference for the agent's table.
packages=(libnl-3-dev libnl-genl-3-dev libnl-route-3-dev libyaml-dev libnftables-dev libnetfilter-conntrack-dev pkg-config iproute2 ipvsadm curl python3 nftables)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) != 0 ]]; then
    echo "install-deps: missing packages ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
apt-get update -qq </dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
