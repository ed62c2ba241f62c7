#!/usr/bin/env bash
# Shows scripts/host-setup.sh working unchanged on a Debian 13 (trixie) host:
# a fresh trixie root file system (mmdebstrap, apt variant) in a chroot, where
#  1. host-setup.sh installs what it finds missing, from trixie's archive;
#  2. the QEMU and libvirt it installed are trixie's (10.x and 11.x), and the
#     commands fame runs on the host are there;
#  3. a second run finds nothing missing and installs nothing.
# Nothing is kept: mmdebstrap builds in a temporary directory (format null).
#   .ci/host-setup-trixie.sh [mirror]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# mmdebstrap's customize hook (sh -c '... "$1"'): runs in its chroot, which has
# /proc, /dev and a policy-rc.d (no service starts).
if [[ ${1:-} == --hook ]]; then
  root=$2
  inroot() { chroot "$root" "$@"; }
  cp "$here/../scripts/host-setup.sh" "$root/tmp/host-setup.sh"
  if ! out=$(inroot bash /tmp/host-setup.sh 2>&1); then
    echo "$out" | tail -n 40
    echo "host-setup-trixie: host-setup.sh failed on trixie" >&2
    exit 1
  fi
  echo "$out" | grep '^host-setup:' | sed 's/^/first run: /'
  grep -q '^host-setup: installing' <<<"$out" || { echo "host-setup-trixie: the first run installed nothing" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$root/etc/os-release"
  echo "release: $PRETTY_NAME"
  q=$(inroot qemu-system-x86_64 --version | head -n1)
  l=$(inroot libvirtd --version)
  echo "$q; $l"
  [[ $q == *"version 10."* ]] || { echo "host-setup-trixie: not QEMU 10" >&2; exit 1; }
  [[ $l == *" 11."* ]] || { echo "host-setup-trixie: not libvirt 11" >&2; exit 1; }
  for c in qemu-img virsh libvirtd mmdebstrap mke2fs dnsmasq iptables ip openssl node npm python3 git zstd xz; do
    inroot sh -c "command -v $c" >/dev/null || { echo "host-setup-trixie: $c missing" >&2; exit 1; }
  done
  inroot python3 -c 'import flask' || { echo "host-setup-trixie: python3-flask missing" >&2; exit 1; }
  # fame's boot initrd takes the host's busybox: it must be the static one (busybox-static).
  bb=$(inroot ldd /bin/busybox 2>&1 || true)
  [[ $bb == *"not a dynamic executable"* ]] || { echo "host-setup-trixie: /bin/busybox is not busybox-static: $bb" >&2; exit 1; }
  echo "commands: all present, node $(inroot node --version)"
  out=$(inroot bash /tmp/host-setup.sh 2>&1) || { echo "$out"; echo "host-setup-trixie: the second run failed" >&2; exit 1; }
  echo "$out" | sed 's/^/second run: /'
  if grep -q 'installing' <<<"$out"; then
    echo "host-setup-trixie: the second run installed packages" >&2
    exit 1
  fi
  exit 0
fi

[[ $(id -u) == 0 ]] || { echo "host-setup-trixie: run as root" >&2; exit 1; }
mirror=${1:-${FAME_TEST_MIRROR:-http://deb.debian.org/debian}}
started=$(date +%s)
mmdebstrap --variant=apt --format=null --quiet \
  --customize-hook="bash $(printf '%q' "$here/host-setup-trixie.sh") --hook \"\$1\"" \
  trixie /dev/null "$mirror"
echo "host-setup-trixie: passed in $(($(date +%s) - started)) s"
