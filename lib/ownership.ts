/**
 * Which fame stack owns a directory or FAM file. Everything fame writes (the
 * artifact directory with its disks, seeds, Librarian database and artifacts;
 * the FAM file) belongs to one stack, recorded in an owner record beside it,
 * so the claim survives a lost Pulumi state and a second stack pointed at the
 * same paths (say, through the FAME_DIR an env.sh exported) is refused before
 * any change. Pure: the host adapter (lib/host/ownership.ts) reads the files.
 */

/** The owner record of fame:dir, inside it. */
export const DIR_OWNER_FILE = ".fame-owner";

/** The owner record of a FAM file, beside it: `<famPath>.fame-owner`. */
export function famOwnerFile(famPath: string): string {
  return `${famPath}.fame-owner`;
}

export interface OwnerRecord {
  /** `<project>/<stack>`. */
  owner: string;
  /** What the record is about: "dir" or "fam". */
  kind: "dir" | "fam";
  /** When it was first written (ISO time). */
  since: string;
}

export function ownerRecordText(owner: string, kind: OwnerRecord["kind"], now: Date): string {
  return `${JSON.stringify({ owner, kind, since: now.toISOString() } satisfies OwnerRecord)}\n`;
}

/** The record in `text`, or a problem (a damaged record is not trusted as anyone's). */
export function parseOwnerRecord(text: string): OwnerRecord | { problem: string } {
  try {
    const r = JSON.parse(text) as Partial<OwnerRecord>;
    if (typeof r?.owner === "string" && r.owner !== "" && (r.kind === "dir" || r.kind === "fam")) {
      return { owner: r.owner, kind: r.kind, since: typeof r.since === "string" ? r.since : "" };
    }
    return { problem: "it has no owner" };
  } catch (e) {
    return { problem: `it is not JSON (${(e as Error).message})` };
  }
}

/** What the host holds at the paths a stack would write. */
export interface OwnershipFacts {
  dir: string;
  /** Text of `<dir>/.fame-owner`, if present. */
  dirRecord?: string;
  /** The `owner` field of `<dir>/applied.json` (records older than owner files), if present. */
  appliedOwner?: string;
  famPath: string;
  /** Text of `<famPath>.fame-owner`, if present. */
  famRecord?: string;
}

function fixDir(stack: string): string {
  return `choose another fame:dir for this stack (pulumi config set fame:dir /var/lib/fame/${stack}; a FAME_DIR exported by the other stack's env.sh counts too: unset it)`;
}

/**
 * Refusals for stack `owner` (`<project>/<stack>`) writing into what `facts`
 * describe: a directory or FAM file another stack owns. A FAM file is never
 * shared between stacks: nothing keeps two clusters' Librarians and sizes
 * from cutting each other's data.
 */
export function ownershipProblems(facts: OwnershipFacts, owner: string): string[] {
  const stack = owner.split("/").pop() ?? owner;
  const problems: string[] = [];
  const claim = (text: string | undefined, file: string): string | undefined => {
    if (text === undefined) return undefined;
    const r = parseOwnerRecord(text);
    if ("problem" in r) {
      problems.push(
        `${file} is not a valid fame owner record (${r.problem}): fame cannot tell which stack owns it; move it aside if ${owner} should take it over`,
      );
      return undefined;
    }
    return r.owner;
  };
  const dirFile = `${facts.dir.replace(/\/+$/, "")}/${DIR_OWNER_FILE}`;
  const dirOwner = claim(facts.dirRecord, dirFile) ?? facts.appliedOwner;
  if (dirOwner !== undefined && dirOwner !== owner) {
    problems.push(
      `fame:dir ${facts.dir} belongs to fame stack ${dirOwner} (${facts.dirRecord !== undefined ? dirFile : `${facts.dir}/applied.json`}): this stack (${owner}) would write into it and adopt or delete its FAM file, database, disks and seeds; ${fixDir(stack)}`,
    );
  }
  const famFile = famOwnerFile(facts.famPath);
  const famOwner = claim(facts.famRecord, famFile);
  if (famOwner !== undefined && famOwner !== owner) {
    problems.push(
      `fame:famPath ${facts.famPath} belongs to fame stack ${famOwner} (${famFile}): stacks never share a FAM file; choose another fame:famPath for this stack (pulumi config set fame:famPath <dir>/FAM)`,
    );
  }
  return problems;
}
