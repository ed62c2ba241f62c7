#!/bin/busybox sh
# shellcheck shell=sh
# /init of fame's boot initrd (lib/bootinitrd.ts): load the root's drivers,
# mount /dev/vda read-only and a /run with this boot's masks, hand over to
# systemd. systemd checks the root (systemd-fsck-root) and remounts it as
# /etc/fstab says. Lines start with "fame-init:" on the console (the serial
# log).
bb=/bin/busybox
$bb mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys

fail() {
	echo "fame-init: $*; a shell on the console (virsh console), or boot the image's initrd (fame:initrdPath)"
	exec $bb sh
}

loaded=
while read -r m; do
	# One built into the kernel or already loaded is fine: the mount below is the test.
	$bb insmod "/lib/modules/$m" 2>/dev/null && loaded="$loaded ${m%.ko}"
done </lib/modules/order

# virtio_blk names the disk asynchronously: wait up to 30 s for it.
i=0
while [ ! -b /dev/vda ]; do
	[ $i -ge 1500 ] && fail "no /dev/vda after 30 s (loaded:$loaded)"
	$bb usleep 20000
	i=$((i + 1))
done
$bb mount -t ext4 -o ro /dev/vda /root || fail "cannot mount /dev/vda"
[ -x /root/sbin/init ] || [ -L /root/sbin/init ] || fail "/dev/vda has no /sbin/init"
echo "fame-init: root /dev/vda mounted read-only (loaded:$loaded)"
# The root's /run, mounted as systemd would (it keeps a mounted one), with
# this boot's masks (lib/bootinitrd.ts RUN_TREE). Without it the node boots
# as before, only slower.
if $bb mount -t tmpfs -o mode=0755,nosuid,nodev,size=20%,nr_inodes=800k tmpfs /root/run; then
	$bb cp -a /fame-run/systemd /root/run/ || echo "fame-init: could not copy the masks into /run"
else
	echo "fame-init: could not mount /run; booting without the masks"
fi
$bb umount /proc /sys
$bb mount --move /dev /root/dev
exec $bb switch_root /root /sbin/init "$@"
