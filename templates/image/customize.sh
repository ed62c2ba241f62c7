#!/bin/sh
# mmdebstrap customize hook for the fame golden image.
#   $1  the image's root directory
#   $2  overlay directory: files fame generated (lib/image.ts)
# Environment: FAME_HOLD (packages to hold, may be empty).
# Nothing per node or per stack goes into the image: hostname comes from the
# kernel command line; the node user, its sudo rule, /etc/hosts and the
# credentials from the seed disk (fame-seed, at boot); host keys and
# machine-id are made on first boot.
set -eu
root=$1
overlay=$2

# File by file, root-owned, modes as generated; existing directories keep
# their own modes (cp -a would stamp the overlay's directory modes on /etc).
(cd "$overlay" && find . -type f) | while IFS= read -r f; do
	dir=$(dirname "$f")
	[ -d "$root/$dir" ] || mkdir -p -m 0755 "$root/$dir"
	cp --preserve=mode "$overlay/$f" "$root/$f"
	chown root:root "$root/$f"
done

chroot "$root" passwd --lock root >/dev/null

chroot "$root" systemctl enable fame-ssh-hostkeys.service fame-seed.service fame-fam.service
# ndctl's monitor daemon has nothing to watch on a node (fame-fam reports FAM's state).
chroot "$root" systemctl disable ndctl-monitor.service >/dev/null 2>&1 || true
# e2scrub_reap costs seconds of emulated CPU per boot and has no use without LVM.
chroot "$root" systemctl mask e2scrub_reap.service >/dev/null 2>&1 || true

[ -z "${FAME_HOLD:-}" ] || chroot "$root" apt-mark hold $FAME_HOLD

# Per-node identity and build-host details must not be baked in.
rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/hostname" "$root/var/lib/dbus/machine-id"
: >"$root/etc/machine-id"
: >"$root/etc/resolv.conf"

# Smaller image: no package cache, no downloaded lists.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
