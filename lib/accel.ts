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
