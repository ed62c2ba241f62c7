/**
 * Dynamic provider for the FAM backing file. Creates a missing file, adopts an
 * existing one of the right size untouched, grows it in place, and never
 * shrinks or recreates it. No input replaces the resource: a new path is an
 * in-place update that leaves the old file where it is, so the engine deletes
 * this resource only when it leaves the stack (`pulumi destroy`, or removed
 * from the program). Even then the file is deleted only when `deleteOnDestroy`
 * is set, this resource created it (not adopted it), it is still the same file
 * (identity) and no other resource took it over since (the claim beside it).
 */
import * as pulumi from "@pulumi/pulumi";
import * as fam from "../lib/host/famfile";
import { claim, release } from "../lib/host/ownership";
import * as virsh from "../lib/host/virsh";
import { famOwnerFile } from "../lib/ownership";
import { formatSize, isPowerOfTwo } from "../lib/units";
import { type CheckFailure, defineProvider, keepPathInDir } from "./contract";

export interface FamFileInputs {
  /** Absolute path of the backing file. */
  path: string;
  sizeBytes: number;
  /** Group that must be able to read and write the file (QEMU's). */
  group: string;
  /** Permission bits (0o660). */
  mode: number;
  /**
   * Opt-in: delete the file when the resource is deleted (destroy, or removed
   * from the program), if it created the file. Never on a path change.
   */
  deleteOnDestroy: boolean;
  /** Opt-in: allow a smaller size, cutting the bytes beyond it. */
  allowShrink: boolean;
  /**
   * Domains that map the file: they are shut down before a resize (their own
   * update then starts them with the new size). Not part of the diff.
   */
  users: { uri: string; domains: string[]; shutdownTimeoutMs: number };
  /**
   * The stack that owns the file, `<project>/<stack>`: recorded beside it
   * (`<path>.fame-owner`, lib/ownership.ts), and a file another stack's
   * record claims is refused. Absent: no record (the CXL label files).
   */
  owner?: string;
  /**
   * Stay in the file first taken when a new path in the same directory is
   * asked for: a node's label storage keeps its namespace label when the node
   * is renamed (fame:hostbase). Not part of the diff. Default: false (a new
   * path is a move).
   */
  keepPath?: boolean;
}

export interface FamFileOutputs extends FamFileInputs {
  /** True when this resource created the file at `path`, false when it adopted an existing one. */
  createdByFame: boolean;
  /**
   * Identity of that file when it was created or adopted (lib/host/famfile
   * famIdentity). Absent in state written before fame recorded it.
   */
  fileId?: string;
  /**
   * This resource's token, written into the file's claim when it took the
   * file; absent when the claim could not be written or in older state.
   */
  claim?: string;
}

const KEYS = [
  "path",
  "sizeBytes",
  "group",
  "mode",
  "deleteOnDestroy",
  "allowShrink",
  "owner",
] as const;

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
  // Nothing replaces the resource: a replacement's delete would run with the old
  // state's deleteOnDestroy. A new path is an update (the old file stays), and
  // with no unique key a forced replacement (`up --replace`) is create-first, so
  // the new resource claims the file before the old one's delete looks.
  replaceKeys: [],
  keep: (olds, news) => keepPathInDir(olds, news, news.keepPath === true),
  check: checkInputs,

  async create(inputs: FamFileInputs) {
    const taken = await takeFile(inputs, fam.newClaimToken());
    return { id: inputs.path, outs: { ...inputs, ...taken } satisfies FamFileOutputs };
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
      // As recorded: a file swapped in out of band must not pass for the one fame made.
      ...(props?.fileId !== undefined ? { fileId: props.fileId } : {}),
      ...(props?.claim !== undefined ? { claim: props.claim } : {}),
    } satisfies FamFileOutputs;
    return { id, props: outs };
  },

  async update(_id: string, olds: FamFileOutputs, news: FamFileInputs) {
    if (news.path !== olds.path) {
      // A move: the new file is made or adopted at its size; the old one is left as it is.
      const taken = await takeFile(news, olds.claim ?? fam.newClaimToken());
      if (olds.claim !== undefined) await fam.dropClaim(olds.path, olds.claim).catch(() => {});
      return { outs: { ...news, ...taken } satisfies FamFileOutputs };
    }
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
    if (news.owner !== undefined) await claim(famOwnerFile(news.path), news.owner, "fam");
    const outs = {
      ...news,
      createdByFame: olds.createdByFame,
      ...(olds.fileId !== undefined ? { fileId: olds.fileId } : {}),
      ...(olds.claim !== undefined ? { claim: olds.claim } : {}),
    } satisfies FamFileOutputs;
    return { outs };
  },

  async delete(_id: string, props: FamFileOutputs) {
    // Reached only when the resource leaves the stack (nothing replaces it).
    const keep = await keepReason(props);
    if (keep === undefined) {
      await fam.removeFam(props.path);
      // The owner record goes with the file; a kept file keeps its owner.
      if (props.owner !== undefined) await release(famOwnerFile(props.path), props.owner);
    } else if (props.deleteOnDestroy === true) {
      console.error(`fame: keeping the FAM file ${props.path} despite deleteOnDestroy: ${keep}`);
    }
    if (props.claim !== undefined) await fam.dropClaim(props.path, props.claim).catch(() => {});
  },
});

/**
 * Creates the file at `inputs.path` or adopts the one there, sets its access
 * and records the claim. A file this call made is removed again if a later
 * step fails (it holds no data yet).
 */
async function takeFile(
  inputs: FamFileInputs,
  token: string,
): Promise<Pick<FamFileOutputs, "createdByFame" | "fileId" | "claim">> {
  const st = await fam.statFam(inputs.path);
  if (st !== undefined && (!st.isFile || st.sizeBytes !== inputs.sizeBytes)) {
    throw new Error(
      `FAM file ${inputs.path} exists with ${describeSize(st.sizeBytes)} and cannot be adopted as ${describeSize(inputs.sizeBytes)}`,
    );
  }
  // First: another stack's file is refused before fame changes anything of it. The owner
  // record sits beside the file, so a new file's directory is made first (a famPath outside
  // fame:dir has no Directory resource to make it).
  if (inputs.owner !== undefined) {
    if (st === undefined) await fam.makeParentDir(inputs.path);
    await claim(famOwnerFile(inputs.path), inputs.owner, "fam");
  }
  if (st === undefined) await fam.createFam(inputs.path, inputs.sizeBytes);
  try {
    await ensureAccess(inputs);
    const fileId = await fam.famIdentity(inputs.path);
    if (fileId === undefined)
      throw new Error(`FAM file ${inputs.path} vanished while being set up`);
    // The claim is what keeps an older resource's delete off a file taken over since.
    const claimed = await fam.writeClaim(inputs.path, token).then(
      () => true,
      async (e: Error) => {
        // Not recorded (a full disk): no claim at all is safe, an older one left standing is not.
        await fam.withdrawClaim(inputs.path);
        console.error(
          `fame: cannot record the claim ${fam.claimPath(inputs.path)} (${e.message}): fame will never delete ${inputs.path}`,
        );
        return false;
      },
    );
    return { createdByFame: st === undefined, fileId, ...(claimed ? { claim: token } : {}) };
  } catch (e) {
    if (st === undefined) {
      await fam.removeFam(inputs.path);
      if (inputs.owner !== undefined) await release(famOwnerFile(inputs.path), inputs.owner);
    }
    throw e;
  }
}

/** Why `delete` keeps the file (undefined: it may delete it). */
async function keepReason(props: FamFileOutputs): Promise<string | undefined> {
  if (props.deleteOnDestroy !== true) return "not opted into";
  if (props.createdByFame !== true)
    return "fame adopted it (it existed before), it did not create it";
  if (props.fileId === undefined || props.claim === undefined) {
    return "its record predates fame's ownership check (or the claim could not be written); delete it by hand if it is no longer needed";
  }
  const now = await fam.famIdentity(props.path);
  if (now === undefined) return undefined; // already gone: nothing to keep
  if (now !== props.fileId) return "the file at that path is not the one fame created";
  if ((await fam.readClaim(props.path)) !== props.claim) {
    return `another fame resource (a replacement, or another stack) took the file over since (${fam.claimPath(props.path)})`;
  }
  return undefined;
}

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
