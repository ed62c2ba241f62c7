/**
 * Host facts the program reads at program time (not in a provider): the CPU
 * flags and /dev/kvm for `fame:accel auto`, the RAM for the nodes x vdram
 * warning, and the user QEMU runs as, for the reachability check. One object, so tests replace `hostFacts.read` and the program's
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
}

export const hostFacts = {
  read(): ProgramHostFacts {
    return {
      cpuinfo: fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "",
      kvmDevice: fs.existsSync("/dev/kvm"),
      memTotalKiB: Math.floor(os.totalmem() / 1024),
      qemuUser: { system: systemQemuUser(), session: sessionQemuUser() },
    };
  },
};
