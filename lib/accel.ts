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

/** libvirt's QEMU user on Debian (qemu.conf `user`). */
export const QEMU_USER = "libvirt-qemu";

interface Account {
  uid: number;
  /** Primary group (from passwd) and every group listing the user (from group). */
  gids: number[];
}

/** `name`'s uid and groups from the texts of /etc/passwd and /etc/group; undefined if unknown. */
export function accountOf(name: string, passwd: string, group: string): Account | undefined {
  const entry = passwd
    .split("\n")
    .map((l) => l.split(":"))
    .find((f) => f[0] === name && f.length >= 4);
  if (!entry) return undefined;
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  const gids = [gid];
  for (const line of group.split("\n")) {
    const f = line.split(":");
    const members = (f[3] ?? "").split(",").map((m) => m.trim());
    if (f.length >= 4 && members.includes(name) && Number.isInteger(Number(f[2])))
      gids.push(Number(f[2]));
  }
  return { uid, gids };
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
 * The preview's warning when /dev/kvm exists but libvirt's QEMU user cannot
 * open it: libvirt's capability probe (run with KVM) and its own access check
 * (as that user) then disagree, and it probes QEMU again on every define and
 * start. Undefined when there is nothing to say or the facts are not known
 * (no /dev/kvm, no such user).
 */
export function kvmAccessWarning(
  facts: {
    kvmStat?: { mode: number; uid: number; gid: number };
    passwd?: string;
    group?: string;
  },
  user = QEMU_USER,
): string | undefined {
  const { kvmStat, passwd = "", group = "" } = facts;
  if (!kvmStat) return undefined;
  const who = accountOf(user, passwd, group);
  if (!who || canReadWrite(kvmStat, who)) return undefined;
  const mode = (kvmStat.mode & 0o7777).toString(8).padStart(4, "0");
  const owner = `${nameOf(kvmStat.uid, passwd)}:${nameOf(kvmStat.gid, group)}`;
  return `/dev/kvm is ${mode} ${owner}, which ${user} cannot open: libvirt then probes QEMU again on every define and start (about 1 s each, one at a time; 20+ s per node seen): chgrp kvm /dev/kvm && chmod 660 /dev/kvm (persist with a udev rule KERNEL=="kvm", GROUP="kvm", MODE="0660") and make sure ${user} is in group kvm`;
}

/** The host's system libvirtd (whose QEMU opens this host's /dev/kvm), not one on another socket. */
export function usesHostSystemLibvirtd(uri: string): boolean {
  return /^qemu:\/\/\/system($|\?)/.test(uri) && !/[?&]socket=/.test(uri);
}
