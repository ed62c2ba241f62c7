#!/bin/sh
# fame golden image: mmdebstrap --customize-hook.
#   sh customize-proto.sh <root> <overlay> [<package-list-out>]
# (the hook proven by hand; see NOTES.md for how it differs from customize.sh)
# env: FAME_USER (required): the node user (sudo without password, SSH keys from
#        the seed disk, password locked until a seed provides one)
#      FAME_KERNEL_HOLD (optional): space-separated packages to `apt-mark hold`
# Everything here is build-time and node-independent: no host keys, no
# machine-id, no credentials. Per-node data comes from the seed disk at boot.
set -eu
root=${1:?usage: customize.sh <root> <overlay> [<package-list-out>]}
overlay=${2:?usage: customize.sh <root> <overlay> [<package-list-out>]}
pkglist=${3:-}
user=${FAME_USER:?FAME_USER must be set}
hold=${FAME_KERNEL_HOLD:-${FAME_HOLD:-}}
umask 022

# 1. Overlay: every non-directory is copied with its mode, owned by root.
#    (Not `cp -a overlay/. root/`: that also copies the overlay's directory
#    modes onto existing directories such as / and /etc, and keeps the owner
#    of files made by a non-root builder.) Missing directories get 0755.
(cd "$overlay" && find . ! -type d) | while IFS= read -r f; do
	f=${f#./}
	mkdir -p "$root/$(dirname "$f")"
	rm -f "$root/$f"
	cp -P --preserve=mode "$overlay/$f" "$root/$f"
	chown -h root:root "$root/$f"
done
mkdir -p "$root/etc/fame"
echo "$user" >"$root/etc/fame/user" # read by /usr/local/sbin/fame-seed
chroot "$root" visudo -c -q -f /etc/sudoers.d/fame-user

# 2. The user: home from /etc/skel, in group sudo, password locked ("!").
chroot "$root" useradd -m -s /bin/bash -G sudo "$user"

# 3. Units.
chroot "$root" systemctl enable fame-ssh-hostkeys.service fame-seed.service
# e2scrub_reap only removes stale LVM snapshots (there is no LVM): ~15 s of
# emulated CPU at every boot for nothing.
chroot "$root" systemctl disable e2scrub_reap.service

# 4. Kernel hold (a FAME kernel must survive `apt upgrade`).
if [ -n "$hold" ]; then
	# shellcheck disable=SC2086 # word splitting intended
	chroot "$root" apt-mark hold $hold
fi

# 5. Nothing node- or host-specific stays in the image.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -f "$root/etc/hostname" # systemd.hostname= on the kernel command line names the node
rm -f "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf" # mmdebstrap copied the build host's; dhclient rewrites it
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*

# 6. Package list.
if [ -n "$pkglist" ]; then
	# shellcheck disable=SC2016 # dpkg-query's format, not shell
	chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' >"$pkglist"
fi

# 7. Fail the build if the kernel is missing or the initrd cannot mount a
#    virtio root disk and check it (fsck.ext4 is there only when essential.sh
#    put etc/initramfs-tools/conf.d/fame in place before the kernel was installed).
set -- "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-*
for f; do [ -f "$f" ] || { echo "customize-proto.sh: missing $f" >&2; exit 1; }; done
for f in "$root"/boot/initrd.img-*; do
	mods=$(chroot "$root" lsinitramfs "/boot/${f##*/}")
	for m in virtio_blk.ko virtio_pci.ko ext4.ko fsck.ext4; do
		case $mods in
		*/$m*) ;;
		*) echo "customize-proto.sh: $f lacks $m" >&2; exit 1 ;;
		esac
	done
done
