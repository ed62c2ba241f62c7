#!/usr/bin/env bash
# Switches this CI host's QEMU and libvirt between Debian 12's own (QEMU 7.2,
# libvirt 9) and what Debian 13 ships (QEMU 10.0, libvirt 11.3), taken from
# bookworm-backports, and back. .ci/run uses it to run one test subset on each
# host stack (README, "Tested matrix").
#
#   .ci/host-stack.sh backports   # record the packages, then install QEMU 10 + libvirt 11
#   .ci/host-stack.sh restore     # back to exactly the recorded packages (no-op without a record)
#   .ci/host-stack.sh versions    # print the QEMU and libvirt the host has now
#
# Only CI hosts: it refuses while any libvirtd, virtqemud or QEMU runs (a
# host's own daemon must never be touched, nor a test's QEMU replaced under
# it), and no package script may start or restart a service (policy-rc.d).
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "host-stack: run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# The paths are variables for test/harness/host-stack.test.ts only.
state=${FAME_CI_STATE:-/var/lib/fame-ci}
record=$state/host-stack.packages
sources=${FAME_CI_APT_SOURCES:-/etc/apt/sources.list.d}/fame-ci-bookworm-backports.sources
policy=${FAME_CI_POLICY_RC:-/usr/sbin/policy-rc.d}
# What fame runs on the host; apt pulls in what these need from backports.
packages=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu)

versions() {
  local q l
  q=$(qemu-system-x86_64 --version 2>/dev/null | head -n1 | sed 's/^QEMU emulator version //') || q="none"
  l=$(libvirtd --version 2>/dev/null | awk '{print $NF}') || l="none"
  echo "host-stack: QEMU ${q:-none}, libvirt ${l:-none}"
}

# Every libvirt daemon or QEMU running now. The swap waits for none: a host's
# own daemon must never be touched, and a test run (this one's or another's)
# must not have its QEMU replaced under it.
running_daemons() {
  local pid
  for pid in $(pgrep -x 'libvirtd|virtqemud|qemu-system-x86' || true); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed "s/^/$pid: /" && echo
  done
}

# Package scripts must not start, stop or restart any service (invoke-rc.d and
# deb-systemd-invoke both ask policy-rc.d). An existing policy is left alone.
no_service_changes() {
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
}

installed() { dpkg-query -W -f '${db:Status-Abbrev} ${Package}=${Version}\n' | awk '$1 == "ii" {print $2}' | sort; }

case ${1:-} in
backports)
  daemons=$(running_daemons)
  if [[ -n $daemons ]]; then
    echo "host-stack: refusing to swap QEMU/libvirt while these run:" >&2
    echo "$daemons" >&2
    exit 1
  fi
  [[ -e $record ]] && { echo "host-stack: $record exists: run '$0 restore' first" >&2; exit 1; }
  mkdir -p "$state"
  installed >"$record.tmp" && mv "$record.tmp" "$record"
  no_service_changes
  cat >"$sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get update -q
  # pkg/release for these packages only: their dependencies come from backports
  # only where needed (systemd and the rest stay Debian 12's).
  apt-get install -y -q --no-install-recommends "${packages[@]/%//bookworm-backports}"
  versions
  ;;
restore)
  if [[ ! -e $record ]]; then
    rm -f "$sources"
    versions
    exit 0
  fi
  daemons=$(running_daemons)
  [[ -z $daemons ]] || { echo "host-stack: refusing to restore while these run:" >&2; echo "$daemons" >&2; exit 1; }
  no_service_changes
  # Every package back to its recorded version and everything the swap added
  # removed, in one apt transaction (libvirt 11 split files of libvirt 9's
  # packages into new ones: downgrading and removing must happen together).
  mapfile -t now < <(installed)
  mapfile -t changes < <(comm -13 "$record" <(printf '%s\n' "${now[@]}") | cut -d= -f1 | sort -u)
  mapfile -t wanted < <(comm -23 "$record" <(printf '%s\n' "${now[@]}"))
  args=("${wanted[@]}")
  for p in "${changes[@]}"; do
    grep -q "^$p=" "$record" || args+=("$p-")
  done
  if ((${#args[@]} > 0)); then
    apt-get install -y -q --no-install-recommends --allow-downgrades "${args[@]}"
  fi
  # Files libvirt 11 moved into its new packages (libvirt0's schemas into
  # libvirt-common) are gone once those are removed, though the downgraded
  # package ships them again: dpkg saw them as the new package's. Unpacking
  # every restored package once more puts each of its files back.
  if ((${#wanted[@]} > 0)); then
    apt-get install -y -q --no-install-recommends --reinstall "${wanted[@]}"
  fi
  rm -f "$sources"
  apt-get update -q
  # What is installed now must be exactly the record, with every file of the restored packages.
  if ! diff <(installed) "$record" >&2; then
    echo "host-stack: the host's packages differ from $record after the restore" >&2
    exit 1
  fi
  missing=$( ((${#wanted[@]} == 0)) || dpkg --verify "${wanted[@]%%=*}" 2>&1 | grep '^missing ' | grep -v ' /usr/share/doc/' || true)
  if [[ -n $missing ]]; then
    echo "host-stack: files of the restored packages are missing:" >&2
    echo "$missing" >&2
    exit 1
  fi
  rm -f "$record"
  versions
  ;;
versions) versions ;;
*)
  echo "usage: $0 backports|restore|versions" >&2
  exit 2
  ;;
esac
