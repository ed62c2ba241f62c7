/**
 * Host facts the program reads at program time (not in a provider): the CPU
 * flags and /dev/kvm for `fame:accel auto`, the RAM for the nodes x vdram
 * warning, the user QEMU runs as, for the reachability check, and who may
 * open /dev/kvm for the preview's warning about slow defines. One object, so
 * tests replace `hostFacts.read` and the program's
 * plan does not depend on the machine the tests run on.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { type QemuUserFacts, sessionQemuUser, systemQemuUser } from "./reach";

export interface ProgramHostFacts {
  /** Text of /proc/cpuinfo ("" when unreadable). */
  cpuinfo: string;
  /** /dev/kvm exists. */
  kvmDevice: boolean;
  /** Total RAM in KiB. */
  memTotalKiB: number;
  /** Who QEMU runs as under qemu:///system and qemu:///session. */
  qemuUser: { system: QemuUserFacts; session: QemuUserFacts };
  /** /dev/kvm's permission bits, owner and group; absent when there is none (or not read). */
  kvmStat?: { mode: number; uid: number; gid: number };
  /** Text of /etc/passwd ("" when unreadable; absent: not read). */
  passwd?: string;
  /** Text of /etc/group ("" when unreadable; absent: not read). */
  group?: string;
}

function text(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

export const hostFacts = {
  read(): ProgramHostFacts {
    const kvm = fs.statSync("/dev/kvm", { throwIfNoEntry: false });
    return {
      cpuinfo: text("/proc/cpuinfo"),
      kvmDevice: kvm !== undefined,
      memTotalKiB: Math.floor(os.totalmem() / 1024),
      qemuUser: { system: systemQemuUser(), session: sessionQemuUser() },
      ...(kvm ? { kvmStat: { mode: kvm.mode & 0o7777, uid: kvm.uid, gid: kvm.gid } } : {}),
      passwd: text("/etc/passwd"),
      group: text("/etc/group"),
    };
  },
};
