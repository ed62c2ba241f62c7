/**
 * fame's fallback Node.js language host (scripts/language-host/pulumi-language-nodejs),
 * driven as the engine drives it: spawned with node, port read from its first line, Run
 * called over gRPC. PULUMI_LANGUAGE_NODEJS_RUN_PATH points Run at a fake program that
 * records the signals it gets.
 */
import * as assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { LanguageRuntimeClient } from "@pulumi/pulumi/proto/language_grpc_pb";
import { RunRequest, type RunResponse } from "@pulumi/pulumi/proto/language_pb";
import { Empty } from "google-protobuf/google/protobuf/empty_pb";

const hostScript = path.resolve(__dirname, "../../scripts/language-host/pulumi-language-nodejs");

// Appends "start <pid> <ppid>" and every SIGINT/SIGTERM to $FAKE_OUT; FAKE_MODE=fail exits 3
// at once, FAKE_MODE=stubborn keeps running after a signal.
const fakeProgram = `"use strict";
const fs = require("node:fs");
const out = process.env.FAKE_OUT;
fs.appendFileSync(out, "start " + process.pid + " " + process.ppid + "\\n");
if (process.env.FAKE_MODE === "fail") process.exit(3);
for (const s of ["SIGINT", "SIGTERM"]) {
  process.on(s, () => {
    fs.appendFileSync(out, s + "\\n");
    if (process.env.FAKE_MODE !== "stubborn") process.exit(0);
  });
}
setTimeout(() => {}, 60000);
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Alive and not a zombie (a re-parented process may linger as one until reaped). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface Host {
  proc: ChildProcess;
  port: Promise<number>;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Its output streams are closed too (stderr is complete). */
  closed: Promise<void>;
}

let tmp = "";
const procs: ChildProcess[] = [];
const clients: grpc.Client[] = [];

/** Runs `argv` (the host, or a parent that starts it with inherited stdio) like the engine. */
function startHost(argv: string[], cwd: string, env: NodeJS.ProcessEnv): Host {
  const proc = spawn(process.execPath, argv, {
    cwd,
    env: { ...process.env, NODE_PATH: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  procs.push(proc);
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const port = new Promise<number>((resolve, reject) => {
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /^(\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    exited.then(({ code }) => reject(new Error(`host exited (${code}) before its port: ${err}`)));
  });
  const closed = new Promise<void>((resolve) => proc.on("close", () => resolve()));
  return { proc, port, stderr: () => err, exited, closed };
}

async function connect(host: Host): Promise<LanguageRuntimeClient> {
  const client = new LanguageRuntimeClient(
    `127.0.0.1:${await host.port}`,
    grpc.credentials.createInsecure(),
  );
  clients.push(client);
  return client;
}

/** One Run; resolves on the first answer and counts every further one. */
function run(client: LanguageRuntimeClient, pwd: string) {
  const req = new RunRequest();
  req.setPwd(pwd);
  req.setProgram(".");
  req.setProject("p");
  req.setStack("s");
  req.setMonitorAddress("127.0.0.1:1");
  const answers: Array<grpc.ServiceError | RunResponse> = [];
  let call: grpc.ClientUnaryCall | undefined;
  const done = new Promise<RunResponse>((resolve, reject) => {
    call = client.run(req, new grpc.Metadata(), { deadline: Date.now() + 15000 }, (e, resp) => {
      answers.push(e ?? resp);
      if (e) reject(e);
      else resolve(resp);
    });
  });
  return { done, answers, call: call! };
}

function pluginVersion(client: LanguageRuntimeClient): Promise<string> {
  return new Promise((resolve, reject) =>
    client.getPluginInfo(new Empty(), (e, info) => (e ? reject(e) : resolve(info.getVersion()))),
  );
}

const record = () => path.join(tmp, "signals");
const recorded = () => (fs.existsSync(record()) ? fs.readFileSync(record(), "utf8") : "");
/** The fake program's pid and parent pid, once it has started. */
async function started(): Promise<{ pid: number; ppid: number }> {
  await until("the program to start", () => /^start /.test(recorded()));
  const [, pid, ppid] = recorded().split("\n")[0].split(" ");
  return { pid: Number(pid), ppid: Number(ppid) };
}

function programEnv(mode = ""): NodeJS.ProcessEnv {
  const program = path.join(tmp, "program.js");
  fs.writeFileSync(program, fakeProgram);
  return { PULUMI_LANGUAGE_NODEJS_RUN_PATH: program, FAKE_OUT: record(), FAKE_MODE: mode };
}

describe("fallback Node.js language host", () => {
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-langhost-"));
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const p of procs.splice(0))
      if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    const m = /^start (\d+)/.exec(recorded());
    if (m && alive(Number(m[1]))) process.kill(Number(m[1]), "SIGKILL");
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`passes ${signal} on to the program, waits for it to exit, then exits`, async () => {
      const host = startHost([hostScript, "127.0.0.1:1"], tmp, programEnv());
      const client = await connect(host);
      const r = run(client, tmp);
      const { pid } = await started();
      host.proc.kill(signal);
      const exit = await host.exited;
      assert.equal(exit.code, 0, host.stderr());
      assert.deepEqual(recorded().split("\n").slice(1), [signal, ""]);
      assert.equal(alive(pid), false, "the program outlived the host");
      // The engine still learns how the program ended.
      assert.equal((await r.done).getError(), "");
      assert.equal(r.answers.length, 1);
    });
  }

  it("kills a program that does not exit within the grace period", async () => {
    const env = { ...programEnv("stubborn"), FAME_LANGUAGE_HOST_GRACE_MS: "300" };
    const host = startHost([hostScript, "127.0.0.1:1"], tmp, env);
    const r = run(await connect(host), tmp);
    const { pid } = await started();
    host.proc.kill("SIGTERM");
    await host.exited;
    assert.match(recorded(), /\nSIGTERM\n/);
    assert.equal(alive(pid), false, "the program outlived the host");
    assert.equal((await r.done).getError(), "Program exited on signal SIGKILL");
  });

  it("stops the program when its parent (the engine) is gone", async () => {
    // A stand-in engine that starts the host with its own stdio, then is killed.
    const engine = `require("node:child_process").spawn(process.execPath, ${JSON.stringify([
      hostScript,
      "127.0.0.1:1",
    ])}, { stdio: "inherit" }); setInterval(() => {}, 1000);`;
    const parent = startHost(["-e", engine], tmp, programEnv());
    run(await connect(parent), tmp).done.catch(() => {});
    const { pid, ppid: hostPid } = await started();
    parent.proc.kill("SIGKILL");
    await until("the host to exit", () => !alive(hostPid));
    assert.match(recorded(), /\nSIGINT\n/);
    assert.equal(alive(pid), false, "the program outlived the host");
  });

  it("interrupts the program on Cancel and keeps serving", async () => {
    const host = startHost([hostScript, "127.0.0.1:1"], tmp, programEnv());
    const client = await connect(host);
    const r = run(client, tmp);
    const { pid } = await started();
    await new Promise((resolve, reject) =>
      client.cancel(new Empty(), (e) => (e ? reject(e) : resolve(null))),
    );
    assert.equal((await r.done).getError(), "");
    assert.match(recorded(), /\nSIGINT\n/);
    assert.equal(alive(pid), false);
    assert.match(await pluginVersion(client), /^\d+\.\d+\.\d+/);
  });

  describe("answers each Run exactly once", () => {
    /** Runs once in `pwd`, then checks the host is still up and said nothing of a second answer. */
    async function runOnce(env: NodeJS.ProcessEnv, pwd: string): Promise<string> {
      const host = startHost([hostScript, "127.0.0.1:1"], tmp, env);
      const client = await connect(host);
      const r = run(client, pwd);
      const resp = await r.done;
      await sleep(300);
      assert.equal(r.answers.length, 1);
      assert.match(await pluginVersion(client), /^\d+\.\d+\.\d+/);
      assert.equal(host.stderr(), "");
      return resp.getError();
    }

    it("for a program that exits non-zero", async () => {
      assert.equal(
        await runOnce(programEnv("fail"), tmp),
        "Program exited with non-zero exit code: 3",
      );
    });

    it("for a run path that does not exist", async () => {
      const missing = path.join(tmp, "missing.js");
      assert.equal(
        await runOnce({ PULUMI_LANGUAGE_NODEJS_RUN_PATH: missing }, tmp),
        `fame language host: PULUMI_LANGUAGE_NODEJS_RUN_PATH=${missing} cannot be found from ${tmp}`,
      );
    });

    it("for a program directory without node_modules: run `npm ci`", async () => {
      const error = await runOnce({ PULUMI_LANGUAGE_NODEJS_RUN_PATH: "" }, tmp);
      assert.match(error, /cannot find @pulumi\/pulumi\/cmd\/run from /);
      assert.ok(error.includes(`run \`npm ci\` in ${tmp}`), error);
    });

    for (const [what, pwd] of [
      ["is missing", () => path.join(tmp, "gone")],
      ["is a file", () => path.join(tmp, "program.js")],
    ] as const) {
      it(`for a program that cannot be spawned (its directory ${what})`, async () => {
        const error = await runOnce(programEnv(), pwd());
        assert.match(
          error,
          /^Problem executing program \(could not run language executor\): spawn/,
        );
        assert.equal(recorded(), "");
      });
    }
  });

  it("without node_modules says `npm ci` and exits non-zero", async () => {
    // A copy outside the project: nothing resolvable beside it either.
    const bin = path.join(tmp, "bin");
    const project = path.join(tmp, "project");
    fs.mkdirSync(bin);
    fs.mkdirSync(project);
    fs.copyFileSync(hostScript, path.join(bin, "pulumi-language-nodejs"));
    const host = startHost([path.join(bin, "pulumi-language-nodejs"), "127.0.0.1:1"], project, {});
    await assert.rejects(host.port, /before its port/);
    assert.notEqual((await host.exited).code, 0);
    await host.closed;
    assert.equal(
      host.stderr(),
      `fame language host: Cannot find module '@grpc/grpc-js' from ${project}; ` +
        `the project's dependencies are not installed: run \`npm ci\` in ${project}\n`,
    );
  });
});
