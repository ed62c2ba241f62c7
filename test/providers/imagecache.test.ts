/**
 * The golden image cache's crash safety, with a stand-in builder (the real
 * mmdebstrap build runs in test/engine/lifecycle.test.ts): builds happen
 * aside and appear atomically, a failed or killed build leaves nothing that
 * looks usable, stale locks and leftovers of dead builders are cleared, and
 * concurrent builds of one key are serialised.
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { cachedImage, ensureImage, IMAGE_FILES } from "../../lib/host/imagebuild";
import { type ImageInputs, imageKey, imageRecipe } from "../../lib/image";
import { scratchDir } from "../helpers/sandbox";

const inputs: ImageInputs = {
  mirror: "http://deb.debian.org/debian",
  l4fame: "",
  kernel: "k",
  sizeGbytes: 2,
  helloFabric: "",
  famScript: "",
};
const recipe = imageRecipe(inputs);

/** A builder that writes the image files, optionally failing halfway. */
function fakeBuild(opts: { failAfter?: number; delayMs?: number; calls?: { n: number } } = {}) {
  return async (work: string) => {
    if (opts.calls) opts.calls.n++;
    for (const [i, f] of IMAGE_FILES.entries()) {
      if (opts.failAfter === i) throw new Error("builder died halfway");
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      fs.writeFileSync(path.join(work, f), f === "packages.txt" ? "systemd 252\nsudo 1.9\n" : f);
    }
  };
}

describe("golden image cache (crash safety)", function () {
  this.timeout(60_000);
  let cache: string;
  const log = () => undefined;
  beforeEach(() => {
    cache = scratchDir("imgcache");
  });
  afterEach(() => fs.rmSync(cache, { recursive: true, force: true }));

  it("builds once, then reuses the same key without building", async () => {
    const key = imageKey(recipe, "h1");
    const calls = { n: 0 };
    const first = await ensureImage({
      cacheDir: cache,
      key,
      recipe,
      hook: "h1",
      log,
      build: fakeBuild({ calls }),
    });
    assert.equal(first.reused, false);
    assert.deepEqual(first.packages, ["systemd 252", "sudo 1.9"]);
    const second = await ensureImage({
      cacheDir: cache,
      key,
      recipe,
      hook: "h1",
      log,
      build: fakeBuild({ calls }),
    });
    assert.equal(second.reused, true);
    assert.equal(second.qcow2, path.join(cache, key, "golden.qcow2"));
    assert.equal(calls.n, 1);
  });

  it("a failed build leaves no image, no work directory and no lock; the next run builds", async () => {
    const key = imageKey(recipe, "h2");
    await assert.rejects(
      ensureImage({
        cacheDir: cache,
        key,
        recipe,
        hook: "h2",
        log,
        build: fakeBuild({ failAfter: 2 }),
      }),
      /died halfway/,
    );
    assert.deepEqual(fs.readdirSync(cache), []);
    assert.equal(await cachedImage(cache, key), undefined);
    const ok = await ensureImage({
      cacheDir: cache,
      key,
      recipe,
      hook: "h2",
      log,
      build: fakeBuild(),
    });
    assert.equal(ok.reused, false);
  });

  it("a half-built image is never used: an incomplete directory is not a cache hit", async () => {
    const key = imageKey(recipe, "h3");
    fs.mkdirSync(path.join(cache, key));
    fs.writeFileSync(path.join(cache, key, "golden.qcow2"), "partial");
    assert.equal(await cachedImage(cache, key), undefined);
    const built = await ensureImage({
      cacheDir: cache,
      key,
      recipe,
      hook: "h3",
      log,
      build: fakeBuild(),
    });
    assert.equal(built.reused, false);
    assert.equal(fs.readFileSync(built.qcow2, "utf8"), "golden.qcow2");
  });

  it("recovers from a builder killed midway: its lock and work directory are cleared", async () => {
    const key = imageKey(recipe, "h4");
    // A real process holds the lock and a work dir, then is killed with SIGKILL.
    const child = spawn("sleep", ["60"]);
    const pid = child.pid as number;
    fs.writeFileSync(path.join(cache, `.${key}.lock`), String(pid));
    fs.mkdirSync(path.join(cache, `.build-${key}-${pid}`));
    fs.writeFileSync(path.join(cache, `.build-${key}-${pid}`, "golden.qcow2"), "half");
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    const built = await ensureImage({
      cacheDir: cache,
      key,
      recipe,
      hook: "h4",
      log,
      build: fakeBuild(),
    });
    assert.equal(built.reused, false);
    assert.deepEqual(fs.readdirSync(cache).sort(), [key]);
  });

  it("unmounts what a killed mmdebstrap left mounted in its root before removing it", async () => {
    const key = imageKey(recipe, "h6");
    const child = spawn("sleep", ["60"]);
    const pid = child.pid as number;
    const work = path.join(cache, `.build-${key}-${pid}`);
    const keep = path.join(cache, "host-data");
    fs.mkdirSync(keep);
    fs.writeFileSync(path.join(keep, "precious"), "must survive");
    // Like mmdebstrap's /proc or /dev: a mount inside the build root (a bind mount of host data here).
    fs.mkdirSync(path.join(work, "root", "proc"), { recursive: true });
    execFileSync("mount", ["--bind", keep, path.join(work, "root", "proc")]);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    try {
      await ensureImage({ cacheDir: cache, key, recipe, hook: "h6", log, build: fakeBuild() });
    } finally {
      spawnSync("umount", ["--lazy", path.join(work, "root", "proc")]);
    }
    assert.equal(fs.readFileSync(path.join(keep, "precious"), "utf8"), "must survive");
    assert.ok(!fs.existsSync(work));
    assert.ok(!fs.readFileSync("/proc/self/mounts", "utf8").includes(work));
  });

  it("serialises concurrent builds of one key: the second waits and reuses the first", async () => {
    const key = imageKey(recipe, "h5");
    const calls = { n: 0 };
    const [a, b] = await Promise.all([
      ensureImage({
        cacheDir: cache,
        key,
        recipe,
        hook: "h5",
        log,
        build: fakeBuild({ calls, delayMs: 300 }),
      }),
      new Promise((r) => setTimeout(r, 100)).then(() =>
        ensureImage({
          cacheDir: cache,
          key,
          recipe,
          hook: "h5",
          log,
          build: fakeBuild({ calls, delayMs: 300 }),
        }),
      ),
    ]);
    assert.equal(calls.n, 1);
    assert.equal(a.reused, false);
    assert.equal(b.reused, true);
  });
});
