#!/usr/bin/env bash
# Prepares a Debian/Ubuntu host to run fame: QEMU, libvirt, image tools.
# Run once as root: sudo scripts/host-setup.sh
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "run as root (sudo $0)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients \
  dnsmasq-base iptables mmdebstrap e2fsprogs openssl nodejs npm ca-certificates \
  python3 git
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl enable --now libvirtd
fi
virsh -c qemu:///system version
echo "host ready: install the Pulumi CLI (https://www.pulumi.com/docs/install/), then npm ci && pulumi up"
