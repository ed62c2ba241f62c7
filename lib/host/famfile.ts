/**
 * Operations on the FAM backing file. The file is user data: nothing here
 * truncates, shrinks or replaces an existing file. Creation uses O_EXCL so a
 * file that appears between check and create is never clobbered; growth only
 * ever extends (bytes below the old size are untouched).
 */
import { randomUUID } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";

export interface FamStat {
  isFile: boolean;
  sizeBytes: number;
  /** Permission bits, e.g. 0o660. */
  mode: number;
  gid: number;
}

export async function statFam(file: string): Promise<FamStat | undefined> {
  try {
    const st = await fs.stat(file);
    return {
      isFile: st.isFile(),
      sizeBytes: st.size,
      mode: st.mode & 0o7777,
      gid: st.gid,
    };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Group id from /etc/group; undefined when the group does not exist. */
export async function groupId(name: string, groupFile = "/etc/group"): Promise<number | undefined> {
  const text = await fs.readFile(groupFile, "utf8");
  for (const line of text.split("\n")) {
    const [group, , gid] = line.split(":");
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/** Makes the directory a new FAM file goes in (and its parents), as createFam does. */
export async function makeParentDir(file: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
}

/**
 * Creates a new sparse file of `sizeBytes`; fails with EEXIST rather than
 * touch an existing one. A file it made but could not size (no space for the
 * size, a file size limit) is removed: O_EXCL made it this call's own.
 */
export async function createFam(file: string, sizeBytes: number): Promise<void> {
  await makeParentDir(file);
  const handle = await fs.open(file, "wx", 0o660);
  try {
    await handle.truncate(sizeBytes);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.rm(file, { force: true }).catch(() => undefined);
    throw e;
  }
  await handle.close();
}

/** Extends the file to `sizeBytes`. Refuses to shrink: that would cut user data. */
export async function growFam(file: string, sizeBytes: number): Promise<void> {
  const handle = await fs.open(file, "r+");
  try {
    const { size } = await handle.stat();
    if (size > sizeBytes) {
      throw new Error(
        `refusing to shrink FAM file ${file} from ${size} to ${sizeBytes} bytes: ${size - sizeBytes} bytes of data would be cut`,
      );
    }
    if (size < sizeBytes) await handle.truncate(sizeBytes);
  } finally {
    await handle.close();
  }
}

/**
 * Cuts the file to `sizeBytes`. Only called when the user opted in with
 * fame:famAllowShrink, with every node stopped.
 */
export async function shrinkFam(file: string, sizeBytes: number): Promise<void> {
  await fs.truncate(file, sizeBytes);
}

/** Sets group and mode so QEMU (running as libvirt-qemu) can map the file. */
export async function setAccess(file: string, gid: number, mode: number): Promise<void> {
  await fs.chown(file, -1, gid);
  await fs.chmod(file, mode);
}

/** Deletes the file. Only called when the user opted in to deleting FAM. */
export async function removeFam(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}

/**
 * The identity of the file now at `file`: device, inode and birth time (an
 * inode number alone is soon reused, on tmpfs at once). Undefined when there is
 * no file. A file put at the same path later never has the same identity.
 */
export async function famIdentity(file: string): Promise<string | undefined> {
  try {
    const st = await fs.stat(file, { bigint: true });
    return `${st.dev}:${st.ino}:${st.birthtimeNs}`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * The claim beside a FAM file: the token of the fame resource that last
 * created or adopted it. Kept outside the file (whose bytes are user data) and
 * outside any stack's state, so a resource that took the file over (a
 * replacement, another stack) is seen by the one that had it before.
 */
export function claimPath(file: string): string {
  return `${file}.fame-claim`;
}

export function newClaimToken(): string {
  return randomUUID();
}

/** The token in `file`'s claim, or undefined when there is none. */
export async function readClaim(file: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(claimPath(file), "utf8")).trim() || undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Records `token` as `file`'s claim (written aside and renamed, so it is never half there). */
export async function writeClaim(file: string, token: string): Promise<void> {
  const target = claimPath(file);
  const aside = `${target}.${process.pid}.new`;
  await fs.writeFile(aside, `${token}\n`, { mode: 0o644 });
  await fs.rename(aside, target).catch(async (e) => {
    await fs.rm(aside, { force: true });
    throw e;
  });
}

/** Removes whatever claim `file` has: nobody's delete may then remove the file. */
export async function withdrawClaim(file: string): Promise<void> {
  await fs.rm(claimPath(file), { force: true });
}

/** Removes `file`'s claim if it is still `token`'s (another resource's claim stays). */
export async function dropClaim(file: string, token: string): Promise<void> {
  if ((await readClaim(file)) === token) await fs.rm(claimPath(file), { force: true });
}
