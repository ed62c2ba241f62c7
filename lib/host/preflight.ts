/**
 * Host checks that run in the providers' `check`, so `pulumi preview` (and
 * the preview step of `up`) refuses before any change, naming what to do.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { parseNetworkXml } from "../xml";
import { isHostError, run } from "./exec";
import * as virsh from "./virsh";

/** Debian package that provides each tool, for the "what to do" part of a message. */
export const TOOL_PACKAGES: Record<string, string> = {
  virsh: "libvirt-clients",
  "qemu-img": "qemu-utils",
  "qemu-system-x86_64": "qemu-system-x86",
  mmdebstrap: "mmdebstrap",
  mke2fs: "e2fsprogs",
  "dpkg-query": "dpkg",
  zstd: "zstd",
  xz: "xz-utils",
  openssl: "openssl",
};

/** Tools not found on PATH, each with the install hint. */
export async function missingTools(tools: readonly string[]): Promise<string[]> {
  const dirs = (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":").filter(Boolean);
  const missing: string[] = [];
  for (const tool of tools) {
    let found = false;
    for (const d of dirs) {
      if (
        await fs.access(path.join(d, tool), fs.constants.X_OK).then(
          () => true,
          () => false,
        )
      ) {
        found = true;
        break;
      }
    }
    if (!found) {
      missing.push(
        `${tool} is not installed: apt-get install ${TOOL_PACKAGES[tool] ?? tool} (or run scripts/host-setup.sh)`,
      );
    }
  }
  return missing;
}

/** Whether this host's QEMU offers a device model (e.g. ivshmem-plain). */
export async function qemuHasDevice(
  device: string,
  binary = "qemu-system-x86_64",
): Promise<boolean> {
  // Asked once per process: every node's check would ask the same question.
  const g = globalThis as { __fameQemuDevices?: Map<string, Promise<string>> };
  g.__fameQemuDevices ??= new Map();
  let help = g.__fameQemuDevices.get(binary);
  if (!help) {
    help = run(binary, ["-nodefaults", "-machine", "none", "-device", "help"], {
      timeoutMs: 30_000,
    });
    g.__fameQemuDevices.set(binary, help);
  }
  return new RegExp(`name "${device}"`).test(await help);
}

/** Free bytes on the file system that holds `dir` (or its nearest existing ancestor). */
export async function freeBytes(dir: string): Promise<number> {
  let p = path.resolve(dir);
  for (;;) {
    const st = await fs.statfs(p).catch(() => undefined);
    if (st) return st.bavail * st.bsize;
    const parent = path.dirname(p);
    if (parent === p) return 0;
    p = parent;
  }
}

function ipToInt(ip: string): number {
  return ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
}

function sameSubnet(
  a: { ip: string; netmask: string },
  b: { ip: string; netmask: string },
): boolean {
  const mask = Math.min(ipToInt(a.netmask), ipToInt(b.netmask));
  return (
    Math.floor(ipToInt(a.ip) / (2 ** 32 - mask)) === Math.floor(ipToInt(b.ip) / (2 ** 32 - mask))
  );
}

/**
 * Problems with creating network `name`: libvirt unreachable, a network of
 * that name owned by another stack (or not by fame), or another libvirt
 * network already using the bridge name or an overlapping subnet.
 */
export async function networkConflicts(
  uri: string,
  want: { name: string; bridge: string; ip: string; netmask: string; owner?: string },
): Promise<string[]> {
  let names: string[];
  try {
    names = await virsh.listNetworks(uri);
  } catch (e) {
    const why = isHostError(e) ? e.stderr || e.message : String(e);
    return [
      `cannot reach libvirt at ${uri}: ${why.split("\n")[0]} (start libvirtd, or fix fame:libvirtUri)`,
    ];
  }
  const problems: string[] = [];
  for (const other of names) {
    const xml = await virsh.networkXml(uri, other);
    if (!xml) continue;
    const spec = parseNetworkXml(xml);
    if (other === want.name) {
      // Our own (an earlier run's) is adopted; another stack's, or not fame's, never is.
      if (want.owner !== undefined && spec.owner !== want.owner) {
        problems.push(
          `libvirt network ${other} already exists and belongs to ${spec.owner ? `fame stack ${spec.owner}` : "something other than fame"}, not ${want.owner}: choose another fame:hostbase (or remove that network)`,
        );
      }
      continue;
    }
    // This stack's own network under its former name (a renamed stack, fame:hostbase): the
    // replacement deletes it first (its subnet is a unique key), so it conflicts with nothing.
    if (want.owner !== undefined && spec.owner === want.owner) continue;
    if (spec.bridge === want.bridge) {
      problems.push(
        `libvirt network ${other} already uses bridge ${want.bridge}: choose another fame:hostbase`,
      );
    }
    if (spec.ip && spec.netmask && sameSubnet(spec, want)) {
      problems.push(
        `libvirt network ${other} already uses ${spec.ip}/${spec.netmask}, which overlaps ${want.ip}/${want.netmask}: choose another fame:octets123`,
      );
    }
  }
  return problems;
}
