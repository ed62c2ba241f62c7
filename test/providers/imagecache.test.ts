/**
 * The golden image cache's crash safety, with a stand-in builder (the real
 * mmdebstrap build runs in test/engine/lifecycle.test.ts): builds happen
 * aside and appear atomically, a failed or killed build leaves nothing that
 * looks usable, stale locks and leftovers of dead builders are cleared,
 * concurrent builds of one key are serialised, and the lock of a live builder
 * that makes no progress is taken over (one that works is waited for).
 */
import * as assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { cachedImage, ensureImage, IMAGE_FILES, lockStallMs } from "../../lib/host/imagebuild";
import { cmdline, descendants, running } from "../../lib/host/proc";
import { type ImageInputs, imageKey, imageRecipe } from "../../lib/image";
import { ROOT, scratchDir } from "../helpers/sandbox";

const inputs: ImageInputs = {
  mirror: "http://deb.debian.org/debian",
  l4fame: "",
  kernel: "k",
  user: "u",
  hostbase: "n",
  octets123: "10.0.0",
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

/** Stall bound of the lock tests: a few heartbeats, kept well above a loaded machine's hiccups. */
const STALL_S = 3;

interface Builder {
  child: ChildProcess;
  pid: number;
  /** Resolves once it holds the lock and builds. */
  building: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** test/helpers/imageBuilder.ts in a process (and process group) of its own, as another run's provider. */
function startBuilder(cache: string, key: string, mode: string, seconds = 6): Builder {
  const child = spawn(
    process.execPath,
    [
      "-r",
      require.resolve("ts-node/register/transpile-only"),
      path.join(ROOT, "test", "helpers", "imageBuilder.ts"),
      cache,
      key,
      mode,
      String(seconds),
    ],
    {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, FAME_IMAGE_LOCK_STALL_S: String(STALL_S) },
    },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stderr: string;
  }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stderr })));
  const building = new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("building")) resolve();
    });
    exited.then((r) => reject(new Error(`builder ended before building: ${r.stderr}`)));
  });
  return { child, pid: child.pid as number, building, exited };
}

/** Whatever a failed test left of a builder (it leads its own process group). */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    /* gone */
  }
}

/** ensureImage with FAME_IMAGE_LOCK_STALL_S = STALL_S, as the builders have it. */
async function withStall<T>(fn: () => Promise<T>): Promise<T> {
  const before = process.env.FAME_IMAGE_LOCK_STALL_S;
  process.env.FAME_IMAGE_LOCK_STALL_S = String(STALL_S);
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.FAME_IMAGE_LOCK_STALL_S;
    else process.env.FAME_IMAGE_LOCK_STALL_S = before;
  }
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

  it("takes over the lock of a live builder that makes no progress, naming it while it waits", async () => {
    const key = imageKey(recipe, "h7");
    const holder = startBuilder(cache, key, "stuck");
    try {
      await holder.building;
      const sleeps = () => descendants(holder.pid).filter((p) => cmdline(p).startsWith("sleep"));
      for (let i = 0; i < 50 && sleeps().length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      const stuck = sleeps();
      assert.equal(stuck.length, 1, "the stuck builder runs its sleep");
      const seen: string[] = [];
      const started = Date.now();
      const built = await withStall(() =>
        ensureImage({
          cacheDir: cache,
          key,
          recipe,
          hook: "h7",
          log: (m) => seen.push(m),
          build: fakeBuild(),
        }),
      );
      const waited = (Date.now() - started) / 1000;
      assert.equal(built.reused, false, "the waiter built the image itself");
      assert.ok(waited < STALL_S + 10, `taken over after ${waited} s`);
      const waiting = seen.find((m) => m.startsWith("waiting for the image build lock"));
      assert.ok(waiting, `a waiting message: ${seen.join(" | ")}`);
      assert.match(waiting, new RegExp(`held by pid ${holder.pid} \\(.*imageBuilder\\.ts`));
      assert.match(waiting, / since \d{4}-\d\d-\d\dT/);
      assert.match(waiting, /stopped automatically when it makes no progress for 3 s, or kill it/);
      assert.ok(
        seen.some((m) =>
          new RegExp(`pid ${holder.pid} .* made no progress .*taking the lock over`).test(m),
        ),
        seen.join(" | "),
      );
      assert.equal((await holder.exited).signal, "SIGKILL");
      for (let i = 0; i < 30 && running(stuck[0] as number); i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.ok(!running(stuck[0] as number), "the stuck builder's command is gone too");
      assert.deepEqual(fs.readdirSync(cache).sort(), [key]);
    } finally {
      killGroup(holder.pid);
    }
  });

  for (const mode of ["talking", "quiet"]) {
    it(`waits for a live builder that makes progress (${mode}), however long, and reuses its image`, async () => {
      const key = imageKey(recipe, `h8-${mode}`);
      // Twice the stall bound: only the heartbeat keeps the lock.
      const holder = startBuilder(cache, key, mode, 2 * STALL_S + 1);
      try {
        await holder.building;
        const seen: string[] = [];
        const got = await withStall(() =>
          ensureImage({
            cacheDir: cache,
            key,
            recipe,
            hook: "h8",
            log: (m) => seen.push(m),
            build: fakeBuild(),
          }),
        );
        assert.equal(got.reused, true, "the holder's build is reused");
        const exit = await holder.exited;
        assert.equal(exit.code, 0, exit.stderr);
        assert.ok(
          seen.some(
            (m) => m.includes(`image build lock`) && m.includes(`held by pid ${holder.pid}`),
          ),
          `a waiting message naming the holder: ${seen.join(" | ")}`,
        );
        assert.ok(!seen.some((m) => /taking the lock over/.test(m)), seen.join(" | "));
      } finally {
        killGroup(holder.pid);
      }
    });
  }

  it("FAME_IMAGE_LOCK_STALL_S sets the stall bound in seconds; anything else is refused by name", () => {
    assert.equal(lockStallMs({}), 300_000);
    assert.equal(lockStallMs({ FAME_IMAGE_LOCK_STALL_S: "2.5" }), 2500);
    assert.throws(
      () => lockStallMs({ FAME_IMAGE_LOCK_STALL_S: "soon" }),
      /FAME_IMAGE_LOCK_STALL_S = "soon": must be a positive number of seconds/,
    );
  });
});
