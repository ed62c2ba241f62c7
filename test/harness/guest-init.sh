#!/bin/busybox sh
# shellcheck shell=sh
# /init of the FAME e2e test initramfs (packed by guest-kit.sh).
#
# Kernel cmdline: console=ttyS0 fame.node=<k> fame.nodes=<n>   (k in 1..n)
# Node k writes "FAME-MARKER-node<k>" at offset k*4096 of the IVSHMEM BAR2,
# then waits until the markers of all n nodes are visible and powers off.
# Console protocol (one line each, grepped by the test):
#   FAME-WROTE <k> | FAME-SAW <j> <marker> | FAME-ALL-SEEN <k> |
#   FAME-TIMEOUT <k> missing: <j...> | FAME-ERROR <k> <reason>

/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# If the kernel found no /dev/console in the (node-less) initramfs we have no
# stdio yet; (re)attach it to the console now that devtmpfs is mounted.
exec </dev/console >/dev/console 2>&1

TIMEOUT=${FAME_TIMEOUT:-240}
node=
nodes=
# fame.* contain a dot, so the kernel treats them as module parameters and
# does not pass them to init: read them from /proc/cmdline instead.
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in
	fame.node=*) node=${arg#fame.node=} ;;
	fame.nodes=*) nodes=${arg#fame.nodes=} ;;
	esac
done

finish() {
	sync
	poweroff -f
}

case "$node$nodes" in
'' | *[!0-9]*)
	echo "FAME-ERROR ${node:-?} bad cmdline: $cmdline"
	finish
	;;
esac

if ! hello_fabric info; then
	echo "FAME-ERROR $node no ivshmem device"
	finish
fi

if hello_fabric write $((node * 4096)) "FAME-MARKER-node$node"; then
	echo "FAME-WROTE $node"
else
	echo "FAME-ERROR $node write failed"
	finish
fi

uptime_s() { cut -d. -f1 /proc/uptime; }
deadline=$(($(uptime_s) + TIMEOUT))
while :; do
	missing=
	j=1
	while [ "$j" -le "$nodes" ]; do
		if eval "[ -z \"\${seen_$j}\" ]"; then
			want="FAME-MARKER-node$j"
			got=$(hello_fabric read $((j * 4096)) 64)
			if [ "$got" = "$want" ]; then
				echo "FAME-SAW $j $got"
				eval "seen_$j=1"
			else
				missing="$missing $j"
			fi
		fi
		j=$((j + 1))
	done
	if [ -z "$missing" ]; then
		echo "FAME-ALL-SEEN $node"
		break
	fi
	if [ "$(uptime_s)" -ge "$deadline" ]; then
		echo "FAME-TIMEOUT $node missing:$missing"
		break
	fi
	sleep 1
done
finish
