/**
 * A plain-language account of what a config change will do to the cluster,
 * printed by preview and up before anything happens: which nodes are created,
 * deleted or restarted, and whether any data is at risk: what the engine's
 * own preview (which lists resources, not consequences) does not say. It
 * compares the new config with the one last applied (<dir>/applied.json),
 * which is only ever informational: the one refusal (a FAM shrink) is decided
 * from the FAM file itself, so a stale or damaged record cannot block a change.
 */
import { BOOT_INITRD_FILE } from "./bootinitrd";
import { BOOT_KERNEL_FILE } from "./bootkernel";
import { type FameConfig, LEGACY_SUITE, SUITES, type Suite } from "./config";
import { legacyImageCmdline } from "./image";
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
  /** The node user (set up from the seed disks); absent in records of fame before it was. */
  user?: string;
  /** Golden image recipe key. */
  imageKey: string;
  /** The stack that applied it (`<project>/<stack>`): a record of another is ignored. */
  owner: string;
  /** Debian release; absent in a record written before fame:suite existed (bookworm). */
  suite?: Suite;
  /**
   * fame's own kernel arguments (lib/lfs fameBootArgs, before fame:cmdline);
   * absent in a record written before fame recorded them (lib/image legacyImageCmdline).
   */
  bootArgs?: string;
  /**
   * fame's boot initrd file (lib/bootinitrd BOOT_INITRD_FILE), or "" for the
   * image's own; absent in a record written before fame had one (the image's).
   */
  bootInitrd?: string;
  /**
   * fame's boot kernel file (lib/bootkernel BOOT_KERNEL_FILE), or "" for the
   * image's vmlinuz; absent in a record written before fame had one (the image's).
   */
  bootKernel?: string;
  /** fame:famPrealloc; absent in a record written before the key existed (off). */
  famPrealloc?: boolean;
};

export function appliedConfig(
  config: FameConfig,
  imageKey: string,
  owner: string,
  bootArgs: string,
  fameBoot: boolean,
): AppliedConfig {
  const picked = Object.fromEntries(APPLIED_KEYS.map((k) => [k, config[k]]));
  return {
    ...(picked as Pick<FameConfig, (typeof APPLIED_KEYS)[number]>),
    user: config.user,
    imageKey,
    owner,
    suite: config.suite,
    bootArgs,
    bootInitrd: fameBoot ? BOOT_INITRD_FILE : "",
    bootKernel: fameBoot ? BOOT_KERNEL_FILE : "",
    famPrealloc: config.famPrealloc,
  };
}

/** The words of `b` not in `a` (+) and of `a` not in `b` (-): what a kernel command line change is. */
function argsChange(a: string, b: string): string {
  const as = a.split(/\s+/).filter(Boolean);
  const bs = b.split(/\s+/).filter(Boolean);
  return [
    ...bs.filter((x) => !as.includes(x)).map((x) => `+${x}`),
    ...as.filter((x) => !bs.includes(x)).map((x) => `-${x}`),
  ].join(" ");
}

const NUMBER_KEYS = new Set(["nodes", "famSizeBytes", "vcpus", "vdramKiB"]);

/**
 * Reads an applied record, checking every field's type: a damaged, partial or
 * foreign record is reported (and then ignored), never trusted.
 */
export function parseApplied(
  text: string,
  owner: string,
): { applied: AppliedConfig } | { problem: string } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { problem: `not JSON (${(e as Error).message})` };
  }
  if (data === null || typeof data !== "object" || Array.isArray(data))
    return { problem: "not a JSON object" };
  const rec = data as Record<string, unknown>;
  for (const key of [...APPLIED_KEYS, "imageKey", "owner"]) {
    const v = rec[key];
    const ok =
      key === "running"
        ? Array.isArray(v) && v.every((n) => Number.isSafeInteger(n))
        : NUMBER_KEYS.has(key)
          ? Number.isSafeInteger(v)
          : typeof v === "string";
    if (!ok) return { problem: `field ${key} is missing or of the wrong type` };
  }
  if (rec.suite !== undefined && !SUITES.includes(rec.suite as Suite))
    return { problem: `field suite is not one of ${SUITES.join(", ")}` };
  if (rec.user !== undefined && typeof rec.user !== "string")
    return { problem: "field user is of the wrong type" };
  if (rec.bootArgs !== undefined && typeof rec.bootArgs !== "string")
    return { problem: "field bootArgs is of the wrong type" };
  if (rec.bootInitrd !== undefined && typeof rec.bootInitrd !== "string")
    return { problem: "field bootInitrd is of the wrong type" };
  if (rec.bootKernel !== undefined && typeof rec.bootKernel !== "string")
    return { problem: "field bootKernel is of the wrong type" };
  if (rec.famPrealloc !== undefined && typeof rec.famPrealloc !== "boolean")
    return { problem: "field famPrealloc is of the wrong type" };
  if (rec.owner !== owner)
    return { problem: `it was written by stack ${String(rec.owner)}, not ${owner}` };
  return { applied: rec as AppliedConfig };
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

/** Opt-ins beyond fame:famAllowShrink that the report speaks of. */
export interface OptIns {
  /** fame:librarianReset. */
  librarianReset?: boolean;
  /** This update builds a new Librarian database over one of another layout. */
  librarianRebuild?: boolean;
}

const SET_BACK = (key: string) => `set it back to false (pulumi config set fame:${key} false)`;

/**
 * `famFileBytes`: the size of the file at `next.famPath` now (undefined when
 * there is none). Growth and shrinking are judged from it, not from the record.
 * An opt-in left true with nothing for it to allow this time is warned about
 * last: it would allow the next such change without asking.
 */
export function describeChanges(
  prev: AppliedConfig | undefined,
  next: AppliedConfig,
  allowShrink: boolean,
  famFileBytes?: number,
  optIns: OptIns = {},
): ChangeReport {
  const r = consequences(prev, next, allowShrink, famFileBytes, optIns);
  const shrinks = (famFileBytes ?? next.famSizeBytes) > next.famSizeBytes;
  if (allowShrink && !shrinks) {
    r.warnings.push(
      `fame:famAllowShrink is still true: the next smaller fame:famSize will cut FAM data without asking; ${SET_BACK("famAllowShrink")}`,
    );
  }
  if (optIns.librarianReset && !optIns.librarianRebuild) {
    r.warnings.push(
      `fame:librarianReset is still true: the next fame:nodes or fame:famSize change that needs a new Librarian database will rebuild it without asking, losing every file under /lfs; ${SET_BACK("librarianReset")}`,
    );
  }
  return r;
}

function consequences(
  prev: AppliedConfig | undefined,
  next: AppliedConfig,
  allowShrink: boolean,
  famFileBytes: number | undefined,
  optIns: OptIns,
): ChangeReport {
  const r: ChangeReport = { info: [], warnings: [], errors: [] };
  const onDisk = famFileBytes ?? next.famSizeBytes;
  if (onDisk > next.famSizeBytes) {
    const cut = `${formatSize(onDisk - next.famSizeBytes)} (${onDisk - next.famSizeBytes} bytes)`;
    if (allowShrink) {
      r.warnings.push(
        `FAM shrinks from ${formatSize(onDisk)} to ${formatSize(next.famSizeBytes)}: the last ${cut} of FAM data are cut (fame:famAllowShrink is set); every node restarts; afterwards ${SET_BACK("famAllowShrink")}`,
      );
    } else {
      r.errors.push(
        `fame:famSize = ${formatSize(next.famSizeBytes)} is smaller than the FAM file ${next.famPath} (${formatSize(onDisk)}): it would cut ${cut} of FAM data; set fame:famAllowShrink true to allow it`,
      );
    }
  }
  if (optIns.librarianReset && optIns.librarianRebuild) {
    r.warnings.push(
      `the Librarian database is rebuilt for ${next.nodes} node(s) and ${formatSize(next.famSizeBytes)} of FAM: every file under /lfs is lost (fame:librarianReset is set); afterwards ${SET_BACK("librarianReset")}`,
    );
  }
  if (!prev) {
    r.info.push(
      `creating a cluster of ${next.nodes} node(s) with ${formatSize(next.famSizeBytes)} of FAM at ${next.famPath}`,
    );
    return r;
  }
  const hb = next.hostbase;
  if (prev.famPath !== next.famPath) {
    const newFile =
      famFileBytes === undefined
        ? `a new empty file of ${formatSize(next.famSizeBytes)}`
        : "the file already there, adopted as it is";
    // True whatever fame:famDeleteOnDestroy says: a move is an update of the FAM resource, never a delete.
    r.warnings.push(
      `FAM moves from ${prev.famPath} to ${next.famPath}: nodes map ${newFile} and no longer see the old FAM data; the old file is kept at ${prev.famPath} with its data (a path change never deletes a FAM file, also not with fame:famDeleteOnDestroy; remove it by hand when it is no longer needed)`,
    );
  } else if (famFileBytes !== undefined && next.famSizeBytes > famFileBytes) {
    r.info.push(
      `FAM grows from ${formatSize(famFileBytes)} to ${formatSize(next.famSizeBytes)}: every node is stopped, the file grown in place (all existing bytes kept), and running nodes start with the new size`,
    );
  }
  // The domains and the network carry the names; a node's disk stays in its file (providers/nodeDisk keep).
  const renamed = prev.hostbase !== next.hostbase;
  const moved = prev.libvirtUri !== next.libvirtUri;
  const kept = Math.min(prev.nodes, next.nodes);
  if (renamed || moved) {
    const what = [
      ...(renamed
        ? [`the nodes are renamed ${names(prev.hostbase, 1, kept)} -> ${names(hb, 1, kept)}`]
        : []),
      ...(moved ? [`the nodes move from libvirt ${prev.libvirtUri} to ${next.libvirtUri}`] : []),
    ].join(", and ");
    r.info.push(
      `${what}: the network and every node's domain are replaced (each node restarts, with a new seed disk); every node keeps its disk and what it wrote there, and FAM is kept`,
    );
  }
  if (prev.octets123 !== next.octets123) {
    r.info.push(
      `the subnet changes from ${prev.octets123}.0/24 to ${next.octets123}.0/24: the network is replaced; each node's seed disk gets the new /etc/hosts`,
    );
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
    // A record from before fame:suite was written by a bookworm stack.
    const was = prev.suite ?? LEGACY_SUITE;
    const release =
      next.suite && was !== next.suite ? ` (the Debian release: ${was} -> ${next.suite})` : "";
    r.warnings.push(
      `the golden image inputs changed${release}: the image is rebuilt (or taken from the cache) and every node's disk is replaced, losing what nodes wrote on their disks; every node restarts`,
    );
  }
  const restartWhy: string[] = [];
  const was = (label: string, a: unknown, b: unknown) => {
    if (a !== b) restartWhy.push(`${label} ${String(a) || "(none)"} -> ${String(b) || "(none)"}`);
  };
  // The seed disks carry these; a node sets them up at boot (its disk is kept).
  was("subnet", prev.octets123, next.octets123);
  if (prev.user !== undefined) was("user", prev.user, next.user);
  // An applied.json from before fame:famMode existed means IVSHMEM.
  was("FAM mode", prev.famMode ?? "ivshmem", next.famMode ?? "ivshmem");
  was("vcpus", prev.vcpus, next.vcpus);
  was("vdram KiB", prev.vdramKiB, next.vdramKiB);
  was("accel", prev.accel, next.accel);
  was("FAME-Z socket", prev.famezSocket, next.famezSocket);
  const onOff = (b: boolean | undefined) => (b ? "on" : "off");
  was("FAM preallocation", onOff(prev.famPrealloc), onOff(next.famPrealloc));
  was("kernel", prev.kernelPath, next.kernelPath);
  was("initrd", prev.initrdPath, next.initrdPath);
  was("cmdline", prev.cmdline, next.cmdline);
  // fame's own arguments: a newer fame may boot nodes otherwise (as under TCG since issue 19).
  const prevBoot =
    prev.bootArgs ?? legacyImageCmdline(prev.suite ?? LEGACY_SUITE, prev.famMode ?? "ivshmem");
  // A FAM mode switch changes them too, and is said above.
  if (next.bootArgs !== undefined && (prev.famMode ?? "ivshmem") === (next.famMode ?? "ivshmem")) {
    const change = argsChange(prevBoot, next.bootArgs);
    if (change) restartWhy.push(`fame's kernel arguments (${change})`);
  }
  const prevInitrd = prev.bootInitrd ?? "";
  if (next.bootInitrd !== undefined && prevInitrd !== next.bootInitrd) {
    const what = (f: string) => (f ? `fame's own (${f})` : "the image's");
    restartWhy.push(`fame's boot initrd (${what(prevInitrd)} -> ${what(next.bootInitrd)})`);
  }
  const prevKernel = prev.bootKernel ?? "";
  if (next.bootKernel !== undefined && prevKernel !== next.bootKernel) {
    const what = (f: string) => (f ? `fame's unpacked one (${f})` : "the image's vmlinuz");
    restartWhy.push(`fame's boot kernel (${what(prevKernel)} -> ${what(next.bootKernel)})`);
  }
  // A replaced domain restarts anyway (said above).
  if (restartWhy.length > 0 && kept > 0 && !renamed && !moved) {
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
