#!/bin/bash
# sandbox.sh up|down|stop-libvirtd|start-libvirtd <statedir>
#
# A private libvirtd for tests, isolated from the host and from any system
# libvirtd:
#  * network: virtlogd, libvirtd and everything they spawn (qemu, dnsmasq)
#    run in a fresh network namespace fame-t-<random> with only `lo` up, so
#    bridges, iptables rules and guest traffic never reach the host network.
#  * filesystem: they also run in a private mount namespace where /run is a
#    fresh tmpfs (host sockets, dbus and systemd are invisible) and
#    /run/libvirt, /etc/libvirt, /var/{lib,cache,log}/libvirt are bind mounts
#    of <statedir>/root/{run,etc,lib,cache,log}.
#  * the only shared path is <statedir>: libvirtd's sockets are in
#    <statedir>/sock, so host-side clients use the URI in <statedir>/uri:
#      qemu:///system?socket=<statedir>/sock/libvirt-sock
#
# libvirtd and virtlogd run in the foreground, each under `tini -s` (child
# subreaper, Debian package tini): see spawn_daemon.
# Files in <statedir>: netns, uri, libvirtd.pid, virtlogd.pid, sock/, root/.
# `up` chmods <statedir> 0711 so the qemu user (libvirt-qemu) can reach files
# the test puts there (FAM file); sock/ stays root-only (0700).
# <statedir> must not be under /run (hidden inside the sandbox).
# `down` is idempotent and removes only what `up` created.
set -Eeuo pipefail # -E: the ERR trap of `up` also fires inside functions

self=$(readlink -f "${BASH_SOURCE[0]}")

usage() {
	echo "usage: $0 up|down|stop-libvirtd|start-libvirtd <statedir>" >&2
	exit 2
}

log() { echo "sandbox: $*" >&2; }

# set_conf <file> <key> <value>: replace any active setting of key.
# (libvirt's conf parser uses the first occurrence, so appending is not enough.)
set_conf() {
	sed -i "/^[[:space:]]*$2[[:space:]]*=/d" "$1"
	printf '%s = %s\n' "$2" "$3" >>"$1"
}

# Is <pid> alive and inside netns <ns>?  Guards against stale pid files.
pid_in_ns() {
	[[ -n $1 && -d /proc/$1 ]] && [[ $(ip netns identify "$1" 2>/dev/null) == "$2" ]]
}

# Is any of <pids> still running (zombies count as gone)?
any_alive() {
	local p st
	for p; do
		st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1) || true
		[[ -n $st && $st != Z ]] && return 0
	done
	return 1
}

# kill_wait <pids...>: SIGTERM, wait up to 10 s, then SIGKILL.
kill_wait() {
	local i
	(($# > 0)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		any_alive "$@" || return 0
		sleep 0.2
	done
	kill -KILL "$@" 2>/dev/null || true
}

# libvirt re-probes QEMU (~1 s, one at a time) on every capability lookup,
# so on every define and start, when its probe and its own check disagree
# about KVM: on hosts whose /dev/kvm is root-only (no udev rule giving it to
# group kvm) the probe QEMU still gets KVM while libvirt's access check as the
# qemu user fails. 32 parallel defines then took minutes. On such hosts the
# sandbox hides /dev/kvm from its daemons (a usable one is kept).
kvm_unusable() {
	[[ -c /dev/kvm ]] && ! runuser -u libvirt-qemu -- test -r /dev/kvm -a -w /dev/kvm 2>/dev/null
}

# Runs as root inside `ip netns exec <ns> unshare --mount --propagation private`.
start_daemons() {
	local sd=$1 pair
	mount -t tmpfs -o mode=0755 fame-run /run
	mkdir -p /run/libvirt
	for pair in run:/run/libvirt etc:/etc/libvirt lib:/var/lib/libvirt \
		cache:/var/cache/libvirt log:/var/log/libvirt; do
		mkdir -p "${pair#*:}"
		mount --bind "$sd/root/${pair%%:*}" "${pair#*:}"
	done
	# See kvm_unusable: hide such a /dev/kvm, in this mount namespace only.
	if [[ -f $sd/root/no-kvm ]]; then
		mount --bind "$sd/root/no-kvm" /dev/kvm
	fi
	spawn_daemon "$sd" virtlogd
	spawn_daemon "$sd" libvirtd
}

# spawn_daemon <statedir> virtlogd|libvirtd: runs the daemon in the foreground
# under `tini -s` (a child subreaper), in its own session, and waits for its
# pid file. libvirtd's QEMU capability probe starts QEMU daemonized, kills it
# and waits for it to vanish; the orphan is reparented to the nearest
# subreaper, and tini reaps it at once. Without one it goes to PID 1, which on
# some machines (CI VMs, containers) reaps lazily: libvirtd then waits on a
# zombie, the probe fails and is retried on every define (minutes per define).
spawn_daemon() {
	local sd=$1 name=$2 i
	rm -f "$sd/$name.pid"
	setsid tini -s -- "$name" --pid-file "$sd/$name.pid" \
		</dev/null >>"$sd/root/log/$name.out" 2>&1 &
	for ((i = 0; i < 100; i++)); do
		[[ -s $sd/$name.pid ]] && return 0
		sleep 0.1
	done
	log "$name wrote no pid file within 10 s"
	return 1
}

print_logs() {
	local f
	for f in "$1"/root/log/libvirtd.log "$1"/root/log/virtlogd.log; do
		[[ -f $f ]] || continue
		echo "---- $f (tail) ----" >&2
		tail -n 50 "$f" >&2
	done
}

up_failed() {
	trap - ERR
	log "up failed, cleaning up"
	print_logs "$1"
	down "$1"
	exit 1
}

up() {
	local sd=$1 ns etc uri i
	case $sd/ in /run/*) log "statedir must not be under /run"; exit 2 ;; esac
	if [[ -f $sd/netns && -e /run/netns/$(cat "$sd/netns") ]]; then
		log "already up ($sd/netns)"
		exit 1
	fi
	chmod 0711 "$sd"
	ns=fame-t-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	ip netns add "$ns"
	echo "$ns" >"$sd/netns"
	trap 'up_failed "$sd"' ERR
	ip -n "$ns" link set lo up

	# Daemon state, laid out like the Debian package creates it.
	mkdir -p "$sd"/root/{run,etc,cache/qemu,log/qemu} \
		"$sd"/root/lib/{boot,images,dnsmasq,qemu/channel/target}
	install -d -m 0700 "$sd/sock"
	chmod 0711 "$sd"/root/{lib/boot,lib/images,cache,cache/qemu}
	chown -R libvirt-qemu:libvirt-qemu "$sd/root/lib/qemu"
	chmod -R 0750 "$sd/root/lib/qemu"

	# Only the host's *.conf and default nwfilters: a host's domain/network
	# definitions, autostart links, hooks or secrets must not leak in.
	etc=$sd/root/etc
	cp /etc/libvirt/*.conf "$etc/"
	[[ -d /etc/libvirt/nwfilter ]] && cp -r /etc/libvirt/nwfilter "$etc/"
	mkdir -p "$etc/qemu/networks/autostart"
	set_conf "$etc/libvirtd.conf" unix_sock_dir "\"$sd/sock\""
	set_conf "$etc/libvirtd.conf" unix_sock_group '"root"'
	set_conf "$etc/libvirtd.conf" unix_sock_ro_perms '"0700"'
	set_conf "$etc/libvirtd.conf" unix_sock_rw_perms '"0700"'
	# No polkit: the socket directory is root-only anyway.
	set_conf "$etc/libvirtd.conf" auth_unix_ro '"none"'
	set_conf "$etc/libvirtd.conf" auth_unix_rw '"none"'
	set_conf "$etc/libvirtd.conf" listen_tls 0
	set_conf "$etc/libvirtd.conf" listen_tcp 0
	set_conf "$etc/libvirtd.conf" log_outputs '"3:file:/var/log/libvirt/libvirtd.log"'
	set_conf "$etc/virtlogd.conf" log_outputs '"3:file:/var/log/libvirt/virtlogd.log"'
	# qemu.conf keeps the packaged user/group (libvirt-qemu) and DAC relabeling.
	# remember_owner=0: no xattr refcounts left on kernel/initrd if a test
	# dies, which would make the next run fail with "already in use".
	set_conf "$etc/qemu.conf" remember_owner 0
	if kvm_unusable; then
		: >"$sd/root/no-kvm"
		# libvirt cannot carry a file mounted over /dev/kvm into a domain's
		# private /dev ("Unable to move ... mount to /dev/kvm"): domains use
		# the sandbox's /dev, whose only hidden node is that one.
		set_conf "$etc/qemu.conf" namespaces '[]'
	fi

	ip netns exec "$ns" unshare --mount --propagation private \
		"$self" _start_daemons "$sd"

	uri="qemu:///system?socket=$sd/sock/libvirt-sock"
	echo "$uri" >"$sd/uri"
	for ((i = 0; i < 60; i++)); do
		if timeout 5 virsh -c "$uri" version >/dev/null 2>&1; then
			trap - ERR
			log "up: netns $ns, uri $uri"
			return 0
		fi
		sleep 0.5
	done
	log "libvirtd did not answer within 30 s"
	false # -> ERR trap
}

down() {
	local sd=$1 ns="" uri dom net pids f
	[[ -f $sd/netns ]] && ns=$(cat "$sd/netns")
	[[ -f $sd/uri ]] && uri=$(cat "$sd/uri") || uri=""

	if [[ -n $uri && -S $sd/sock/libvirt-sock ]] &&
		timeout 5 virsh -c "$uri" version >/dev/null 2>&1; then
		for dom in $(timeout 20 virsh -c "$uri" list --all --name || true); do
			timeout 20 virsh -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
			timeout 20 virsh -c "$uri" undefine "$dom" >/dev/null 2>&1 || true
		done
		for net in $(timeout 20 virsh -c "$uri" net-list --all --name || true); do
			timeout 20 virsh -c "$uri" net-destroy "$net" >/dev/null 2>&1 || true
			timeout 20 virsh -c "$uri" net-undefine "$net" >/dev/null 2>&1 || true
		done
	fi

	if [[ -n $ns ]]; then
		# libvirtd first (so it does not respawn anything), then virtlogd.
		for f in libvirtd virtlogd; do
			pids=$(cat "$sd/$f.pid" 2>/dev/null || true)
			if pid_in_ns "$pids" "$ns"; then kill_wait "$pids"; fi
		done
		# Leftovers (qemu, dnsmasq, ...): exactly the processes in our netns.
		if [[ -e /run/netns/$ns ]]; then
			mapfile -t pids < <(ip netns pids "$ns")
			kill_wait "${pids[@]}"
			ip netns del "$ns"
		fi
	fi

	# The bind mounts live only in the sandbox's mount namespace, which died
	# with its last process; this only catches mounts made by hand.
	awk -v p="$sd/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts |
		sort -r | while read -r f; do umount -l "$f"; done

	rm -rf "$sd"/{root,sock} "$sd"/{netns,uri,libvirtd.pid,virtlogd.pid}
	rmdir "$sd" 2>/dev/null || true
	return 0
}

# Stops only libvirtd (virtlogd, guests and the namespaces stay), to test how
# fame behaves when the daemon is unreachable.
stop_libvirtd() {
	local sd=$1 ns pid
	ns=$(cat "$sd/netns")
	pid=$(cat "$sd/libvirtd.pid" 2>/dev/null || true)
	pid_in_ns "$pid" "$ns" || { log "libvirtd is not running"; return 0; }
	kill_wait "$pid"
	log "libvirtd stopped"
}

# Starts libvirtd again inside the sandbox's network and mount namespaces
# (entered through virtlogd, which keeps them alive).
start_libvirtd() {
	local sd=$1 ns holder uri i
	ns=$(cat "$sd/netns")
	holder=$(cat "$sd/virtlogd.pid")
	pid_in_ns "$holder" "$ns" || { log "virtlogd is gone: run down, then up"; exit 1; }
	nsenter --target "$holder" --mount --net "$self" _spawn_daemon "$sd"
	uri=$(cat "$sd/uri")
	for ((i = 0; i < 60; i++)); do
		timeout 5 virsh -c "$uri" version >/dev/null 2>&1 && { log "libvirtd started"; return 0; }
		sleep 0.5
	done
	log "libvirtd did not answer within 30 s"
	exit 1
}

(($# == 2)) || usage
[[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
case $1 in
up)
	mkdir -p "$2"
	up "$(readlink -f "$2")"
	;;
down)
	[[ -d $2 ]] || exit 0
	down "$(readlink -f "$2")"
	;;
_start_daemons) start_daemons "$2" ;;
_spawn_daemon) spawn_daemon "$2" libvirtd ;;
stop-libvirtd) stop_libvirtd "$(readlink -f "$2")" ;;
start-libvirtd) start_libvirtd "$(readlink -f "$2")" ;;
*) usage ;;
esac
