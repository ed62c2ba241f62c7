/**
 * Leftovers of killed test runs are swept at the start of the next one, the
 * way testcontainers' reaper does: only what belongs to a run whose process is
 * gone (its sandbox's libvirtd, virtlogd, guests and network namespace, its
 * scratch directories); a live run's things stay.
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { scratchBase, sweepDeadRuns } from "../helpers/sandbox";

const SCRIPT = path.join(__dirname, "sandbox.sh");

function state(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "")[0] ?? "";
  } catch {
    return "";
  }
}

/** The pid of a process that has exited (a run killed without cleaning up). */
function deadPid(): number {
  const r = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" });
  const pid = Number(r.stdout.trim());
  assert.equal(state(pid), "", "the fake run's process is gone");
  return pid;
}

describe("sweeping leftovers of dead test runs", function () {
  this.timeout(300_000);
  const runDir = path.join(scratchBase(), `sweep-test-${process.pid}`);

  after(() => {
    // Whatever the test did not sweep (on failure) goes the normal way.
    for (const d of fs.existsSync(runDir) ? fs.readdirSync(runDir) : []) {
      if (d.startsWith("sandbox-")) execFileSync("bash", [SCRIPT, "down", path.join(runDir, d)]);
    }
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it("stops a dead run's libvirtd, virtlogd and namespace, removes its scratch dirs, keeps a live run's", () => {
    const dead = deadPid();
    const deadSandbox = path.join(runDir, `sandbox-${dead}`);
    fs.mkdirSync(deadSandbox, { recursive: true });
    execFileSync("bash", [SCRIPT, "up", deadSandbox], { stdio: ["ignore", "inherit", "inherit"] });
    const ns = fs.readFileSync(path.join(deadSandbox, "netns"), "utf8").trim();
    const daemons = ["libvirtd", "virtlogd"].map((d) =>
      Number(fs.readFileSync(path.join(deadSandbox, `${d}.pid`), "utf8").trim()),
    );
    for (const pid of daemons) assert.notEqual(state(pid), "", "the daemons run");
    const deadScratch = path.join(runDir, `domain-${dead}-1795788573972`);
    fs.mkdirSync(path.join(deadScratch, "sub"), { recursive: true });
    fs.writeFileSync(path.join(deadScratch, "sub", "FAM"), "x");
    // A live run (this process): its sandbox dir and scratch dir must stay.
    const liveSandbox = path.join(runDir, `sandbox-${process.pid}`);
    const liveScratch = path.join(runDir, `domain-${process.pid}-1795788573972`);
    fs.mkdirSync(liveSandbox, { recursive: true });
    fs.mkdirSync(liveScratch, { recursive: true });
    // Not a run's (no pid in the name): left alone.
    const other = path.join(runDir, "guest-kit");
    fs.mkdirSync(other, { recursive: true });

    const swept = sweepDeadRuns(runDir);

    assert.deepEqual(swept.sort(), [deadSandbox, deadScratch].sort());
    assert.ok(!fs.existsSync(deadSandbox));
    assert.ok(!fs.existsSync(deadScratch));
    for (const pid of daemons) assert.equal(state(pid), "", `daemon ${pid} stopped`);
    assert.ok(!execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).includes(ns), ns);
    for (const kept of [liveSandbox, liveScratch, other]) assert.ok(fs.existsSync(kept), kept);
  });
});
