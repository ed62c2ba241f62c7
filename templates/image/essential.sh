#!/bin/sh
# fame golden image: mmdebstrap --essential-hook (runs after the Essential
# packages, before apt installs the kernel).
#   sh essential.sh <root> <overlay>
# Puts the overlay's initramfs-tools configuration in place first, so the one
# initrd built when the kernel is installed already has it (FSTYPE=ext4 -> fsck).
# Rebuilding the initrd later in the customize hook would double that cost (about a
# minute, more on a loaded host).
set -eu
root=${1:?usage: essential.sh <root> <overlay>}
overlay=${2:?usage: essential.sh <root> <overlay>}
umask 022
if [ -d "$overlay/etc/initramfs-tools" ]; then
	(cd "$overlay" && find etc/initramfs-tools ! -type d) | while IFS= read -r f; do
		mkdir -p "$root/$(dirname "$f")"
		cp -P --preserve=mode "$overlay/$f" "$root/$f"
		chown -h root:root "$root/$f"
	done
fi
