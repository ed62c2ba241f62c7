/**
 * Who QEMU runs as on this host, and whether it can reach a path: the real
 * file system fed to lib/reach's walk, with an authoritative second opinion
 * (runuser as root) where the mode bits refuse but an ACL may grant.
 * Synchronous: the program checks before it registers anything.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import {
  type PathInfo,
  type QemuIdentity,
  type ReachTarget,
  reachBlock,
  reachMessage,
} from "../reach";

export const QEMU_CONF = "/etc/libvirt/qemu.conf";

export interface QemuUser extends QemuIdentity {
  /** qemu.conf's `group`, when set (QEMU's primary group). */
  group?: string;
  /** The user running this program (qemu:///session): access(2) answers for it. */
  self: boolean;
}

/** The QEMU user, or why it is not known (then nothing can be judged). */
export type QemuUserFacts = { user: QemuUser } | { unknown: string };

/** The uncommented `user = "..."` and `group = "..."` of a qemu.conf (pure). */
export function parseQemuConf(text: string): { user?: string; group?: string } {
  const out: { user?: string; group?: string } = {};
  for (const line of text.split("\n")) {
    const m = /^\s*(user|group)\s*=\s*"([^"]*)"\s*(#.*)?$/.exec(line);
    if (m?.[1] && m[2]) out[m[1] as "user" | "group"] = m[2];
  }
  return out;
}

/** The output of `id` for a user, pure: uid, name and every group. */
export function parseId(text: string): { uid: number; name: string; gids: number[] } | undefined {
  const m = /^uid=(\d+)\(([^)]*)\)\s+gid=(\d+)/.exec(text.trim());
  if (!m) return undefined;
  const groups = /groups=(\S+)/.exec(text)?.[1] ?? "";
  const gids = [...groups.matchAll(/(\d+)(?:\([^)]*\))?/g)].map((g) => Number(g[1]));
  return { uid: Number(m[1]), name: String(m[2]), gids: [...new Set([Number(m[3]), ...gids])] };
}

function sh(cmd: string, args: string[]) {
  return spawnSync(cmd, args, {
    encoding: "utf8",
    timeout: 10_000,
    env: { ...process.env, LC_ALL: "C" },
  });
}

/** A user by name or libvirt's `+N` uid form, through NSS (`id`); undefined when there is none. */
function lookUpUser(spec: string) {
  const r = sh("id", ["--", spec.replace(/^\+/, "")]);
  return r.status === 0 ? parseId(r.stdout) : undefined;
}

function lookUpGroup(spec: string): number | undefined {
  if (/^\+\d+$/.test(spec)) return Number(spec.slice(1));
  const r = sh("getent", ["group", spec]);
  const gid = r.status === 0 ? r.stdout.split(":")[2] : undefined;
  return gid && /^\d+$/.test(gid) ? Number(gid) : undefined;
}

/**
 * libvirtd's QEMU user for qemu:///system: qemu.conf's `user` (and `group`),
 * else Debian's libvirt-qemu, else qemu (Fedora).
 */
export function systemQemuUser(conf = QEMU_CONF): QemuUserFacts {
  let text = "";
  try {
    text = fs.readFileSync(conf, "utf8");
  } catch {
    // Missing (no libvirt), or Debian's 0600 root file read by a non-root caller: the packaged default.
  }
  const set = parseQemuConf(text);
  for (const name of set.user ? [set.user] : ["libvirt-qemu", "qemu"]) {
    const id = lookUpUser(name);
    if (!id) continue;
    let gids = id.gids;
    if (set.group) {
      const gid = lookUpGroup(set.group);
      if (gid === undefined) {
        return {
          unknown: `${conf} sets group = "${set.group}", which does not exist on this host`,
        };
      }
      // libvirt sets this group plus the user's other groups (id also lists its passwd group: close enough).
      gids = [gid, ...gids.filter((g) => g !== gid)];
    }
    const user: QemuUser = {
      name: id.name,
      uid: id.uid,
      gids,
      self: false,
      ...(set.group ? { group: set.group } : {}),
    };
    return { user };
  }
  return {
    unknown: set.user
      ? `${conf} sets user = "${set.user}", which does not exist on this host`
      : "neither user libvirt-qemu nor qemu exists on this host (libvirt-daemon-system is not installed)",
  };
}

/** qemu:///session runs QEMU as the user running this program. */
export function sessionQemuUser(): QemuUserFacts {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid === undefined || gid === undefined) return { unknown: "this platform has no user ids" };
  const gids = [...new Set([gid, ...(process.getgroups?.() ?? [])])];
  let name = String(uid);
  try {
    name = os.userInfo().username;
  } catch {
    // a uid without a passwd entry (containers)
  }
  return { user: { name, uid, gids, self: true } };
}

/** The QEMU user facts that apply to `uri` (session or system libvirtd). */
export function qemuUserFor(
  uri: string,
  facts: { system: QemuUserFacts; session: QemuUserFacts },
): QemuUserFacts {
  return /^qemu:\/\/\/session(\?|$)/.test(uri) ? facts.session : facts.system;
}

function lstat(p: string): PathInfo | undefined {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return undefined;
  const kind = st.isSymbolicLink() ? "symlink" : st.isDirectory() ? "dir" : "other";
  return {
    kind,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    ...(kind === "symlink" ? { link: fs.readlinkSync(p) } : {}),
  };
}

/**
 * Whether `user` can search existing `dir`, asked of the kernel (which knows
 * ACLs): access(2) for ourselves, runuser as root; otherwise only a dir
 * without an ACL (no `+` in `ls -ld`) is settled by its mode bits.
 */
export function confirmSearch(dir: string, user: QemuUser): boolean | undefined {
  if (user.self && process.getuid?.() !== 0) {
    try {
      fs.accessSync(dir, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }
  if (process.getuid?.() === 0) {
    const g = user.group ? ["-g", user.group] : [];
    const r = sh("runuser", ["-u", user.name, ...g, "--", "test", "-x", dir]);
    if (r.status === 0) return true;
    // test says no silently; runuser's own failures (no such user, ...) say why: not an answer.
    if (r.status === 1 && r.stderr.trim() === "") return false;
    return undefined;
  }
  const ls = sh("ls", ["-ld", "--", dir]);
  if (ls.status !== 0) return undefined;
  return /^\S{10}\+/.test(ls.stdout) ? undefined : false;
}

/** The umask of this process (Linux /proc), which the providers inherit from pulumi. */
export function currentUmask(status = "/proc/self/status"): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync(status, "utf8"));
    if (m?.[1]) return Number.parseInt(m[1], 8);
  } catch {
    // not Linux
  }
  return 0o022;
}

function names(file: string): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      const [name, , id] = line.split(":");
      if (name && id && /^\d+$/.test(id) && !out.has(Number(id))) out.set(Number(id), name);
    }
  } catch {
    // numbers only
  }
  return out;
}

/**
 * One refusal per target QEMU cannot reach, and a note per directory that
 * could not be judged. Missing directories are judged as fame creates them:
 * mode 0755 minus the umask, owned by this process.
 */
export function reachRefusals(
  targets: readonly ReachTarget[],
  user: QemuUser,
  umask = currentUmask(),
): { refusals: string[]; unjudged: string[] } {
  const refusals: string[] = [];
  const unjudged: string[] = [];
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const users = names("/etc/passwd");
  const groups = names("/etc/group");
  for (const t of targets) {
    let result: ReturnType<typeof reachBlock>;
    try {
      result = reachBlock(t.path, user, lstat, {
        searchTarget: t.searchTarget,
        created: (dir) => ({ mode: t.chmodded.includes(dir) ? 0o755 : 0o755 & ~umask, uid, gid }),
        confirm: (dir) => confirmSearch(dir, user),
      });
    } catch (e) {
      unjudged.push(
        `cannot check that ${user.name} can reach fame:${t.key} = ${JSON.stringify(t.value)}: ${(e as Error).message}`,
      );
      continue;
    }
    for (const u of result.unjudged) {
      const why =
        u.why === "symlinks"
          ? "too many symbolic links"
          : process.getuid?.() === 0
            ? `its mode bits say no, and runuser -u ${user.name} could not tell`
            : "its mode bits say no, but it has an ACL, which only root can check for another user (run pulumi as root to have it checked)";
      unjudged.push(
        `cannot tell whether ${user.name} (QEMU's user) can reach ${u.path} on the way to fame:${t.key} = ${JSON.stringify(t.value)}: ${why}`,
      );
    }
    const b = result.blocked;
    if (b) {
      const owner = `${users.get(b.info.uid) ?? b.info.uid}:${groups.get(b.info.gid) ?? b.info.gid}`;
      refusals.push(reachMessage(t.key, t.value, user, b, owner, t.example));
    }
  }
  return { refusals, unjudged };
}
