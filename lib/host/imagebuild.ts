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
import { mmdebstrapCommand, ROOT_LABEL } from "../image";
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
 * Removes a build directory. A killed mmdebstrap leaves /proc, /sys and /dev
 * mounted inside its root: those are unmounted first, so removal never
 * reaches into the host's file systems.
 */
export async function removeBuildDir(dir: string): Promise<void> {
  const mounts = (await fs.readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .map((l) => (l.split(" ")[1] ?? "").replace(/\\040/g, " "))
    .filter((m) => m.startsWith(`${dir}/`))
    .sort()
    .reverse();
  for (const m of mounts) await run("umount", ["--lazy", m]);
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

  log(`mmdebstrap ${recipe.suite}: ${recipe.packages.length} packages from ${recipe.sources[0]}`);
  // Paths reach the hooks through the environment, never inside a shell string.
  const cmd = mmdebstrapCommand(recipe, `${root}/`, { overlayDir: overlay, hookFile }, proxy);
  await run("mmdebstrap", cmd.args, {
    timeoutMs: 3_600_000,
    env: cmd.env,
    onLine: (l) => log(`mmdebstrap: ${l}`),
  });

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
