/**
 * Dynamic provider for the FAM backing file. Creates a missing file, adopts an
 * existing one of the right size untouched, grows it in place, and never
 * shrinks, recreates or deletes it unless `deleteOnDestroy` was opted into.
 */
import * as pulumi from "@pulumi/pulumi";
import * as fam from "../lib/host/famfile";
import * as virsh from "../lib/host/virsh";
import { formatSize, isPowerOfTwo } from "../lib/units";
import { type CheckFailure, defineProvider, type Undo } from "./contract";

export interface FamFileInputs {
  /** Absolute path of the backing file. */
  path: string;
  sizeBytes: number;
  /** Group that must be able to read and write the file (QEMU's). */
  group: string;
  /** Permission bits (0o660). */
  mode: number;
  /** Opt-in: delete the file when the resource is deleted. */
  deleteOnDestroy: boolean;
  /** Opt-in: allow a smaller size, cutting the bytes beyond it. */
  allowShrink: boolean;
  /**
   * Domains that map the file: they are shut down before a resize (their own
   * update then starts them with the new size). Not part of the diff.
   */
  users: { uri: string; domains: string[]; shutdownTimeoutMs: number };
}

export interface FamFileOutputs extends FamFileInputs {
  /** True when fame created the file, false when it adopted an existing one. */
  createdByFame: boolean;
}

const KEYS = ["path", "sizeBytes", "group", "mode", "deleteOnDestroy", "allowShrink"] as const;

function describeSize(bytes: number): string {
  return `${formatSize(bytes)} (${bytes} bytes)`;
}

async function checkInputs(
  news: Partial<FamFileInputs>,
  olds: Partial<FamFileOutputs>,
): Promise<CheckFailure[]> {
  const failures: CheckFailure[] = [];
  if (!news.path?.startsWith("/")) {
    failures.push({
      property: "path",
      reason: `FAM path ${JSON.stringify(news.path)} must be absolute`,
    });
  }
  if (!isPowerOfTwo(news.sizeBytes ?? 0)) {
    failures.push({
      property: "sizeBytes",
      reason: `FAM size ${news.sizeBytes} must be a power of two`,
    });
  }
  if (failures.length > 0 || news.path === undefined || news.sizeBytes === undefined) {
    return failures;
  }
  const st = await fam.statFam(news.path);
  if (st && !st.isFile) {
    failures.push({
      property: "path",
      reason: `FAM path ${news.path} exists and is not a regular file`,
    });
  } else if (
    st &&
    st.sizeBytes > news.sizeBytes &&
    !(news.allowShrink && olds.path === news.path)
  ) {
    failures.push({
      property: "sizeBytes",
      reason: `FAM file ${news.path} holds ${describeSize(st.sizeBytes)}; a size of ${describeSize(news.sizeBytes)} would cut ${describeSize(st.sizeBytes - news.sizeBytes)} of data. Shrinking is refused: set fame:famSize to ${formatSize(st.sizeBytes)} or larger, or set fame:famAllowShrink true to cut the data`,
    });
  } else if (st && olds.path !== news.path && st.sizeBytes !== news.sizeBytes) {
    failures.push({
      property: "sizeBytes",
      reason: `FAM file ${news.path} already exists with ${describeSize(st.sizeBytes)}, not ${describeSize(news.sizeBytes)}: set fame:famSize to ${formatSize(st.sizeBytes)} to adopt it as it is`,
    });
  }
  if (news.group !== undefined && (await fam.groupId(news.group)) === undefined) {
    failures.push({
      property: "group",
      reason: `group ${news.group} does not exist on this host: install libvirt-daemon-system (it creates the QEMU group)`,
    });
  }
  return failures;
}

async function ensureAccess(inputs: FamFileInputs): Promise<void> {
  const gid = await fam.groupId(inputs.group);
  if (gid === undefined) throw new Error(`group ${inputs.group} does not exist on this host`);
  await fam.setAccess(inputs.path, gid, inputs.mode);
}

export const famFileProvider = defineProvider<FamFileInputs, FamFileOutputs>({
  keys: KEYS,
  // A new path is a new file; the old one is kept (delete only removes it on opt-in).
  replaceKeys: ["path"],
  uniqueKeys: ["path"],
  check: checkInputs,

  async create(inputs: FamFileInputs, undo: Undo) {
    const st = await fam.statFam(inputs.path);
    if (st === undefined) {
      await fam.createFam(inputs.path, inputs.sizeBytes);
      // Only the empty file made just now goes if setting its access fails; an adopted one is user data.
      undo.push(`remove new FAM file ${inputs.path}`, () => fam.removeFam(inputs.path));
    } else if (!st.isFile || st.sizeBytes !== inputs.sizeBytes) {
      throw new Error(
        `FAM file ${inputs.path} exists with ${describeSize(st.sizeBytes)} and cannot be adopted as ${describeSize(inputs.sizeBytes)}`,
      );
    }
    await ensureAccess(inputs);
    const outs = { ...inputs, createdByFame: st === undefined } satisfies FamFileOutputs;
    return { id: inputs.path, outs };
  },

  async read(id: string, props?: FamFileOutputs) {
    const file = props?.path ?? id;
    const st = await fam.statFam(file);
    if (st === undefined) {
      console.error(
        `fame: FAM file ${file} is gone (removed outside fame): its data is lost; the next update creates an empty file`,
      );
      return {};
    }
    const group = props?.group ?? "libvirt-qemu";
    const gid = await fam.groupId(group);
    const outs = {
      path: file,
      sizeBytes: st.sizeBytes,
      // Report a different group honestly so drift shows and `up` repairs it.
      group: gid === st.gid ? group : `gid:${st.gid}`,
      mode: st.mode,
      deleteOnDestroy: props?.deleteOnDestroy ?? false,
      allowShrink: props?.allowShrink ?? false,
      users: props?.users ?? { uri: "", domains: [], shutdownTimeoutMs: 0 },
      createdByFame: props?.createdByFame ?? false,
    } satisfies FamFileOutputs;
    return { id, props: outs };
  },

  async update(_id: string, olds: FamFileOutputs, news: FamFileInputs) {
    if (news.sizeBytes !== olds.sizeBytes) {
      if (news.sizeBytes < olds.sizeBytes && !news.allowShrink) {
        throw new Error(
          `refusing to shrink FAM file ${news.path} from ${describeSize(olds.sizeBytes)} to ${describeSize(news.sizeBytes)} without fame:famAllowShrink`,
        );
      }
      // QEMU maps the file: every node stops before its size changes.
      const { uri, domains, shutdownTimeoutMs } = news.users;
      await Promise.all(domains.map((d) => virsh.stopDomain(uri, d, shutdownTimeoutMs)));
      if (news.sizeBytes > olds.sizeBytes) await fam.growFam(news.path, news.sizeBytes);
      else await fam.shrinkFam(news.path, news.sizeBytes);
    }
    await ensureAccess(news);
    const outs = { ...news, createdByFame: olds.createdByFame } satisfies FamFileOutputs;
    return { outs };
  },

  async delete(_id: string, props: FamFileOutputs) {
    // The file is user data: without the explicit opt-in it stays on disk.
    if (props.deleteOnDestroy === true) await fam.removeFam(props.path);
  },
});

export type FamFileArgs = { [K in keyof FamFileInputs]: pulumi.Input<FamFileInputs[K]> };

/** The FAM backing file as a Pulumi resource. */
export class FamFile extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly sizeBytes: pulumi.Output<number>;
  declare readonly group: pulumi.Output<string>;
  declare readonly mode: pulumi.Output<number>;
  declare readonly createdByFame: pulumi.Output<boolean>;

  constructor(name: string, args: FamFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(famFileProvider, name, { ...args, createdByFame: undefined }, opts, "fame", "FamFile");
  }
}
