/** Chooses the domain type: hardware virtualisation (kvm) or QEMU's TCG emulator. */
import type { Accel } from "./config";

export type DomainType = "kvm" | "qemu";

/** True when /proc/cpuinfo flags show Intel VT-x (vmx) or AMD-V (svm). */
export function cpuHasVirtualization(cpuinfo: string): boolean {
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

/**
 * `auto` picks kvm only when the CPU offers virtualisation and /dev/kvm exists
 * (nested KVM without the flags hangs); `kvm` and `tcg` are user overrides.
 */
export function domainTypeFor(accel: Accel, cpuinfo: string, kvmDevice: boolean): DomainType {
  if (accel === "kvm") return "kvm";
  if (accel === "tcg") return "qemu";
  return cpuHasVirtualization(cpuinfo) && kvmDevice ? "kvm" : "qemu";
}

/** Who opens a file: uid and every group (the primary one included). */
interface Account {
  uid: number;
  gids: readonly number[];
}

/** Whether `who` may open a file of this mode and ownership for reading and writing (POSIX classes, no ACLs). */
export function canReadWrite(
  file: { mode: number; uid: number; gid: number },
  who: Account,
): boolean {
  if (who.uid === 0) return true;
  const bits =
    file.uid === who.uid
      ? file.mode >> 6
      : who.gids.includes(file.gid)
        ? file.mode >> 3
        : file.mode;
  return (bits & 6) === 6;
}

function nameOf(id: number, table: string): string {
  const f = table
    .split("\n")
    .map((l) => l.split(":"))
    .find((x) => x.length >= 3 && Number(x[2]) === id && x[2] !== "");
  return f?.[0] || String(id);
}

/**
 * The preview's warning when /dev/kvm exists but libvirt's QEMU user (`who`,
 * lib/host/reach's qemu.conf-aware lookup) cannot open it: libvirt's
 * capability probe (run with KVM) and its own access check (as that user)
 * then disagree, and it probes QEMU again on every define and start.
 * Undefined when there is nothing to say or the facts are not known (no
 * /dev/kvm, no such user). passwd/group only name the owner in the message.
 */
export function kvmAccessWarning(
  facts: {
    kvmStat?: { mode: number; uid: number; gid: number };
    passwd?: string;
    group?: string;
  },
  who: (Account & { name: string }) | undefined,
): string | undefined {
  const { kvmStat, passwd = "", group = "" } = facts;
  if (!kvmStat || !who || canReadWrite(kvmStat, who)) return undefined;
  const mode = (kvmStat.mode & 0o7777).toString(8).padStart(4, "0");
  const owner = `${nameOf(kvmStat.uid, passwd)}:${nameOf(kvmStat.gid, group)}`;
  const user = who.name;
  return `/dev/kvm is ${mode} ${owner}, which ${user} cannot open: libvirt then probes QEMU again on every define and start (about 1 s each, one at a time; 20+ s per node seen): chgrp kvm /dev/kvm && chmod 660 /dev/kvm (persist with a udev rule KERNEL=="kvm", GROUP="kvm", MODE="0660") and make sure ${user} is in group kvm`;
}

/** The host's system libvirtd (whose QEMU opens this host's /dev/kvm), not one on another socket. */
export function usesHostSystemLibvirtd(uri: string): boolean {
  return /^qemu:\/\/\/system($|\?)/.test(uri) && !/[?&]socket=/.test(uri);
}
