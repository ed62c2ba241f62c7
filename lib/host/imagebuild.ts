/**
 * Builds golden images into a content-addressed cache: <cache>/<key>/ holds
 * golden.qcow2, vmlinuz, initrd.img, packages.txt and recipe.json. A build
 * happens aside (<cache>/.build-<key>-<pid>) and is renamed into place only
 * when complete, so a half-built image is never used; a lock file serialises
 * concurrent builds of the same key; a dead builder's leftovers are removed.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { ImageRecipe } from "../image";
import { aptProxyConf, mmdebstrapCommand, ROOT_LABEL } from "../image";
import { GiB } from "../units";
import { pidAlive, run } from "./exec";
import { makeExt4FromDir } from "./ext4";
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

/** Takes the per-key build lock, waiting for a live builder; stale locks are broken. */
async function lock(lockFile: string, log: (m: string) => void): Promise<void> {
  const deadline = Date.now() + 3 * 3_600_000;
  for (;;) {
    try {
      const h = await fs.open(lockFile, "wx");
      await h.writeFile(String(process.pid));
      await h.close();
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const holder = Number((await fs.readFile(lockFile, "utf8").catch(() => "")).trim());
    if (!Number.isInteger(holder) || holder <= 0 || !pidAlive(holder)) {
      log(`removing stale build lock ${lockFile} (builder ${holder || "?"} is gone)`);
      await fs.rm(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for image build lock ${lockFile} held by pid ${holder}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
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
  await lock(lockFile, log);
  const work = path.join(cacheDir, `.build-${key}-${process.pid}`);
  try {
    const raced = await cachedImage(cacheDir, key);
    if (raced) return raced;
    await sweep(cacheDir, key, log);
    await removeBuildDir(work);
    const started = Date.now();
    await fs.mkdir(work, { recursive: true, mode: 0o755 });
    await (args.build ?? buildInto)(work, recipe, args.hook, log, args.proxy ?? "");
    const buildSeconds = Math.round((Date.now() - started) / 100) / 10;
    await fs.writeFile(
      path.join(work, "build.json"),
      JSON.stringify({ key, buildSeconds, builtAt: new Date().toISOString() }),
    );
    const final = path.join(cacheDir, key);
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
    await fs.rm(lockFile, { force: true });
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
