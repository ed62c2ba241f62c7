/**
 * A private libvirtd for the tests, started once per run inside a network
 * namespace and private mount namespace made by test/harness/sandbox.sh, so
 * no bridge, dnsmasq or guest ever touches the host's network or a libvirtd
 * the tests did not start. Torn down by the root hook below.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export const ROOT = path.join(__dirname, "..", "..");
export const RUN_DIR = path.join(ROOT, ".test-run");
// One sandbox per test process, so parallel runs never share a libvirtd.
const STATE = path.join(RUN_DIR, `sandbox-${process.pid}`);
const SCRIPT = path.join(ROOT, "test", "harness", "sandbox.sh");

let uri: string | undefined;

/** Starts the sandbox on first use and returns its libvirt URI. */
export function sandboxUri(): string {
  if (uri) return uri;
  fs.mkdirSync(STATE, { recursive: true });
  execFileSync("bash", [SCRIPT, "up", STATE], {
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 120_000,
  });
  uri = fs.readFileSync(path.join(STATE, "uri"), "utf8").trim();
  return uri;
}

/** The network namespace the sandbox runs in (for running commands beside the guests). */
export function sandboxNetns(): string {
  sandboxUri();
  return fs.readFileSync(path.join(STATE, "netns"), "utf8").trim();
}

/** The sandbox's state dir (libvirt's /etc/libvirt is <state>/root/etc, for inspecting saved definitions). */
export function sandboxStateDir(): string {
  sandboxUri();
  return STATE;
}

/** Stops or starts only the sandbox's libvirtd (guests keep running). */
export function sandboxDaemon(action: "stop-libvirtd" | "start-libvirtd"): void {
  sandboxUri();
  execFileSync("bash", [SCRIPT, action, STATE], {
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 120_000,
  });
}

export function stopSandbox(): void {
  if (!uri) return;
  uri = undefined;
  execFileSync("bash", [SCRIPT, "down", STATE], {
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 120_000,
  });
}

/** Is `pid` a live process (zombies count as gone)? */
function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** sandbox-<pid>[-suffix]: a sandbox state dir; <name>-<pid>-<ms>: a scratchDir. */
const SANDBOX_RE = /^sandbox-(\d+)(-.+)?$/;
const SCRATCH_RE = /^.+-(\d+)-(\d{13})$/;

/**
 * Removes what killed test runs left in `runDir` (like testcontainers' reaper),
 * and only what belongs to a run whose process is gone: for a sandbox state
 * dir, `sandbox.sh down` stops its libvirtd, virtlogd and guests, deletes its
 * recorded fame-t-* network namespace and the dir; scratch dirs are removed.
 * Another run's namespaces and daemons (not recorded in a dead run's state
 * dir) are never touched. Returns the paths it removed.
 */
export function sweepDeadRuns(runDir = RUN_DIR): string[] {
  const swept: string[] = [];
  if (!fs.existsSync(runDir)) return swept;
  for (const name of fs.readdirSync(runDir)) {
    const full = path.join(runDir, name);
    const sandbox = SANDBOX_RE.exec(name);
    const scratch = sandbox ? undefined : SCRATCH_RE.exec(name);
    const pid = Number((sandbox ?? scratch)?.[1]);
    if (!pid || pidAlive(pid) || !fs.statSync(full).isDirectory()) continue;
    if (sandbox) {
      console.error(`sandbox: sweeping ${full} (test run ${pid} is gone)`);
      execFileSync("bash", [SCRIPT, "down", full], {
        stdio: ["ignore", "inherit", "inherit"],
        timeout: 120_000,
      });
      // down keeps files it did not create; the dead run's dir goes entirely.
      fs.rmSync(full, { recursive: true, force: true });
    } else {
      fs.rmSync(full, { recursive: true, force: true });
    }
    swept.push(full);
  }
  return swept;
}

/** A fresh scratch directory under .test-run, readable by QEMU (libvirt-qemu). */
export function scratchDir(name: string): string {
  const dir = path.join(RUN_DIR, `${name}-${process.pid}-${Date.now()}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(RUN_DIR, 0o755);
  return dir;
}

/** virsh against the sandbox (tests inspect libvirt directly, not through fame). */
export function virshOut(...args: string[]): string {
  return execFileSync("virsh", ["-q", "-c", sandboxUri(), ...args], { encoding: "utf8" });
}
