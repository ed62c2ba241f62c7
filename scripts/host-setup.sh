#!/usr/bin/env bash
# Prepares a Debian/Ubuntu host to run fame: installs the packages that are
# missing (QEMU, libvirt, image tools) and starts libvirtd when systemd runs.
# Run as root: sudo scripts/host-setup.sh. With everything present it changes
# nothing and needs no network.
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "run as root (sudo $0)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# What fame runs on the host (FAM file, network, image build, seed disks).
packages=(
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
  dnsmasq-base iptables iproute2 mmdebstrap e2fsprogs openssl ca-certificates nodejs npm
  python3 python3-flask git busybox-static zstd xz-utils
)
# python3 runs the Librarian on torms (fame:librarian), python3-flask its monitor (lmp.py,
# fame:librarianMonitor); git fetches tm-librarian; busybox-static, zstd and xz-utils make
# fame's boot initrd for TCG nodes from the image's (lib/host/bootinitrd.ts).
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
# Node.js 20 or newer may come from elsewhere (nodesource, nvm): keep it.
if command -v node >/dev/null && (($(node -p 'process.versions.node.split(".")[0]') >= 20)); then
  missing=("${missing[@]/nodejs/}")
  missing=("${missing[@]/npm/}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]} > 0)); then
  echo "host-setup: installing ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl is-active --quiet libvirtd || systemctl enable --now libvirtd
fi
echo "host-setup: QEMU, libvirt and the image tools are present"
