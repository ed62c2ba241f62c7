/**
 * Can QEMU reach a path? libvirt runs QEMU as its own user (libvirt-qemu on
 * Debian) and relabels the files it is told about (disks, backing images),
 * never their directories: every directory on the way must grant that user
 * search (x). This walks a path the way the kernel does, over a stat-like
 * lookup, and says which directory blocks it (pure; lib/host/reach.ts feeds
 * it the real file system).
 */
import * as path from "node:path";

/** What lstat says about one path. */
export interface PathInfo {
  kind: "dir" | "symlink" | "other";
  /** Permission bits (e.g. 0o755; setgid 0o2000 is honoured for created dirs). */
  mode: number;
  uid: number;
  gid: number;
  /** The link's target (kind "symlink"). */
  link?: string;
}

/** The identity QEMU runs with. */
export interface QemuIdentity {
  name: string;
  uid: number;
  /** Primary and supplementary groups. */
  gids: readonly number[];
}

/** lstat of `p`; undefined when it does not exist. */
export type Lookup = (p: string) => PathInfo | undefined;

export interface ReachOptions {
  /** Also require search on the target itself (a directory QEMU opens files in). */
  searchTarget: boolean;
  /**
   * Mode and owner fame gives a missing directory (its mkdir mode minus the
   * umask); without it missing directories are assumed searchable.
   */
  created?: (dir: string) => { mode: number; uid: number; gid: number };
  /**
   * An authoritative answer for an existing directory the mode bits refuse
   * (a POSIX ACL may grant more): true/false, or undefined when it cannot tell.
   */
  confirm?: (dir: string) => boolean | undefined;
}

export interface Blocked {
  /** The directory QEMU cannot search. */
  dir: string;
  info: Pick<PathInfo, "mode" | "uid" | "gid">;
  /** The directory does not exist yet: fame would create it like this. */
  created: boolean;
}

export interface Unjudged {
  path: string;
  /** "confirm": the mode bits refuse and `confirm` could not tell; "symlinks": a loop or too many links. */
  why: "confirm" | "symlinks";
}

export interface ReachResult {
  blocked?: Blocked;
  /** Paths not judged; nothing after them was judged either for "symlinks". */
  unjudged: Unjudged[];
}

/**
 * Whether the mode bits let `who` search: exactly one class applies (owner,
 * else group, else other), as in the kernel. uid 0 gets no exemption: libvirt
 * clears QEMU's capabilities (qemu.conf clear_emulator_capabilities) when it runs as root.
 */
export function modeAllowsSearch(info: Pick<PathInfo, "mode" | "uid" | "gid">, who: QemuIdentity) {
  const shift = info.uid === who.uid ? 6 : who.gids.includes(info.gid) ? 3 : 0;
  return ((info.mode >> shift) & 1) === 1;
}

const MAX_SYMLINKS = 40; // the kernel's limit

/**
 * The first directory that keeps `who` from reaching absolute `target`.
 * Symlinks are followed as the kernel does (the link's own directory and
 * every directory of its target need search); missing components are judged
 * as fame would create them (`created`), or pass.
 */
export function reachBlock(
  target: string,
  who: QemuIdentity,
  lookup: Lookup,
  opts: ReachOptions,
): ReachResult {
  const unjudged: Unjudged[] = [];
  const infos = new Map<
    string,
    { info: Pick<PathInfo, "mode" | "uid" | "gid">; created: boolean }
  >();
  const infoOf = (p: string) => {
    const known = infos.get(p);
    if (known) return known;
    const st = lookup(p);
    const entry = st ? { info: st, created: false } : undefined;
    if (entry) infos.set(p, entry);
    return entry;
  };
  /** The block at `dir`, if `who` cannot search it. */
  const judge = (dir: string): Blocked | undefined => {
    const entry = infoOf(dir);
    if (!entry) return undefined; // nothing known and nothing fame creates: not ours to judge
    if (modeAllowsSearch(entry.info, who)) return undefined;
    if (!entry.created) {
      const answer = opts.confirm?.(dir);
      if (answer === true) return undefined;
      if (answer === undefined && opts.confirm) {
        unjudged.push({ path: dir, why: "confirm" });
        return undefined;
      }
    }
    const { mode, uid, gid } = entry.info;
    return { dir, info: { mode, uid, gid }, created: entry.created };
  };

  const queue = target.split("/").filter((c) => c !== "" && c !== ".");
  let cur = "/";
  let missing = false;
  let links = 0;
  while (queue.length > 0) {
    const name = queue.shift() as string;
    // Looking a name up in `cur` (also "..") needs search on `cur`.
    const blocked = judge(cur);
    if (blocked) return { blocked, unjudged };
    if (name === "..") {
      cur = path.posix.dirname(cur);
      continue;
    }
    const next = path.posix.join(cur, name);
    const st = missing ? undefined : lookup(next);
    if (!st) {
      missing = true;
      const made = opts.created?.(next);
      if (made) {
        // A setgid parent hands its group (and the setgid bit) to a new directory.
        const parent = infoOf(cur)?.info;
        const info =
          parent && parent.mode & 0o2000
            ? { ...made, mode: made.mode | 0o2000, gid: parent.gid }
            : made;
        infos.set(next, { info, created: true });
      }
      cur = next;
      continue;
    }
    if (st.kind === "symlink") {
      if (++links > MAX_SYMLINKS || st.link === undefined) {
        return { unjudged: [...unjudged, { path: next, why: "symlinks" }] };
      }
      queue.unshift(...st.link.split("/").filter((c) => c !== "" && c !== "."));
      if (st.link.startsWith("/")) cur = "/";
      continue;
    }
    infos.set(next, { info: st, created: false });
    // A file in the middle of the path: QEMU gets ENOTDIR, which other checks name.
    if (st.kind !== "dir" && queue.length > 0) return { unjudged };
    cur = next;
  }
  if (opts.searchTarget) {
    const blocked = judge(cur);
    if (blocked) return { blocked, unjudged };
  }
  return { unjudged };
}

/** "0700". */
export function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * The refusal for `key = target` blocked at `blocked.dir`: what blocks it,
 * and how to fix it (another location, or let QEMU's user search).
 */
export function reachMessage(
  key: string,
  target: string,
  who: QemuIdentity,
  blocked: Blocked,
  owner: string,
  example: string,
): string {
  const { dir, info } = blocked;
  const head = `fame:${key} = ${JSON.stringify(target)}: QEMU runs as ${who.name} (uid ${who.uid}), which cannot reach it:`;
  if (blocked.created) {
    return `${head} fame would create ${dir} with mode ${octal(info.mode)} (0755 minus the umask), owned by ${owner}, which ${who.name} could not search. Run pulumi with umask 022, or create ${dir} first with mode 0755`;
  }
  const where =
    dir !== target && dir !== "/" && !example.startsWith(`${dir}/`)
      ? `a fame:${key} outside ${dir}, e.g. ${example}`
      : `another fame:${key}`;
  return `${head} ${dir} (owner ${owner}, mode ${octal(info.mode)}) does not let ${who.name} search it. Choose ${where}, or let ${who.name} search ${dir}: chmod o+x ${dir}, or setfacl -m u:${who.name}:x ${dir}`;
}

/** A path QEMU must reach, named by the config key it comes from. */
export interface ReachTarget {
  key: string;
  /** The value shown in the message. */
  value: string;
  /** The path walked (the value, or a directory below it). */
  path: string;
  /** QEMU opens files in it: it needs search itself. */
  searchTarget: boolean;
  /** Missing directories fame chmods to 0755 after mkdir (the umask does not apply). */
  chmodded: readonly string[];
  /** A location to suggest instead. */
  example: string;
}

/**
 * What every node's QEMU opens: disks, seeds, console logs and LSA files in
 * fame:dir, the FAM file (fame gives the file itself group libvirt-qemu,
 * 0660; libvirt relabels disks, never directories), and the golden image
 * the disks are backed by, in <imageCache>/<key>.
 */
export function reachTargets(
  config: { dir: string; famPath: string; imageCache: string },
  imageKey: string,
  defaultDir: string,
  defaultImageCache: string,
): ReachTarget[] {
  // fame chmods fame:dir and a finished image's directory to 0755; its other mkdirs keep the umask's mode.
  const chmodded = [path.posix.resolve(config.dir)];
  const imageDir = path.posix.join(config.imageCache, imageKey);
  return [
    {
      key: "dir",
      value: config.dir,
      path: config.dir,
      searchTarget: true,
      chmodded,
      example: defaultDir,
    },
    {
      key: "famPath",
      value: config.famPath,
      path: config.famPath,
      searchTarget: false,
      chmodded,
      example: path.posix.join(defaultDir, "FAM"),
    },
    {
      key: "imageCache",
      value: config.imageCache,
      path: imageDir,
      searchTarget: true,
      chmodded: [path.posix.resolve(imageDir)],
      example: defaultImageCache,
    },
  ];
}
