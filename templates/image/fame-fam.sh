#!/bin/sh
# fame-fam: brings this node's fabric-attached memory up at every boot and
# exposes it as /dev/fam, whichever way the host presents it:
#   IVSHMEM  PCI 1af4:1110; /dev/fam -> /sys/bus/pci/devices/<bdf>/resource2 (mmap only)
#   CXL      a CXL type-3 memory device (PCI class 0x050210): modules, region,
#            raw namespace; /dev/fam -> /dev/pmemN (offset X = offset X of the
#            host's FAM file; use O_DIRECT reads to see other nodes' writes)
# Writes one line to /run/fame/fam.status: "OK mode=... device=... size=..."
# or "FAILED <reason>". A failure is also printed on the console and the unit
# fails: nothing may use a FAM that did not come up.
set -u

# "fame-fam stop" (at shutdown): hand the CXL device back as QEMU made it. A
# guest reboot resets the machine inside the same QEMU process, which (7.2)
# keeps the device's DVSEC memory-enable bit and HDM decoders as this boot left
# them; the next boot's kernel then refuses the device ("Legacy range registers
# configuration prevents HDM operation"). Disabling the region and the memdev
# makes the kernel uncommit the decoders and clear both enables.
if [ "${1:-}" = stop ]; then
	[ -e /sys/bus/cxl/devices/mem0 ] || exit 0
	cxl disable-region all >/dev/null 2>&1 || true
	cxl disable-memdev -f mem0 >/dev/null 2>&1 || true
	echo "fame-fam: CXL device released for the next boot"
	exit 0
fi

status_dir=/run/fame
status=$status_dir/fam.status
mkdir -p "$status_dir"
rm -f /dev/fam

say() { echo "fame-fam: $*"; }
fail() {
	printf 'FAILED %s\n' "$*" >"$status"
	msg="fame-fam: *** FAM IS NOT AVAILABLE on $(hostname): $* ***"
	echo "$msg" >&2
	# The unit's output reaches the console too; write there directly as well, once.
	[ -w /dev/console ] && echo "$msg" >/dev/console 2>/dev/null
	exit 1
}
ok() {
	printf 'OK %s\n' "$*" >"$status"
	say "FAM ready: $*"
	exit 0
}

pci_with() { # <attr> <value>: first PCI device (BDF order) whose attribute matches
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/$1" 2>/dev/null)" = "$2" ] || continue
		case $1 in vendor) [ "$(cat "$d/device" 2>/dev/null)" = 0x1110 ] || continue ;; esac
		echo "$d"
		return 0
	done
	return 1
}

# ---- CXL type-3 memory device
if cxldev=$(pci_with class 0x050210); then
	say "CXL memory device at ${cxldev##*/}"
	modprobe -a cxl_acpi cxl_pci cxl_mem cxl_pmem nd_pmem dax_pmem device_dax ||
		fail "cannot load the CXL/NVDIMM modules"
	udevadm settle --timeout=60 || true
	# mem0 must be bound to its driver and have its endpoint port before a region can use it.
	i=0
	until [ -e /sys/bus/cxl/devices/mem0/driver ] && [ -e /sys/bus/cxl/devices/decoder0.0 ] &&
		ls -d /sys/bus/cxl/devices/endpoint* >/dev/null 2>&1; do
		if dmesg 2>/dev/null | grep -q "prevents HDM operation"; then
			fail "the CXL device kept the last boot's decoder state through a reset without a clean shutdown; power-cycle this node (virsh destroy, then start)"
		fi
		i=$((i + 1))
		[ $i -le 90 ] || fail "CXL memdev mem0 / root decoder decoder0.0 / endpoint not ready after 90 s"
		sleep 1
	done
	region=$(ndctl list -R 2>/dev/null | grep -o '"dev":"region[0-9]*"' | head -n 1 | cut -d'"' -f4)
	if [ -z "$region" ]; then
		# Regions are not kept across boots: make it again (the LSA keeps the namespace label).
		# Probing may still be settling ("no active memdevs"): retry for a while.
		i=0
		until out=$(cxl create-region -t pmem -d decoder0.0 -m -w 1 mem0 2>&1); do
			i=$((i + 1))
			[ $i -le 30 ] || fail "cxl create-region failed: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
			udevadm settle --timeout=10 || true
			sleep 2
		done
		i=0
		until region=$(ndctl list -R 2>/dev/null | grep -o '"dev":"region[0-9]*"' | head -n 1 | cut -d'"' -f4) && [ -n "$region" ]; do
			i=$((i + 1))
			[ $i -le 60 ] || fail "cxl create-region succeeded but no NVDIMM region appeared within 60 s"
			sleep 1
		done
	fi
	say "region $region"
	ns() { ndctl list -N -r "$region" 2>/dev/null | grep -o '"blockdev":"pmem[0-9]*"' | head -n 1 | cut -d'"' -f4; }
	dev=$(ns)
	if [ -z "$dev" ]; then
		udevadm settle --timeout=30 || true
		dev=$(ns)
	fi
	if [ -z "$dev" ]; then
		# raw: nothing is written into the shared FAM (a label goes to this node's own LSA).
		out=$(ndctl create-namespace -r "$region" -m raw 2>&1) ||
			fail "ndctl create-namespace -r $region -m raw failed: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
		dev=$(ns)
	fi
	[ -n "$dev" ] && [ -b "/dev/$dev" ] || fail "region $region has no raw namespace block device"
	ln -sfn "/dev/$dev" /dev/fam
	ok "mode=cxl device=/dev/$dev region=$region size=$(blockdev --getsize64 "/dev/$dev")"
fi

# ---- IVSHMEM (ivshmem-plain): BAR2 is the shared memory
if ivdev=$(pci_with vendor 0x1af4); then
	[ -e "$ivdev/resource2" ] || fail "IVSHMEM device ${ivdev##*/} has no BAR2"
	ln -sfn "$ivdev/resource2" /dev/fam
	ok "mode=ivshmem device=$ivdev/resource2 size=$(stat -L -c %s "$ivdev/resource2")"
fi

fail "no FAM device: neither an IVSHMEM (1af4:1110) nor a CXL memory device (class 0x050210) is attached"
