/**
 * The test sandbox itself (test/harness/sandbox.sh): a fresh libvirtd runs
 * under a child subreaper, so the QEMU capability probe of its first define
 * never waits on a zombie that a lazy PID 1 has not reaped, and the probe is
 * kept (not repeated on every lookup, as a root-only /dev/kvm made it). The time a first
 * define takes goes to bench/ (bench/run.ts), not into an assertion here.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { scratchBase } from "../helpers/sandbox";

const SCRIPT = path.join(__dirname, "sandbox.sh");

function sh(...args: string[]): void {
  execFileSync("bash", [SCRIPT, ...args], {
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 120_000,
  });
}

function parentComm(pid: number): string {
  const ppid = /^PPid:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return fs.readFileSync(`/proc/${ppid}/comm`, "utf8").trim();
}

/** A domain with no disk and no NIC: defining it makes libvirtd probe QEMU's capabilities. */
const DOMAIN_XML = `<domain type="qemu">
  <name>probe01</name>
  <memory unit="KiB">65536</memory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64" machine="pc">hvm</type></os>
</domain>
`;

describe("test sandbox (sandbox.sh) on a fresh libvirtd", function () {
  this.timeout(300_000);
  // Its own state dir: a libvirtd that has never probed QEMU (the shared sandbox may have).
  const state = path.join(scratchBase(), `sandbox-${process.pid}-fresh`);

  before(() => {
    fs.mkdirSync(state, { recursive: true });
    sh("up", state);
  });
  after(() => {
    sh("down", state);
    assert.ok(!fs.existsSync(state), "down removes the state dir");
  });

  it("runs libvirtd and virtlogd under tini as a child subreaper", () => {
    for (const daemon of ["libvirtd", "virtlogd"]) {
      const pid = Number(fs.readFileSync(path.join(state, `${daemon}.pid`), "utf8").trim());
      assert.equal(fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim(), daemon);
      assert.equal(parentComm(pid), "tini", `${daemon}'s parent`);
      const tini = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^PPid:\s*(\d+)$/m)?.[1];
      const cmd = fs.readFileSync(`/proc/${tini}/cmdline`, "utf8").split("\0");
      assert.deepEqual(cmd.slice(0, 3), ["tini", "-s", "--"], "tini -s: registered as subreaper");
    }
  });

  it("completes a first define (QEMU capability probe) within the 120 s that killed it before", () => {
    const uri = fs.readFileSync(path.join(state, "uri"), "utf8").trim();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-probe-"));
    const xml = path.join(tmp, "probe01.xml");
    fs.writeFileSync(xml, DOMAIN_XML);
    // Killed after 120 s, the limit the unfixed sandbox hit on machines with a lazy PID 1.
    execFileSync("virsh", ["-q", "-c", uri, "define", xml], { timeout: 120_000, stdio: "pipe" });
    assert.match(
      execFileSync("virsh", ["-q", "-c", uri, "domstate", "probe01"], { encoding: "utf8" }),
      /shut off/,
    );
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("keeps that probe: later lookups do not probe QEMU again (a root-only /dev/kvm made every one re-probe)", () => {
    const uri = fs.readFileSync(path.join(state, "uri"), "utf8").trim();
    const caps = path.join(state, "root", "cache", "qemu", "capabilities");
    const saved = () =>
      fs
        .readdirSync(caps)
        .map((f) => `${f}@${fs.statSync(path.join(caps, f)).mtimeMs}`)
        .sort();
    const before = saved();
    assert.ok(before.length > 0, "the first define saved a probe");
    // Each of these looks the capabilities up; a re-probe saves the file again.
    for (let i = 0; i < 3; i++) {
      execFileSync("virsh", ["-q", "-c", uri, "domcapabilities", "--virttype", "qemu"], {
        stdio: "pipe",
      });
      execFileSync("virsh", ["-q", "-c", uri, "dumpxml", "probe01"], { stdio: "pipe" });
    }
    assert.deepEqual(saved(), before, "libvirtd probed QEMU again");
    // And a domain still starts (libvirt could not carry a hidden /dev/kvm into a domain's own /dev).
    execFileSync("virsh", ["-q", "-c", uri, "start", "probe01"], { stdio: "pipe" });
    try {
      assert.match(
        execFileSync("virsh", ["-q", "-c", uri, "domstate", "probe01"], { encoding: "utf8" }),
        /running/,
      );
    } finally {
      execFileSync("virsh", ["-q", "-c", uri, "destroy", "probe01"], { stdio: "pipe" });
    }
    assert.deepEqual(saved(), before, "libvirtd probed QEMU again to start a domain");
  });
});
