#!/bin/bash
# guest-kit.sh <outdir>
#
# Builds <outdir>/vmlinuz and <outdir>/initrd.img for the FAME shared-memory
# end-to-end test (3 TCG guests, direct kernel boot, see guest-init.sh).
#
# Kernel: Debian's linux-image-<abi>-amd64, i.e. the package linux-image-amd64
# depends on.  The .deb is cached in $FAME_TEST_CACHE (default
# /var/cache/fame-test) and only downloaded when missing.  DOWNLOADING NEEDS
# THE DEBIAN MIRROR (apt-get download): run this in CI's install phase, on the
# host network, never inside the test network namespace.
#
# Initramfs: busybox-static + static hello_fabric + /init, newc cpio, gzip.
# Needs: apt, dpkg-deb, gcc (static libc: libc6-dev), busybox-static, cpio.
set -euo pipefail

outdir=${1:?usage: guest-kit.sh <outdir>}
cache=${FAME_TEST_CACHE:-/var/cache/fame-test}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/../../templates/hello_fabric.c

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$outdir" "$cache"

# --- kernel --------------------------------------------------------------
pkg=$(apt-cache depends linux-image-amd64 |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
[[ -n $pkg ]] || { echo "cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n1)
if [[ -z $deb ]]; then
	echo "downloading $pkg into $cache" >&2
	# Sandbox::User=root: _apt may not be able to write to the cache dir.
	(cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg")
	deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n1)
fi
echo "kernel: $(basename "$deb")" >&2
dpkg-deb -x "$deb" "$tmp/k"
config=$(echo "$tmp"/k/boot/config-*)
# The guest loads no modules: what the test needs must be built in.
for opt in PCI SYSFS DEVTMPFS BLK_DEV_INITRD RD_GZIP SERIAL_8250 SERIAL_8250_CONSOLE; do
	grep -qx "CONFIG_$opt=y" "$config" || { echo "kernel lacks CONFIG_$opt=y" >&2; exit 1; }
done
install -m 0644 "$tmp"/k/boot/vmlinuz-* "$outdir/vmlinuz.new"

# --- initramfs -----------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp}
install -m 0755 /bin/busybox "$root/bin/busybox"
gcc -static -O2 -Wall -o "$root/bin/hello_fabric" "$src"
install -m 0755 "$here/guest-init.sh" "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -9 >"$outdir/initrd.img.new"
chmod 0644 "$outdir/initrd.img.new"

mv -f "$outdir/vmlinuz.new" "$outdir/vmlinuz"
mv -f "$outdir/initrd.img.new" "$outdir/initrd.img"
echo "wrote $outdir/vmlinuz $outdir/initrd.img" >&2
