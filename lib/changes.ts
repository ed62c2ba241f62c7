/**
 * A plain-language account of what a config change will do to the cluster,
 * printed by preview and up before anything happens: which nodes are created,
 * deleted or restarted, and whether any data is at risk. It compares the new
 * config with the one last applied (<dir>/applied.json).
 */
import type { FameConfig } from "./config";
import { nodeName } from "./plan";
import { formatSize } from "./units";

/** The config keys that decide what a change does (stored after every up). */
const APPLIED_KEYS = [
  "nodes",
  "running",
  "famPath",
  "famSizeBytes",
  "famMode",
  "vcpus",
  "vdramKiB",
  "accel",
  "famezSocket",
  "kernelPath",
  "initrdPath",
  "cmdline",
  "hostbase",
  "octets123",
  "libvirtUri",
] as const satisfies readonly (keyof FameConfig)[];

export type AppliedConfig = Pick<FameConfig, (typeof APPLIED_KEYS)[number]> & {
  /** Golden image recipe key. */
  imageKey: string;
};

export function appliedConfig(config: FameConfig, imageKey: string): AppliedConfig {
  const picked = Object.fromEntries(APPLIED_KEYS.map((k) => [k, config[k]]));
  return { ...(picked as Pick<FameConfig, (typeof APPLIED_KEYS)[number]>), imageKey };
}

export interface ChangeReport {
  /** Statements of what will happen. */
  info: string[];
  /** Statements about data at risk. */
  warnings: string[];
  /** Changes refused before anything happens. */
  errors: string[];
}

function names(hostbase: string, from: number, to: number): string {
  const list: string[] = [];
  for (let i = from; i <= to; i++) list.push(nodeName(hostbase, i));
  return list.length > 4 ? `${list[0]}..${list.at(-1)} (${list.length} nodes)` : list.join(", ");
}

export function describeChanges(
  prev: AppliedConfig | undefined,
  next: AppliedConfig,
  allowShrink: boolean,
): ChangeReport {
  const r: ChangeReport = { info: [], warnings: [], errors: [] };
  if (!prev) {
    r.info.push(
      `creating a cluster of ${next.nodes} node(s) with ${formatSize(next.famSizeBytes)} of FAM at ${next.famPath}`,
    );
    return r;
  }
  const hb = next.hostbase;
  if (
    prev.hostbase !== next.hostbase ||
    prev.octets123 !== next.octets123 ||
    prev.libvirtUri !== next.libvirtUri
  ) {
    r.warnings.push(
      "the network identity changes (hostbase, subnet or libvirt URI): the network and every node are replaced, and the nodes' disks with them; FAM is kept",
    );
    return r;
  }
  if (prev.famPath !== next.famPath) {
    r.warnings.push(
      `FAM moves from ${prev.famPath} to ${next.famPath}: nodes map the new file; the old file is kept as it is`,
    );
  } else if (next.famSizeBytes > prev.famSizeBytes) {
    r.info.push(
      `FAM grows from ${formatSize(prev.famSizeBytes)} to ${formatSize(next.famSizeBytes)}: every node is stopped, the file grown in place (all existing bytes kept), and running nodes start with the new size`,
    );
  } else if (next.famSizeBytes < prev.famSizeBytes) {
    const cut = `${formatSize(prev.famSizeBytes - next.famSizeBytes)} (${prev.famSizeBytes - next.famSizeBytes} bytes)`;
    if (allowShrink) {
      r.warnings.push(
        `FAM shrinks from ${formatSize(prev.famSizeBytes)} to ${formatSize(next.famSizeBytes)}: the last ${cut} of FAM data are cut (fame:famAllowShrink is set); every node restarts`,
      );
    } else {
      r.errors.push(
        `fame:famSize = ${formatSize(next.famSizeBytes)} is smaller than the applied ${formatSize(prev.famSizeBytes)}: it would cut ${cut} of FAM data; set fame:famAllowShrink true to allow it`,
      );
    }
  }
  if (next.nodes > prev.nodes) {
    r.info.push(
      `adding ${names(hb, prev.nodes + 1, next.nodes)}; the other nodes keep running untouched; the network gains their DHCP/DNS entries live`,
    );
  } else if (next.nodes < prev.nodes) {
    r.warnings.push(
      `removing ${names(hb, next.nodes + 1, prev.nodes)} with their disks (what they wrote on their own disks is lost; FAM is kept); the other nodes keep running untouched`,
    );
  }
  if (prev.imageKey !== next.imageKey) {
    r.warnings.push(
      "the golden image inputs changed: the image is rebuilt (or taken from the cache) and every node's disk is replaced, losing what nodes wrote on their disks; every node restarts",
    );
  }
  const restartWhy: string[] = [];
  const was = (label: string, a: unknown, b: unknown) => {
    if (a !== b) restartWhy.push(`${label} ${String(a) || "(none)"} -> ${String(b) || "(none)"}`);
  };
  // An applied.json from before fame:famMode existed means IVSHMEM.
  was("FAM mode", prev.famMode ?? "ivshmem", next.famMode ?? "ivshmem");
  was("vcpus", prev.vcpus, next.vcpus);
  was("vdram KiB", prev.vdramKiB, next.vdramKiB);
  was("accel", prev.accel, next.accel);
  was("FAME-Z socket", prev.famezSocket, next.famezSocket);
  was("kernel", prev.kernelPath, next.kernelPath);
  was("initrd", prev.initrdPath, next.initrdPath);
  was("cmdline", prev.cmdline, next.cmdline);
  const kept = Math.min(prev.nodes, next.nodes);
  if (restartWhy.length > 0 && kept > 0) {
    r.info.push(
      `${names(hb, 1, kept)} restart to apply ${restartWhy.join(", ")} (disks and FAM kept)`,
    );
  }
  const starting = next.running.filter((n) => n <= kept && !prev.running.includes(n));
  const stopping = prev.running.filter((n) => n <= kept && !next.running.includes(n));
  if (starting.length > 0)
    r.info.push(`starting ${starting.map((n) => nodeName(hb, n)).join(", ")}`);
  if (stopping.length > 0) {
    r.info.push(
      `shutting down ${stopping.map((n) => nodeName(hb, n)).join(", ")} (disks and FAM kept; set fame:running to start them again)`,
    );
  }
  if (r.info.length + r.warnings.length + r.errors.length === 0)
    r.info.push("no change to the cluster");
  return r;
}
