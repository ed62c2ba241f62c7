/**
 * tm-librarian on the host: a local directory as is, or a git URL fetched
 * once at its pinned commit into <cacheDir>/sources/tm-librarian-<commit>
 * (fetched aside and renamed into place, verified by `git rev-parse`).
 * Synchronous: the program needs the files to compute the image recipe.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { SourceFile, TmLibrarianSource } from "../lfs";

/** Files fame runs from a tm-librarian tree (host: book_register, librarian; nodes: lfs_fuse). */
export const REQUIRED = [
  "src/book_register.py",
  "src/librarian.py",
  "src/lfs_fuse.py",
  "src/lfs_shadow.py",
];

/** Problems with a tm-librarian directory, as messages (empty: usable). */
export function checkTmLibrarianDir(dir: string): string[] {
  if (!fs.existsSync(dir)) return [`${dir} does not exist`];
  const missing = REQUIRED.filter((f) => !fs.existsSync(path.join(dir, f)));
  return missing.length > 0
    ? [`${dir} is not a tm-librarian tree: ${missing.join(", ")} missing`]
    : [];
}

function git(args: string[], cwd?: string): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 300_000,
    env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
  }).trim();
}

/** A local directory holding the source (fetching a git source when not cached yet). */
export function tmLibrarianDir(src: TmLibrarianSource, cacheDir: string): string {
  if (src.kind === "dir") {
    const problems = checkTmLibrarianDir(src.dir);
    if (problems.length > 0) throw new Error(`fame:librarianSource: ${problems.join("; ")}`);
    return src.dir;
  }
  const dest = path.join(cacheDir, "sources", `tm-librarian-${src.commit}`);
  if (fs.existsSync(path.join(dest, ".fame-complete"))) return dest;
  fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
  const work = `${dest}.fetch-${process.pid}`;
  fs.rmSync(work, { recursive: true, force: true });
  try {
    git(["init", "-q", work]);
    try {
      git(["fetch", "-q", "--depth", "1", src.url, src.commit], work);
    } catch (e) {
      throw new Error(
        `fame:librarianSource: cannot fetch commit ${src.commit} from ${src.url}: ${(e as { stderr?: string }).stderr ?? e}`,
      );
    }
    git(["-c", "advice.detachedHead=false", "checkout", "-q", "--detach", "FETCH_HEAD"], work);
    const head = git(["rev-parse", "HEAD"], work);
    if (head !== src.commit)
      throw new Error(`fame:librarianSource: fetched ${head}, expected ${src.commit}`);
    fs.rmSync(path.join(work, ".git"), { recursive: true, force: true });
    const problems = checkTmLibrarianDir(work);
    if (problems.length > 0) throw new Error(`fame:librarianSource: ${problems.join("; ")}`);
    fs.writeFileSync(path.join(work, ".fame-complete"), `${src.url} ${src.commit}\n`);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(work, dest);
    return dest;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The files the nodes need from a tm-librarian tree: src/ and the license, sorted. */
export function tmLibrarianFiles(dir: string): SourceFile[] {
  const out: SourceFile[] = [];
  const srcDir = path.join(dir, "src");
  for (const name of fs.readdirSync(srcDir).sort()) {
    const full = path.join(srcDir, name);
    const st = fs.statSync(full);
    if (!st.isFile() || name.endsWith(".pyc")) continue;
    out.push({
      rel: `src/${name}`,
      content: fs.readFileSync(full, "utf8"),
      executable: (st.mode & 0o111) !== 0,
    });
  }
  const license = path.join(dir, "LICENSE");
  if (fs.existsSync(license))
    out.push({ rel: "LICENSE", content: fs.readFileSync(license, "utf8"), executable: false });
  return out;
}
