/**
 * The top tier: what users type, under the real Pulumi CLI. The quick-start
 * command creates a fresh stack (pointed at the sandbox's libvirt by FAME_*
 * variables) and runs `pulumi up`; then the Automation API (LocalWorkspace on
 * this very project directory, file backend in a scratch directory) drives the
 * lifecycle the README promises: no-change preview, refresh after drift,
 * repairs, FAM growth, node count changes, an image change, secrets in state,
 * a killed `pulumi up`, destroy and adoption. Guests run in the sandbox's
 * network namespace; nothing reaches another network.
 */
import * as assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { EngineEvent, OpType, Stack } from "@pulumi/pulumi/automation";
import { cmdline, procInfo } from "../../lib/host/proc";
import { DEBIAN_IMAGE } from "../helpers/debianCluster";
import { readAt } from "../helpers/files";
import { projectStack, pulumiEnv, removeProjectStack, usePulumiCli } from "../helpers/pulumi";
import { ROOT, sandboxUri, scratchDir, testImageCache, virshOut } from "../helpers/sandbox";
import { sshOk, waitForSsh } from "../helpers/ssh";

/** Shared across runs on one machine: the image is built once, then reused. */
const STACK = `e2e-${process.pid}`;
const PASSWORD = `pw-${crypto.randomBytes(9).toString("hex")}`;
// The Debian image of the other e2e suites (test/helpers/debianCluster.ts): one cold build in CI.
const HOSTBASE = "dn";
const OCTETS = "10.213.60";
const USER = "fabric";
const GiB = 2 ** 30;

let atLineStart = true;
/** Echoes CLI output indented under the test's own lines (output arrives in chunks). */
function echo(text: string): void {
  const out = text.replace(/\n(?=.)/g, "\n        | ");
  process.stdout.write(`${atLineStart && text ? "        | " : ""}${out}`);
  if (text) atLineStart = text.endsWith("\n");
}

interface Running {
  child: ChildProcess;
  /** Everything printed so far. */
  output(): string;
  done: Promise<{ code: number | null; output: string }>;
}

/** Runs a command with the suite's environment, echoing its output with the test's. */
function runCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv): Running {
  // Its own process group, so a kill reaches the CLI and everything it started.
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  const onData = (d: Buffer) => {
    output += d.toString();
    echo(d.toString());
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const done = new Promise<{ code: number | null; output: string }>((resolve) => {
    child.on("close", (code) => resolve({ code, output }));
  });
  return { child, output: () => output, done };
}

/** `root` and all its descendants, read from /proc. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // Fields after the command name: state, ppid, ...
    const ppid = Number(stat.replace(/^.*\) \S+ /, "").split(" ")[0]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** Resource name (last URN segment) -> step op, from a preview's or update's events. */
function opsOf(events: EngineEvent[]): Map<string, OpType> {
  const ops = new Map<string, OpType>();
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata;
    if (!m || m.type === "pulumi:pulumi:Stack") continue;
    const name = m.urn.split("::").at(-1) ?? m.urn;
    // A replacement shows as several steps; keep the telling one.
    const prev = ops.get(name);
    if (!prev || prev === "same" || m.op === "replace") ops.set(name, m.op);
  }
  return ops;
}

function namesWith(ops: Map<string, OpType>, pred: (op: OpType) => boolean): string[] {
  return [...ops]
    .filter(([, op]) => pred(op))
    .map(([n]) => n)
    .sort();
}

const changed = (op: OpType) => op !== "same" && op !== "read";
const replaced = (op: OpType) =>
  op === "replace" || op === "create-replacement" || op === "delete-replaced";

function domainsOfStack(hostbase = HOSTBASE): string[] {
  return virshOut("list", "--all", "--name")
    .split("\n")
    .map((s) => s.trim())
    .filter((s) => s.startsWith(hostbase))
    .sort();
}

/** The program's own messages (the change report) among a run's events. */
function diagnostics(events: EngineEvent[]): string {
  return events.map((e) => e.diagnosticEvent?.message ?? "").join("");
}

describe("e2e: the real Pulumi CLI runs the user's lifecycle", function () {
  this.timeout(90 * 60_000);
  let work: string;
  let famDir: string;
  let env: NodeJS.ProcessEnv;
  let stack: Stack;
  let keyFile: string;
  const sentinel = crypto.randomBytes(4096);
  const SENTINEL_AT = 5 * 2 ** 20 + 123;
  const ips = [1, 2, 3].map((n) => `${OCTETS}.${n}`);

  async function preview(): Promise<Map<string, OpType>> {
    const events: EngineEvent[] = [];
    await stack.preview({ diff: true, onEvent: (e) => events.push(e) });
    return opsOf(events);
  }

  async function up(onOutput?: (s: string) => void): Promise<Map<string, OpType>> {
    const events: EngineEvent[] = [];
    await stack.up({
      onEvent: (e) => events.push(e),
      onOutput: (s) => {
        onOutput?.(s);
        echo(s);
      },
    });
    return opsOf(events);
  }

  function assertSentinel(when: string): void {
    const famFile = path.join(famDir, "FAM");
    assert.ok(
      readAt(famFile, SENTINEL_AT, sentinel.length).equals(sentinel),
      `FAM sentinel changed ${when}`,
    );
  }

  before(async () => {
    // User, hostbase and subnet are not in the image (the seed disks carry them).
    assert.equal(
      DEBIAN_IMAGE.sizeGbytes,
      4,
      "the suite shares the Debian image recipe of test/helpers/debianCluster.ts",
    );
    usePulumiCli();
    work = scratchDir("engine");
    famDir = path.join(work, "fame");
    const fameEnv = {
      ...pulumiEnv(work),
      FAME_STACK: STACK,
      FAME_LIBVIRT_URI: sandboxUri(),
      FAME_DIR: famDir,
      FAME_NODES: "2",
      FAME_HOSTBASE: HOSTBASE,
      FAME_OCTETS123: OCTETS,
      FAME_VCPUS: "1",
      FAME_VFS_GBYTES: "4",
      // A new stack would get trixie: the shared image's release, said explicitly.
      FAME_SUITE: DEBIAN_IMAGE.suite,
      FAME_IMAGE_CACHE: testImageCache(),
    };
    env = { ...process.env, ...fameEnv };
    stack = await projectStack(STACK, fameEnv);
    // Stack config through the workspace, a secret among it.
    await stack.setAllConfig({
      "fame:password": { value: PASSWORD, secret: true },
      "fame:famSize": { value: "1G" },
      "fame:user": { value: USER },
      "fame:shutdownTimeout": { value: "30" },
    });
  });

  after(async () => {
    // Leave nothing behind, whatever failed: destroy (keeps FAM), then the scratch dir.
    if (stack) {
      await stack.destroy({ onOutput: () => {} }).catch((e) => console.error(`destroy: ${e}`));
      await removeProjectStack(stack);
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("quick start --preview on a fresh stack succeeds and lists only creates", async () => {
    const r = await runCommand(path.join(ROOT, "scripts", "quickstart.sh"), ["--preview"], env)
      .done;
    assert.equal(r.code, 0, "quickstart --preview failed");
    assert.match(
      r.output,
      /\+ +pulumi-nodejs:dynamic:Resource +.*\bfame-node01-domain\b|\+ .*fame-node01-domain/,
    );
    assert.match(r.output, /Resources:\s+\+ \d+ to create/);
    assert.doesNotMatch(r.output, /to update|to replace|to delete/);
    assert.deepEqual(domainsOfStack(), [], "a preview changed nothing");
  });

  it("quick start gives 2 nodes that answer SSH with the stack's key and share FAM", async () => {
    const r = await runCommand(path.join(ROOT, "scripts", "quickstart.sh"), [], env).done;
    assert.equal(r.code, 0, "quickstart (pulumi up) failed");
    assert.deepEqual(domainsOfStack(), ["dn01", "dn02"]);

    // What the README tells users to do for SSH.
    const key = execFileSync("pulumi", ["stack", "output", "--show-secrets", "privateKey"], {
      cwd: ROOT,
      env: { ...env, PULUMI_STACK: STACK },
      encoding: "utf8",
    });
    assert.match(key, /BEGIN OPENSSH PRIVATE KEY/);
    keyFile = path.join(work, "id_ed25519");
    fs.writeFileSync(keyFile, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
    const [ip1, ip2] = ips as [string, string];
    const waited = await Promise.all([
      waitForSsh(keyFile, USER, ip1, 900_000),
      waitForSsh(keyFile, USER, ip2, 900_000),
    ]);
    console.log(`      SSH-ready after up: ${waited.map((w) => Math.round(w / 1000))} s`);
    assert.equal((await sshOk(keyFile, USER, ip1, "hostname")).trim(), "dn01");
    // Nothing per node in the image: each made its own host keys and machine-id.
    const ident = "cat /etc/ssh/ssh_host_ed25519_key.pub /etc/machine-id";
    const [id1, id2] = [
      await sshOk(keyFile, USER, ip1, ident),
      await sshOk(keyFile, USER, ip2, ident),
    ];
    assert.notEqual(id1.split("\n")[0], id2.split("\n")[0], "distinct SSH host keys");
    assert.notEqual(id1.split("\n")[1], id2.split("\n")[1], "distinct machine-id");
    assert.equal((await sshOk(keyFile, USER, ip1, "sudo -n id -u")).trim(), "0");
    assert.match(
      await sshOk(keyFile, USER, ip1, "getent hosts torms dn02"),
      /10\.213\.60\.254\s+torms/,
    );
    assert.equal(
      (await sshOk(keyFile, USER, ip1, "ssh -o BatchMode=yes dn02 hostname")).trim(),
      "dn02",
    );

    // hello_fabric: node01 writes, node02 and the host read the same bytes.
    const build = "gcc -O2 -o hello_fabric /usr/local/share/fame/hello_fabric.c";
    const marker = `engine-${crypto.randomBytes(6).toString("hex")}`;
    await sshOk(keyFile, USER, ip1, `${build} && sudo ./hello_fabric write 8192 ${marker}`);
    const seen = await sshOk(
      keyFile,
      USER,
      ip2,
      `${build} && sudo ./hello_fabric read 8192 ${marker.length}`,
    );
    assert.equal(seen.trim(), marker);
    assert.equal(readAt(path.join(famDir, "FAM"), 8192, marker.length).toString(), marker);

    // A sentinel the rest of the lifecycle must keep byte for byte.
    const fd = fs.openSync(path.join(famDir, "FAM"), "r+");
    fs.writeSync(fd, sentinel, 0, sentinel.length, SENTINEL_AT);
    fs.closeSync(fd);
  });

  it("a second preview reports no change for any resource", async () => {
    const events: EngineEvent[] = [];
    await stack.preview({ expectNoChanges: true, onEvent: (e) => events.push(e) });
    const ops = opsOf(events);
    assert.ok(ops.size >= 15, `only ${ops.size} resources in the preview`);
    assert.deepEqual(namesWith(ops, changed), []);
  });

  it("a stack applied before nodes were named by slot (resources named by hostbase) upgrades with no change", async () => {
    // The state an earlier fame left: every node resource named fame-<hostbase><NN>[-child].
    const exported = await stack.exportStack();
    const before = JSON.stringify(exported);
    const old = before.replaceAll("fame-node0", `fame-${HOSTBASE}0`);
    assert.notEqual(old, before);
    await stack.importStack(JSON.parse(old));
    const events: EngineEvent[] = [];
    await stack.preview({ expectNoChanges: true, onEvent: (e) => events.push(e) });
    assert.deepEqual(namesWith(opsOf(events), changed), [], "aliases find every node resource");
    await up();
    const state = JSON.stringify((await stack.exportStack()).deployment);
    assert.doesNotMatch(state, /"urn:[^"]*::fame-dn0/, "the state has the slot names now");
    for (const n of ["fame-node01-disk", "fame-node02-domain", "fame-node02-seed"])
      assert.match(state, new RegExp(`"urn:[^"]*::${n}"`));
    assert.deepEqual(domainsOfStack(), ["dn01", "dn02"]);
  });

  it("renaming the nodes (fame:hostbase) keeps each disk with what the node wrote, its host keys and FAM", async () => {
    const RENAMED = "dr";
    const ip1 = ips[0] as string;
    const marker = `disk-${crypto.randomBytes(6).toString("hex")}`;
    await sshOk(
      keyFile,
      USER,
      ip1,
      `echo ${marker} | sudo tee /var/tmp/fame-marker >/dev/null && sync`,
    );
    const hostKey = await sshOk(keyFile, USER, ip1, "cat /etc/ssh/ssh_host_ed25519_key.pub");
    const disks = () =>
      fs
        .readdirSync(famDir)
        .filter((f) => f.endsWith(".qcow2"))
        .sort();
    const disksBefore = disks();
    assert.equal(disksBefore.length, 2);

    await stack.setConfig("fame:hostbase", { value: RENAMED });
    const events: EngineEvent[] = [];
    await stack.preview({ diff: true, onEvent: (e) => events.push(e) });
    const ops = opsOf(events);
    for (const n of ["01", "02"]) {
      assert.equal(ops.get(`fame-node${n}-disk`), "same", `node${n}'s disk is kept`);
      assert.ok(replaced(ops.get(`fame-node${n}-domain`) ?? "same"), `node${n}'s domain replaced`);
      assert.ok(replaced(ops.get(`fame-node${n}-seed`) ?? "same"), `node${n}'s seed replaced`);
    }
    assert.ok(replaced(ops.get("fame-network-net") ?? "same"), "the network is replaced");
    assert.match(
      diagnostics(events),
      /the nodes are renamed dn01, dn02 -> dr01, dr02: .*every node keeps its disk and what it wrote there/,
    );

    await up();
    assert.deepEqual(domainsOfStack(RENAMED), ["dr01", "dr02"]);
    assert.deepEqual(domainsOfStack(), [], "no domain left under the old names");
    assert.deepEqual(disks(), disksBefore, "the same disk files");
    await waitForSsh(keyFile, USER, ip1, 900_000);
    assert.equal((await sshOk(keyFile, USER, ip1, "hostname")).trim(), "dr01");
    assert.equal((await sshOk(keyFile, USER, ip1, "cat /var/tmp/fame-marker")).trim(), marker);
    assert.equal(
      await sshOk(keyFile, USER, ip1, "cat /etc/ssh/ssh_host_ed25519_key.pub"),
      hostKey,
      "the node's own SSH host key",
    );
    assert.match(await sshOk(keyFile, USER, ip1, "getent hosts dr02"), /10\.213\.60\.2\s+dr02/);
    assertSentinel("after renaming the nodes");

    // Back to the names the rest of the lifecycle expects.
    await stack.setConfig("fame:hostbase", { value: HOSTBASE });
    await up();
    assert.deepEqual(domainsOfStack(), ["dn01", "dn02"]);
    assert.deepEqual(domainsOfStack(RENAMED), []);
    assert.deepEqual(disks(), disksBefore);
  });

  it("refresh sees a node undefined and another node's disk deleted out of band; up repairs both", async () => {
    const uri = sandboxUri();
    execFileSync("virsh", ["-q", "-c", uri, "destroy", "dn02"]);
    execFileSync("virsh", ["-q", "-c", uri, "undefine", "dn02"]);
    const disk1 = fs.readdirSync(famDir).find((f) => /^dn01-[0-9a-f]{12}\.qcow2$/.test(f));
    assert.ok(disk1, "dn01's disk is in the artifact directory");
    fs.rmSync(path.join(famDir, disk1));

    await stack.refresh({ onOutput: (o) => process.stdout.write(o) });
    const state = JSON.stringify((await stack.exportStack()).deployment);
    assert.doesNotMatch(
      state,
      /"urn:[^"]*fame-node02-domain"/,
      "refresh dropped the undefined domain",
    );
    assert.doesNotMatch(state, /"urn:[^"]*fame-node01-disk"/, "refresh dropped the deleted disk");

    const ops = await up();
    assert.equal(ops.get("fame-node02-domain"), "create");
    assert.equal(ops.get("fame-node01-disk"), "create");
    // The new disk has a new identity: node01 restarts onto it instead of the deleted file.
    assert.equal(ops.get("fame-node01-domain"), "update");
    assert.deepEqual(domainsOfStack(), ["dn01", "dn02"]);
    assert.ok(fs.existsSync(path.join(famDir, disk1)), "disk recreated");
    assert.match(virshOut("domstate", "dn02"), /running/);
    assertSentinel("after the repair");
  });

  it("grows FAM through config: FAM updated in place, domains updated, no disk replaced, sentinel kept", async () => {
    await stack.setConfig("fame:famSize", { value: "2G" });
    const ops = await preview();
    assert.equal(ops.get("fame-fam-file"), "update");
    assert.equal(ops.get("fame-node01-domain"), "update");
    assert.equal(ops.get("fame-node02-domain"), "update");
    assert.deepEqual(namesWith(ops, replaced), []);
    await up();
    assert.equal(fs.statSync(path.join(famDir, "FAM")).size, 2 * GiB);
    assertSentinel("after growing FAM");
    assert.match(virshOut("dumpxml", "dn01"), /size=2147483648/);
  });

  it("nodes 2 -> 3 -> 2 touch only that node's resources; the network is updated in place", async () => {
    await stack.setConfig("fame:nodes", { value: "3" });
    let ops = await up();
    const node3 = ["fame-node03", "fame-node03-disk", "fame-node03-domain", "fame-node03-seed"];
    assert.deepEqual(
      namesWith(ops, (op) => op === "create"),
      node3,
    );
    assert.equal(ops.get("fame-network-net"), "update");
    for (const n of [
      "fame-node01-domain",
      "fame-node02-domain",
      "fame-node01-disk",
      "fame-node02-disk",
    ])
      assert.equal(ops.get(n), "same", `${n} untouched`);
    assert.deepEqual(domainsOfStack(), ["dn01", "dn02", "dn03"]);

    await stack.setConfig("fame:nodes", { value: "2" });
    ops = await up();
    assert.deepEqual(
      namesWith(ops, (op) => op === "delete"),
      node3,
    );
    assert.deepEqual(
      namesWith(ops, (op) => op === "create" || replaced(op)),
      [],
    );
    assert.equal(ops.get("fame-network-net"), "update");
    assert.deepEqual(domainsOfStack(), ["dn01", "dn02"]);
    assertSentinel("after adding and removing a node");
  });

  it("a new image cache and image input replace the disks; build progress reaches the terminal live", async () => {
    const cache2 = path.join(work, "images2");
    await stack.setAllConfig({
      "fame:imageCache": { value: cache2 },
      "fame:vfsGbytes": { value: "5" },
    });
    const lines: { at: number; text: string }[] = [];
    const ops = await up((s) => {
      for (const l of s.split("\n")) if (l.trim()) lines.push({ at: Date.now(), text: l });
    });
    const done = Date.now();
    assert.ok(replaced(ops.get("fame-node01-disk") ?? "same"), "node01's disk replaced");
    assert.ok(replaced(ops.get("fame-node02-disk") ?? "same"), "node02's disk replaced");
    assert.equal(ops.get("fame-fam-file"), "same");
    assert.ok(fs.readdirSync(cache2).length > 0, "image built into the new cache");
    // The provider's progress lines are shown while the build runs, not after it.
    const progress = lines.find((l) => /mmdebstrap/.test(l.text));
    assert.ok(progress, "image build progress was shown during pulumi up");
    assert.ok(done - progress.at > 30_000, `progress only ${done - progress.at} ms before the end`);
    assertSentinel("after replacing the disks");
    await waitForSsh(keyFile, USER, ips[0] as string, 900_000);
  });

  it("stack export holds the private key and password only as encrypted secrets", async () => {
    // What a user exports (the Automation API's exportStack adds --show-secrets).
    const exportState = (...extra: string[]) =>
      execFileSync("pulumi", ["stack", "export", "--stack", STACK, ...extra], {
        cwd: ROOT,
        env,
        encoding: "utf8",
        maxBuffer: 64 * 2 ** 20,
      });
    const state = exportState();
    const key = fs.readFileSync(keyFile, "utf8");
    // Every base64 line of the key but the first (a header common to all OpenSSH keys).
    const secretLines = key
      .split("\n")
      .filter((l) => l && !l.startsWith("-----"))
      .slice(1);
    assert.ok(secretLines.length >= 2, "the key has a body");
    for (const l of secretLines)
      assert.ok(!state.includes(l), "private key in plain text in state");
    assert.ok(!state.includes(PASSWORD), "password in plain text in state");
    assert.match(state, /"4dabf18193072939515e22adb298388d":\s*"1b47061264138c4ac30d75fd1eb44270"/);
    // Control: decrypted, both are there, so the searches above can find them.
    const shown = exportState("--show-secrets");
    assert.ok(shown.includes(PASSWORD) && secretLines.every((l) => shown.includes(l)));
    const stackFile = fs.readFileSync(path.join(ROOT, `Pulumi.${STACK}.yaml`), "utf8");
    assert.ok(!stackFile.includes(PASSWORD), "password in plain text in the stack file");
    assert.match(stackFile, /fame:password:\s+secure:/);
  });

  it("a pulumi up killed while nodes are created leaves nothing running and converges after the CLI's own recovery", async () => {
    await stack.setConfig("fame:nodes", { value: "3" });
    const killed = runCommand("pulumi", ["up", "--yes", "--stack", STACK, "--skip-preview"], env);
    const deadline = Date.now() + 10 * 60_000;
    while (!/fame-node03-(disk|seed|domain)\s+creating/.test(killed.output())) {
      if (Date.now() > deadline) throw new Error("pulumi up never started creating node03");
      await new Promise((r) => setTimeout(r, 100));
    }
    // Everything the run started, named by pid and start time (a pid alone may be reused).
    const cli = killed.child.pid as number;
    const run = processTree(cli).map((pid) => ({
      pid,
      start: procInfo(pid)?.start,
      cmd: cmdline(pid),
    }));
    assert.ok(
      run.some((p) => p.cmd.includes("dynamic-provider")),
      `the provider process runs: ${run.map((p) => p.cmd).join(" | ")}`,
    );
    // As a closed terminal does: the CLI's process group only. The plugins run in
    // groups of their own: fame's provider must notice by itself and stop.
    process.kill(-cli, "SIGKILL");
    if (killed.child.exitCode === null && killed.child.signalCode === null)
      await new Promise((r) => killed.child.once("exit", r));
    // The official language host is Pulumi's own: it ends at its next engine health check (5 min).
    const left = () =>
      run.filter((p) => {
        const now = procInfo(p.pid);
        return (
          now !== undefined &&
          now.state !== "Z" &&
          now.start === p.start &&
          !/pulumi-language-nodejs/.test(p.cmd)
        );
      });
    const stopBy = Date.now() + 15_000;
    while (left().length > 0 && Date.now() < stopBy) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      left().map((p) => `${p.pid} ${p.cmd}`),
      [],
      "processes of the killed run still running",
    );
    // What the CLI advises after an interrupted update: release its lock
    // (`pulumi cancel`), then refresh with the pending creates cleared.
    await stack.cancel();
    await stack.refresh({ clearPendingCreates: true, onOutput: (s) => process.stdout.write(s) });
    await up();
    assert.deepEqual(domainsOfStack(), ["dn01", "dn02", "dn03"]);
    const disks = fs.readdirSync(famDir).filter((f) => f.endsWith(".qcow2"));
    assert.equal(disks.length, 3, `one disk per node, nothing leaked: ${disks}`);
    const ops = await preview();
    assert.deepEqual(namesWith(ops, changed), []);
    assertSentinel("after the interrupted update");
  });

  it("destroy leaves no domain, network or disk and keeps FAM; up again adopts it", async () => {
    await stack.destroy({ onOutput: (s) => process.stdout.write(s) });
    assert.deepEqual(domainsOfStack(), []);
    assert.doesNotMatch(virshOut("net-list", "--all", "--name"), /br_dn/);
    assert.deepEqual(
      fs.readdirSync(famDir).filter((f) => /\.(qcow2|seed\.img)$/.test(f)),
      [],
    );
    assertSentinel("after destroy");
    await stack.setConfig("fame:running", { value: "none" });
    const ops = await up();
    assert.equal(ops.get("fame-fam-file"), "create");
    const outputs = await stack.exportStack();
    const fam = outputs.deployment.resources.find((r: { urn: string }) =>
      r.urn.endsWith("::fame-fam-file"),
    );
    assert.equal(fam?.outputs?.createdByFame, false, "the existing FAM file was adopted, not made");
    assertSentinel("after adopting FAM");
  });
});
