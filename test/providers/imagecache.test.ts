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
import {
  type GoldenImageInputs,
  type GoldenImageOutputs,
  goldenImageProvider,
} from "../../providers/goldenImage";
import { ROOT, scratchDir } from "../helpers/sandbox";

const inputs: ImageInputs = {
  suite: "bookworm",
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

  /** A killed builder's work dir under `cacheDir` with host data bind-mounted in its root, like mmdebstrap's /proc. */
  async function killedBuildWithMount(cacheDir: string, hook: string) {
    const key = imageKey(recipe, hook);
    const child = spawn("sleep", ["60"]);
    const pid = child.pid as number;
    const work = path.join(cacheDir, `.build-${key}-${pid}`);
    const keep = path.join(cache, `host-data-${hook}`);
    fs.mkdirSync(keep);
    fs.writeFileSync(path.join(keep, "precious"), "must survive");
    const mnt = path.join(work, "root", "proc");
    fs.mkdirSync(mnt, { recursive: true });
    execFileSync("mount", ["--bind", keep, mnt]);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    return { key, work, keep, realMnt: fs.realpathSync(mnt) };
  }

  /** Builds under `cacheDir` over a killed build's mounts: the host data stays, the work dir goes. */
  async function buildOverKilled(cacheDir: string, hook: string): Promise<void> {
    const b = await killedBuildWithMount(cacheDir, hook);
    try {
      await ensureImage({ cacheDir, key: b.key, recipe, hook, log, build: fakeBuild() });
    } finally {
      spawnSync("umount", ["--lazy", b.realMnt]);
    }
    assert.equal(fs.readFileSync(path.join(b.keep, "precious"), "utf8"), "must survive");
    assert.ok(!fs.existsSync(b.work));
  }

  for (const [what, name] of [
    ["a tab", "my\tcache"],
    ["a backslash", "my\\040cache"],
    ["a newline", "my\ncache"],
  ]) {
    // Missed mounts (the kernel escapes the path) left the directory unremovable (EBUSY) and every later build failing.
    it(`clears a killed build's mounts under an image cache path with ${what} (escaped in /proc/self/mounts)`, async () => {
      const cacheDir = path.join(cache, name);
      fs.mkdirSync(cacheDir);
      await buildOverKilled(cacheDir, `h-${name.length}-${what.length}`);
    });
  }

  it("clears a killed build's mounts under an image cache reached through a symlink (listed by its real path)", async () => {
    const real = path.join(cache, "real-cache");
    fs.mkdirSync(real);
    const link = path.join(cache, "linked-cache");
    fs.symlinkSync(real, link);
    await buildOverKilled(link, "h-link");
  });

  it("gives mmdebstrap the proxy in a root-only file, never on its command line, and removes the file", async () => {
    const proxy = "http://bob:s3cret@proxy.lan:3128";
    const bin = path.join(cache, "bin");
    const out = path.join(cache, "seen");
    fs.mkdirSync(bin);
    fs.mkdirSync(out);
    // A stand-in mmdebstrap: records its arguments and its --aptopt file, then fails as a build can.
    fs.writeFileSync(
      path.join(bin, "mmdebstrap"),
      [
        "#!/bin/sh",
        'printf "%s\\n" "$@" > "$FAME_TEST_OUT/argv"',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion
        'for a in "$@"; do case "$a" in --aptopt=*) f="${a#--aptopt=}"; cp "$f" "$FAME_TEST_OUT/aptopt"; stat -c %a "$f" > "$FAME_TEST_OUT/mode"; echo "$f" > "$FAME_TEST_OUT/file";; esac; done',
        'echo "E: stand-in mmdebstrap stops here" >&2',
        "exit 1",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const saved = { PATH: process.env.PATH, FAME_TEST_OUT: process.env.FAME_TEST_OUT };
    process.env.PATH = `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`;
    process.env.FAME_TEST_OUT = out;
    const key = imageKey(recipe, "h-proxy");
    let error: Error | undefined;
    try {
      await ensureImage({ cacheDir: cache, key, recipe, hook: "h-proxy", proxy, log });
    } catch (e) {
      error = e as Error;
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    assert.match(String(error?.message), /stand-in mmdebstrap stops here/);
    assert.doesNotMatch(String(error?.message), /s3cret/, "the failure names no credential");
    const argv = fs.readFileSync(path.join(out, "argv"), "utf8");
    assert.doesNotMatch(argv, /s3cret|proxy\.lan/);
    assert.equal(
      fs.readFileSync(path.join(out, "aptopt"), "utf8"),
      `Acquire::http::Proxy "${proxy}";\nAcquire::https::Proxy "${proxy}";\n`,
    );
    assert.equal(fs.readFileSync(path.join(out, "mode"), "utf8").trim(), "600");
    assert.ok(!fs.existsSync(fs.readFileSync(path.join(out, "file"), "utf8").trim()));
  });

  it("keeps the proxy out of the golden image's outputs, and drops one an older state recorded", async () => {
    const hook = "h-outs";
    const key = imageKey(recipe, hook);
    await ensureImage({ cacheDir: cache, key, recipe, hook, log, build: fakeBuild() });
    const proxy = "http://bob:s3cret@proxy.lan:3128";
    const inputs: GoldenImageInputs = { cacheDir: cache, key, recipe, hook, l4fame: "", proxy };
    const made = await goldenImageProvider.create(inputs);
    assert.equal(made.id, key);
    const created = { outs: made.outs as GoldenImageOutputs };
    assert.ok(!("proxy" in created.outs));
    assert.doesNotMatch(JSON.stringify(created.outs), /s3cret/);
    assert.equal(created.outs.qcow2, path.join(cache, key, "golden.qcow2"));
    // What fame recorded before: the proxy among the outputs, in plain text.
    const legacy = { ...created.outs, proxy } as GoldenImageOutputs;
    const diff = goldenImageProvider.diff;
    assert.ok(diff);
    assert.deepEqual(await diff(key, created.outs, inputs), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
    assert.deepEqual(await diff(key, legacy, inputs), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const updated = await goldenImageProvider.update?.(key, legacy, inputs);
    assert.deepEqual(updated?.outs, created.outs);
    const read = await goldenImageProvider.read?.(key, legacy);
    assert.ok(read?.props && !("proxy" in read.props));
    assert.equal(read?.props?.qcow2, created.outs.qcow2);
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
      // The command line is cut at 160 characters: a long checkout path drops the ".ts".
      assert.match(waiting, new RegExp(`held by pid ${holder.pid} \\(.*test/helpers/imageBuilder`));
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
