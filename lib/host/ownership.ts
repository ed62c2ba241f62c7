/** Reads and writes the owner records of lib/ownership.ts. */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import {
  DIR_OWNER_FILE,
  famOwnerFile,
  type OwnerRecord,
  type OwnershipFacts,
  ownerRecordText,
  parseOwnerRecord,
} from "../ownership";

function readIfFile(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** What the host holds at `dir` and `famPath` (synchronous: the program's preflight). */
export function ownershipFacts(dir: string, famPath: string): OwnershipFacts {
  let appliedOwner: string | undefined;
  const applied = readIfFile(path.join(dir, "applied.json"));
  if (applied !== undefined) {
    try {
      const o = (JSON.parse(applied) as { owner?: unknown }).owner;
      if (typeof o === "string") appliedOwner = o;
    } catch {
      // A damaged record claims nothing; the change report says it is ignored.
    }
  }
  const dirRecord = readIfFile(path.join(dir, DIR_OWNER_FILE));
  const famRecord = readIfFile(famOwnerFile(famPath));
  return {
    dir,
    famPath,
    ...(dirRecord !== undefined ? { dirRecord } : {}),
    ...(appliedOwner !== undefined ? { appliedOwner } : {}),
    ...(famRecord !== undefined ? { famRecord } : {}),
  };
}

/**
 * Writes `file` as `owner`'s record unless it already is; refuses (throws)
 * when another stack's record is there. Written to a temporary name and
 * renamed, so a crash never leaves half a record.
 */
export async function claim(file: string, owner: string, kind: OwnerRecord["kind"]): Promise<void> {
  const text = await fsp.readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
  if (text !== undefined) {
    const r = parseOwnerRecord(text);
    if (!("problem" in r) && r.owner === owner) return;
    throw new Error(
      `${file} says ${"problem" in r ? `nothing usable (${r.problem})` : `fame stack ${r.owner} owns it`}, not ${owner}: refusing to take it over`,
    );
  }
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, ownerRecordText(owner, kind, new Date()), { mode: 0o644 });
  await fsp.rename(tmp, file);
}

/** Removes `file` if it is `owner`'s record (a foreign or damaged one stays). */
export async function release(file: string, owner: string): Promise<void> {
  const text = await fsp.readFile(file, "utf8").catch(() => undefined);
  if (text === undefined) return;
  const r = parseOwnerRecord(text);
  if (!("problem" in r) && r.owner === owner) await fsp.rm(file, { force: true });
}
