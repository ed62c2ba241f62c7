/**
 * Builds golden images into a content-addressed cache: <cache>/<key>/ holds
 * golden.qcow2, vmlinuz, initrd.img, packages.txt and recipe.json. A build
 * happens aside (<cache>/.build-<key>-<pid>) and is renamed into place only
 * when complete, so a half-built image is never used, and never over a
 * complete one; a lock file serialises concurrent builds of the same key
 * (a stuck holder's is taken over, see `lock`); a dead builder's leftovers
 * are removed.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { ImageRecipe } from "../image";
import { aptProxyConf, mmdebstrapCommand, ROOT_LABEL } from "../image";
import { GiB } from "../units";
import { pidAlive, run } from "./exec";
import { makeExt4FromDir } from "./ext4";
import { cmdline, processTable, procInfo, signalAll, signalTree, treeActivity } from "./proc";
import { convertToQcow2 } from "./qemuimg";

export interface CachedImage {
  key: string;
  dir: string;
  qcow2: string;
  kernel: string;
  initrd: string;
  packages: string[];
  /** Seconds the build took (0 when the cache already had it). */
  buildSeconds: number;
  reused: boolean;
}

export const IMAGE_FILES = ["golden.qcow2", "vmlinuz", "initrd.img", "packages.txt", "recipe.json"];

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** The cached image for `key`, or undefined when it is missing or incomplete. */
export async function cachedImage(cacheDir: string, key: string): Promise<CachedImage | undefined> {
  const dir = path.join(cacheDir, key);
  for (const f of IMAGE_FILES) if (!(await exists(path.join(dir, f)))) return undefined;
  const packages = (await fs.readFile(path.join(dir, "packages.txt"), "utf8"))
    .split("\n")
    .filter(Boolean);
  return {
    key,
    dir,
    qcow2: path.join(dir, "golden.qcow2"),
    kernel: path.join(dir, "vmlinuz"),
    initrd: path.join(dir, "initrd.img"),
    packages,
    buildSeconds: 0,
    reused: true,
  };
}

/** What a build lock holds (JSON; fame before the heartbeat wrote only the pid). */
interface LockInfo {
  pid: number;
  /** The holder's start time (lib/host/proc): tells it from a later process with its pid. */
  start?: number;
  /** When it took the lock (ISO). */
  since?: string;
}

/** How long a build may show no progress before a waiter takes its lock over (FAME_IMAGE_LOCK_STALL_S). */
export function lockStallMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FAME_IMAGE_LOCK_STALL_S;
  if (raw === undefined || raw === "") return 300_000;
  const s = Number(raw);
  if (!Number.isFinite(s) || s <= 0) {
    throw new Error(
      `FAME_IMAGE_LOCK_STALL_S = ${JSON.stringify(raw)}: must be a positive number of seconds`,
    );
  }
  return s * 1000;
}

/** How often a waiter says what it waits for. */
const LOCK_MESSAGE_MS = 30_000;

const MINUTE_MS = 60 * 1000;

function duration(ms: number): string {
  return ms >= MINUTE_MS && ms % MINUTE_MS === 0 ? `${ms / MINUTE_MS} min` : `${ms / 1000} s`;
}

function parseLock(text: string): LockInfo {
  try {
    const j = JSON.parse(text) as Partial<LockInfo>;
    if (typeof j === "object" && j !== null && typeof j.pid === "number") {
      return {
        pid: j.pid,
        ...(typeof j.start === "number" ? { start: j.start } : {}),
        ...(typeof j.since === "string" ? { since: j.since } : {}),
      };
    }
  } catch {
    /* an older fame's plain pid */
  }
  return { pid: Number(text.trim()) };
}

/** Whether the lock's holder has ended (a reused pid is another process). */
function holderGone(info: LockInfo): boolean {
  if (!Number.isSafeInteger(info.pid) || info.pid <= 0 || !pidAlive(info.pid)) return true;
  // /proc may hide other users' processes (hidepid): an unreadable one counts as alive.
  const now = procInfo(info.pid);
  if (now?.state === "Z") return true;
  return info.start !== undefined && now !== undefined && now.start !== info.start;
}

/** Creates `lockFile` holding `text`, atomically: a reader never sees it empty. */
async function tryCreate(lockFile: string, text: string): Promise<boolean> {
  const tmp = `${lockFile}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await fs.writeFile(tmp, text, { mode: 0o644 });
  try {
    await fs.link(tmp, lockFile);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    return false;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** Removes `lockFile` if it still holds `text` (not a lock taken since). */
async function removeIf(lockFile: string, text: string): Promise<void> {
  if ((await fs.readFile(lockFile, "utf8").catch(() => undefined)) === text)
    await fs.rm(lockFile, { force: true });
}

/**
 * Stops a stuck holder: it, the commands it runs, and its plugin process
 * group (as lib/host/exec watchEngine defines it). Resolves whether it ended.
 */
async function stopHolder(info: LockInfo): Promise<boolean> {
  const group = procInfo(info.pid)?.pgid;
  const leader = group === undefined ? "" : cmdline(group);
  const ownGroup =
    group !== undefined &&
    (group === info.pid ||
      (procInfo(info.pid)?.ppid === group && /pulumi-resource-pulumi-nodejs/.test(leader)));
  const members = ownGroup ? processTable().filter((p) => p.pgid === group) : [];
  signalTree(info.pid, "SIGKILL");
  signalAll(
    members.map((p) => p.pid),
    "SIGKILL",
  );
  for (let i = 0; i < 50 && !holderGone(info); i++) await new Promise((r) => setTimeout(r, 100));
  return holderGone(info);
}

interface HeldLock {
  /** Whether the lock file still is this holder's (a waiter may have taken it over). */
  owned(): Promise<boolean>;
  /** Marks progress (a log line of the build). */
  progress(): void;
  release(): Promise<void>;
}

/**
 * Takes the per-key build lock. A lock whose holder has ended is broken. A
 * live holder is waited for, saying every LOCK_MESSAGE_MS who it is; while
 * it holds the lock it touches the file whenever its build makes progress
 * (a log line, or its commands use CPU, read, write, start or end). A lock
 * untouched for `stallMs` is taken over: its holder is stuck, whether its
 * engine was killed (an orphan of a killed `pulumi up`, or one from a fame
 * without the engine watchdog) or it waits on something that never comes.
 * Safety: only a holder that recorded its start time is stopped, and only
 * when the live process with that pid has that start time, so the process
 * killed is the very one that took the lock, never an unrelated one that
 * reused its pid; its commands are found under it and in its own plugin
 * process group. A holder of an older fame (pid only) is never stopped, and
 * neither is this process (another build in it is waited for). The stopped
 * holder writes nothing more: it is dead before the lock is taken, and a
 * holder installs its build only while the lock file is still its own.
 */
async function lock(
  lockFile: string,
  log: (m: string) => void,
  stallMs: number,
): Promise<HeldLock> {
  const text = JSON.stringify({
    pid: process.pid,
    start: procInfo(process.pid)?.start,
    since: new Date().toISOString(),
  });
  const deadline = Date.now() + 3 * 3_600_000;
  let told = 0;
  for (;;) {
    if (await tryCreate(lockFile, text)) break;
    const held = await fs.readFile(lockFile, "utf8").catch(() => undefined);
    const stat = await fs.stat(lockFile).catch(() => undefined);
    if (held === undefined || stat === undefined) continue; // released meanwhile
    const info = parseLock(held);
    if (holderGone(info)) {
      log(`removing stale build lock ${lockFile} (builder ${info.pid || "?"} is gone)`);
      await removeIf(lockFile, held);
      continue;
    }
    const idle = Date.now() - stat.mtimeMs;
    const who = `pid ${info.pid} (${cmdline(info.pid).slice(0, 160)})`;
    if (idle > stallMs && info.start !== undefined && info.pid !== process.pid) {
      log(
        `image build lock ${lockFile}: its holder, ${who}, made no progress for ${Math.round(idle / 1000)} s: stopping it and taking the lock over`,
      );
      if (await stopHolder(info)) {
        await removeIf(lockFile, held);
        continue;
      }
      log(`image build lock ${lockFile}: cannot stop pid ${info.pid}; kill it`);
    }
    if (Date.now() - told >= LOCK_MESSAGE_MS) {
      told = Date.now();
      const since = info.since ?? new Date(stat.mtimeMs).toISOString();
      const auto =
        info.start !== undefined
          ? `it is stopped automatically when it makes no progress for ${duration(stallMs)}, or kill it`
          : "kill it";
      log(
        `waiting for the image build lock ${lockFile}: held by ${who} since ${since}, last progress ${Math.round(idle / 1000)} s ago; if that process is a leftover of a killed \`pulumi up\`, ${auto}`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for image build lock ${lockFile} held by ${who}`);
    await new Promise((r) => setTimeout(r, Math.min(2000, stallMs / 4)));
  }
  const owned = async () => (await fs.readFile(lockFile, "utf8").catch(() => "")) === text;
  let progressed = false;
  let activity = treeActivity(process.pid);
  const beat = setInterval(
    async () => {
      const now = treeActivity(process.pid);
      if (!progressed && now === activity) return;
      progressed = false;
      activity = now;
      if (await owned()) await fs.utimes(lockFile, new Date(), new Date()).catch(() => undefined);
    },
    Math.min(5000, stallMs / 4),
  );
  beat.unref();
  return {
    owned,
    progress: () => {
      progressed = true;
    },
    release: async () => {
      clearInterval(beat);
      await removeIf(lockFile, text);
    },
  };
}

/**
 * Decodes one field of /proc/self/mounts. The kernel writes a space, tab,
 * newline or backslash in a path as an octal escape (\040, \011, \012,
 * \134); every \NNN is decoded as the byte it stands for, and the bytes are
 * read as UTF-8 (`field` holds one character per byte: latin1).
 */
export function decodeMountField(field: string): string {
  const bytes = field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8) & 0xff),
  );
  return Buffer.from(bytes, "latin1").toString("utf8");
}

/** The mount points /proc/self/mounts lists (its raw bytes), decoded. */
export function mountPoints(mounts: Buffer): string[] {
  return mounts
    .toString("latin1")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => decodeMountField(line.split(" ")[1] ?? ""));
}

/** Mount points at or below `dir` (also by its real path), deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  // The kernel lists real paths: a cache reached through a symlink is found by its target.
  // Only the parent is resolved: `dir` itself, were it a symlink, is removed as a link.
  const parent = await fs.realpath(path.dirname(dir)).catch(() => path.dirname(dir));
  const real = path.join(parent, path.basename(dir));
  return mountPoints(await fs.readFile("/proc/self/mounts"))
    .filter((m) => [dir, real].some((d) => m === d || m.startsWith(`${d}/`)))
    .sort()
    .reverse();
}

/**
 * Removes a build directory. A killed mmdebstrap leaves /proc, /sys and /dev
 * mounted inside its root: those are unmounted first, and a mount still there
 * stops the removal, so it never reaches into the host's file systems.
 */
export async function removeBuildDir(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) await run("umount", ["--lazy", m]);
  const left = await mountsUnder(dir);
  if (left.length > 0) {
    throw new Error(
      `not removing ${dir}: ${left.join(", ")} is still mounted there (unmount it, then retry)`,
    );
  }
  await fs.rm(dir, { recursive: true, force: true });
}

/** Removes build directories left by builders that died. */
async function sweep(cacheDir: string, key: string, log: (m: string) => void): Promise<void> {
  for (const name of await fs.readdir(cacheDir)) {
    const m = /^\.build-(.+)-(\d+)$/.exec(name);
    if (m && m[1] === key && !pidAlive(Number(m[2]))) {
      log(`removing leftovers of an interrupted build: ${name}`);
      await removeBuildDir(path.join(cacheDir, name));
    }
  }
}

/** Returns the cached image for `key`, building it first when needed. */
export async function ensureImage(args: {
  cacheDir: string;
  key: string;
  recipe: ImageRecipe;
  /** Text of the customize hook (templates/image/customize.sh). */
  hook: string;
  /** Proxy the build reaches the mirror through ("" = none); not part of the image. */
  proxy?: string;
  log: (m: string) => void;
  /** Fills a work directory with IMAGE_FILES; replaced only by tests of the cache logic. */
  build?: (
    work: string,
    recipe: ImageRecipe,
    hook: string,
    log: (m: string) => void,
    proxy: string,
  ) => Promise<void>;
}): Promise<CachedImage> {
  const { cacheDir, key, recipe, log } = args;
  const hit = await cachedImage(cacheDir, key);
  if (hit) {
    log(`image ${key}: reusing cached build in ${hit.dir}`);
    return hit;
  }
  await fs.mkdir(cacheDir, { recursive: true, mode: 0o755 });
  const lockFile = path.join(cacheDir, `.${key}.lock`);
  const held = await lock(lockFile, log, lockStallMs());
  const work = path.join(cacheDir, `.build-${key}-${process.pid}`);
  // Every line of the build is progress that keeps its lock from being taken over.
  const buildLog = (m: string) => {
    held.progress();
    log(m);
  };
  try {
    const raced = await cachedImage(cacheDir, key);
    if (raced) return raced;
    await sweep(cacheDir, key, log);
    await removeBuildDir(work);
    const started = Date.now();
    await fs.mkdir(work, { recursive: true, mode: 0o755 });
    await (args.build ?? buildInto)(work, recipe, args.hook, buildLog, args.proxy ?? "");
    const buildSeconds = Math.round((Date.now() - started) / 100) / 10;
    await fs.writeFile(
      path.join(work, "build.json"),
      JSON.stringify({ key, buildSeconds, builtAt: new Date().toISOString() }),
    );
    if (!(await held.owned()))
      throw new Error(
        `image ${key}: the build lock ${lockFile} was taken over; this build is not used`,
      );
    const final = path.join(cacheDir, key);
    // A complete image is never replaced: node disks are overlays on it.
    const other = await cachedImage(cacheDir, key);
    if (other) {
      log(`image ${key}: another build finished first; using it`);
      await removeBuildDir(work);
      return other;
    }
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(work, final);
    await fs.chmod(final, 0o755);
    log(`image ${key}: built in ${buildSeconds} s`);
    const built = await cachedImage(cacheDir, key);
    if (!built) throw new Error(`image ${key} vanished right after it was built`);
    return { ...built, buildSeconds, reused: false };
  } catch (e) {
    await removeBuildDir(work);
    throw e;
  } finally {
    await held.release();
  }
}

async function buildInto(
  work: string,
  recipe: ImageRecipe,
  hook: string,
  log: (m: string) => void,
  proxy: string,
): Promise<void> {
  const root = path.join(work, "root");
  const overlay = path.join(work, "overlay");
  await fs.mkdir(root, { recursive: true, mode: 0o755 });
  for (const f of recipe.files) {
    const target = path.join(overlay, f.path);
    await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    await fs.writeFile(target, f.content, { mode: f.mode });
    await fs.chmod(target, f.mode);
  }
  const hookFile = path.join(work, "customize.sh");
  await fs.writeFile(hookFile, hook, { mode: 0o755 });
  // The proxy may carry credentials: a root-only file, never an argument, gone before the rename.
  const aptProxyFile = proxy ? path.join(work, "apt-proxy.conf") : undefined;
  if (aptProxyFile) {
    await fs.writeFile(aptProxyFile, aptProxyConf(proxy), { mode: 0o600 });
    await fs.chmod(aptProxyFile, 0o600);
  }

  log(`mmdebstrap ${recipe.suite}: ${recipe.packages.length} packages from ${recipe.sources[0]}`);
  // Paths reach the hooks through the environment, never inside a shell string.
  const cmd = mmdebstrapCommand(recipe, `${root}/`, {
    overlayDir: overlay,
    hookFile,
    ...(aptProxyFile ? { aptProxyFile } : {}),
  });
  try {
    await run("mmdebstrap", cmd.args, {
      timeoutMs: 3_600_000,
      env: cmd.env,
      onLine: (l) => log(`mmdebstrap: ${l}`),
    });
  } finally {
    if (aptProxyFile) await fs.rm(aptProxyFile, { force: true });
  }

  const boot = await fs.readdir(path.join(root, "boot"));
  const pick = (prefix: string) =>
    boot
      .filter((f) => f.startsWith(prefix))
      .sort()
      .at(-1);
  const vmlinuz = pick("vmlinuz-");
  const initrd = pick("initrd.img-");
  if (!vmlinuz || !initrd)
    throw new Error(`the image has no kernel or initrd in /boot (found: ${boot.join(", ")})`);
  await fs.copyFile(path.join(root, "boot", vmlinuz), path.join(work, "vmlinuz"));
  await fs.copyFile(path.join(root, "boot", initrd), path.join(work, "initrd.img"));
  await fs.chmod(path.join(work, "vmlinuz"), 0o644);
  await fs.chmod(path.join(work, "initrd.img"), 0o644);

  const packages = await run("dpkg-query", [
    "--admindir",
    path.join(root, "var/lib/dpkg"),
    "-W",
    "-f",
    // dpkg-query's own ${field} syntax, not a JavaScript template.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format
    "${Package} ${Version}\\n",
  ]);
  await fs.writeFile(path.join(work, "packages.txt"), packages);

  log(`mke2fs: ${recipe.sizeGbytes} GiB ext4 from the root file system`);
  const raw = path.join(work, "root.img");
  await makeExt4FromDir(root, raw, recipe.sizeGbytes * GiB, ROOT_LABEL);
  await fs.rm(root, { recursive: true, force: true });
  await fs.rm(overlay, { recursive: true, force: true });
  log("qemu-img: converting to qcow2");
  await convertToQcow2(raw, path.join(work, "golden.qcow2"));
  await fs.rm(raw, { force: true });
  await fs.chmod(path.join(work, "golden.qcow2"), 0o644);
  await fs.writeFile(path.join(work, "recipe.json"), JSON.stringify(recipe, null, 2));
}
