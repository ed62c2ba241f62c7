import * as assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { classify, inDynamicProvider, isHostError, pidAlive, run } from "../../lib/host/exec";
import { cmdline, descendants, procInfo, running } from "../../lib/host/proc";

const ROOT = path.resolve(__dirname, "..", "..");

async function until(what: string, ms: number, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Provider {
  node: number;
  /** The command its create runs. */
  sleep: number;
  /** The daemon it started detached. */
  daemon: number;
}

/** The processes of test/helpers/providerProcess.ts under `root`, once its command runs. */
async function providerUnder(root: number): Promise<Provider> {
  let found: Provider | undefined;
  await until("the provider's command started", 20_000, () => {
    const below = descendants(root);
    const node = below.find((p) => cmdline(p).includes("dynamic-provider"));
    const sleep = below.find((p) => cmdline(p) === "sleep 300");
    const daemon = below.find((p) => cmdline(p) === "sleep 301");
    if (node && sleep && daemon) found = { node, sleep, daemon };
    return found !== undefined;
  });
  return found as Provider;
}

/** The daemon outlived the provider; then it is stopped. */
function daemonSurvived(daemon: number): void {
  const alive = running(daemon);
  try {
    process.kill(daemon, "SIGKILL");
  } catch {
    /* gone */
  }
  assert.ok(alive, "the daemon the provider started detached is left running");
}

/**
 * A scratch directory with .../@pulumi/pulumi/cmd/dynamic-provider/index.js
 * loading test/helpers/providerProcess.ts, and the engine's shell wrapper.
 */
function providerFiles(): { dir: string; script: string; wrapper: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-watchdog-"));
  const cmdDir = path.join(dir, "node_modules", "@pulumi", "pulumi", "cmd", "dynamic-provider");
  fs.mkdirSync(cmdDir, { recursive: true });
  const script = path.join(cmdDir, "index.js");
  fs.writeFileSync(
    script,
    `require(${JSON.stringify(require.resolve("ts-node/register/transpile-only"))});\n` +
      `require(${JSON.stringify(path.join(ROOT, "test", "helpers", "providerProcess.ts"))});\n`,
  );
  // Shaped like @pulumi/pulumi's: the shell stays, node is its child.
  const wrapper = path.join(dir, "pulumi-resource-pulumi-nodejs");
  fs.writeFileSync(wrapper, '#!/bin/sh\nif [ -n "$1" ]; then\n    node "$@"\nfi\n', {
    mode: 0o755,
  });
  return { dir, script, wrapper };
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-(child.pid as number), "SIGKILL");
  } catch {
    /* gone */
  }
}

describe("pidAlive", () => {
  it("counts a live process, not a gone one, and not a zombie (ended, not yet collected)", () => {
    assert.equal(pidAlive(process.pid), true);
    const child = spawn("true");
    const pid = child.pid as number;
    // Synchronous: the event loop cannot reap the child while this waits.
    const until = Date.now() + 5000;
    while (procInfo(pid)?.state !== "Z" && Date.now() < until) {
      /* wait for it to end */
    }
    assert.equal(procInfo(pid)?.state, "Z", "the child is a zombie");
    assert.equal(pidAlive(pid), false);
  });
});

describe("host command runner", () => {
  it("classifies libvirt failures: not found is not unreachable", () => {
    assert.equal(
      classify(
        "error: failed to get domain 'node01'\nerror: Domain not found: no domain with matching name 'node01'",
      ),
      "not-found",
    );
    assert.equal(classify("error: failed to get network 'br_node'"), "not-found");
    // A reason printed after "failed to get" decides: this lookup failed, nothing is gone.
    assert.equal(
      classify(
        "error: failed to get domain 'node01'\nerror: access denied: 'domain-getattr' forbidden",
      ),
      "other",
    );
    assert.equal(
      classify("error: failed to get network 'br_node'\nerror: internal error: lock failed"),
      "other",
    );
    assert.equal(
      classify(
        "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory",
      ),
      "unreachable",
    );
    assert.equal(
      classify("error: End of file while reading data: Input/output error"),
      "unreachable",
    );
    assert.equal(classify("error: internal error: something else"), "other");
  });

  it("passes arguments as an array (no shell) and returns stdout", async () => {
    assert.equal(await run("printf", ["%s|", "a b", "$(x)", ";rm"]), "a b|$(x)|;rm|");
    assert.equal(await run("cat", [], { input: "from stdin" }), "from stdin");
  });

  it("rejects with a classified HostError carrying the command and stderr", async () => {
    await assert.rejects(
      run("sh", ["-c", "echo 'error: failed to connect to the hypervisor' >&2; exit 1"]),
      (e: unknown) => {
        assert.ok(isHostError(e, "unreachable"));
        assert.deepEqual(e.command.slice(0, 2), ["sh", "-c"]);
        assert.match(e.stderr, /failed to connect/);
        return true;
      },
    );
    await assert.rejects(
      run("no-such-tool-fame", []),
      (e: unknown) =>
        isHostError(e, "missing-tool") && /is no-such-tool-fame installed/.test(e.message),
    );
  });

  it("kills a command that outlives its timeout", async () => {
    await assert.rejects(run("sleep", ["5"], { timeoutMs: 200 }), /killed by SIGKILL/);
  });

  it("a timeout kills the command's own children too, which would keep its output open", async () => {
    const started = Date.now();
    await assert.rejects(
      run("sh", ["-c", "sleep 30 & echo $!; wait"], { timeoutMs: 500 }),
      /killed by SIGKILL/,
    );
    assert.ok(Date.now() - started < 5000, `returned after ${Date.now() - started} ms`);
  });

  it("traces every command when FAME_VERBOSE is set", async () => {
    const seen: string[] = [];
    const original = console.error;
    process.env.FAME_VERBOSE = "1";
    console.error = (m: string) => seen.push(m);
    try {
      await run("true", ["--flag"]);
    } finally {
      console.error = original;
      delete process.env.FAME_VERBOSE;
    }
    assert.deepEqual(seen, ["fame: $ true --flag"]);
  });

  it("traces every command with FAME_VERBOSE set (fame:verbose's promise for host commands), and only then", async () => {
    const said: string[] = [];
    const saved = console.error;
    const env = process.env.FAME_VERBOSE;
    console.error = (...m: unknown[]) => said.push(m.join(" "));
    try {
      process.env.FAME_VERBOSE = "1";
      await run("printf", ["%s", "a b"]);
      delete process.env.FAME_VERBOSE;
      await run("true", []);
    } finally {
      console.error = saved;
      if (env === undefined) delete process.env.FAME_VERBOSE;
      else process.env.FAME_VERBOSE = env;
    }
    assert.deepEqual(said, ["fame: $ printf %s a b"]);
  });
});

describe("engine watchdog: a provider whose engine is gone stops its commands and exits", function () {
  this.timeout(60_000);
  let files: ReturnType<typeof providerFiles>;
  const started: ChildProcess[] = [];
  beforeEach(() => {
    files = providerFiles();
  });
  afterEach(() => {
    for (const c of started.splice(0)) killGroup(c);
    fs.rmSync(files.dir, { recursive: true, force: true });
  });

  it("knows the engine's provider process by its script, and nothing else", () => {
    assert.ok(inDynamicProvider(files.script));
    assert.ok(inDynamicProvider("/x/node_modules/@pulumi/pulumi/cmd/dynamic-provider"));
    assert.ok(!inDynamicProvider(process.argv[1]));
    assert.ok(!inDynamicProvider("/x/node_modules/@pulumi/pulumi/cmd/run/index.js"));
  });

  it("its parent killed: the provider and its command are gone within seconds", async () => {
    // Its own process group, as the engine starts plugins.
    const parent = spawn("sh", ["-c", `node ${JSON.stringify(files.script)} & wait`], {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "ignore", "ignore"],
    });
    started.push(parent);
    const { node, sleep, daemon } = await providerUnder(parent.pid as number);
    process.kill(parent.pid as number, "SIGKILL");
    await until("provider and command gone", 8000, () => !running(node) && !running(sleep));
    daemonSurvived(daemon);
  });

  it("the engine killed (engine -> sh wrapper -> node): all of the plugin is gone within seconds", async () => {
    // The engine: holds the plugin's stdin, reads its output, starts it in a group of its own.
    const engine = spawn(
      process.execPath,
      [
        "-e",
        `const c = require("node:child_process").spawn("sh", ${JSON.stringify([files.wrapper, files.script])}, { stdio: ["pipe", "pipe", "pipe"], detached: true });
         c.stdout.resume(); c.stderr.resume(); setInterval(() => {}, 60000);`,
      ],
      { cwd: ROOT, detached: true, stdio: ["ignore", "ignore", "ignore"] },
    );
    started.push(engine);
    const { node, sleep, daemon } = await providerUnder(engine.pid as number);
    const wrapper = descendants(engine.pid as number).find((p) =>
      cmdline(p).includes(files.wrapper),
    );
    assert.ok(wrapper !== undefined, "the wrapper shell stays the provider's parent");
    try {
      process.kill(engine.pid as number, "SIGKILL");
      await until("wrapper, provider and command gone", 8000, () =>
        [wrapper, node, sleep].every((p) => !running(p)),
      );
      daemonSurvived(daemon);
    } finally {
      try {
        process.kill(-wrapper, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  });
});
