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
/** Logs and CI artifacts, in the checkout: QEMU never opens anything here. */
export const RUN_DIR = path.join(ROOT, ".test-run");
/**
 * What QEMU opens (sandbox state, FAM files, disks, the guest kit) lives here,
 * outside the checkout: the qemu user (libvirt-qemu) cannot enter a clone in
 * /root, in a 0700 home or under `mktemp -d`. Mode 0711 on a sticky /var/tmp.
 */
export const SCRATCH_BASE = process.env.FAME_TEST_SCRATCH ?? "/var/tmp/fame-test";
// One sandbox per test process, so parallel runs never share a libvirtd.
const STATE = path.join(SCRATCH_BASE, `sandbox-${process.pid}`);
const SCRIPT = path.join(ROOT, "test", "harness", "sandbox.sh");
/** The user libvirt runs QEMU as (Debian's libvirt-daemon-system creates it). */
export const QEMU_USER = process.env.FAME_TEST_QEMU_USER ?? "libvirt-qemu";

/** Can the qemu user search (enter) directory `dir`? Asked as that user, so ACLs count. */
export function qemuCanEnter(dir: string): boolean {
  try {
    execFileSync("runuser", ["-u", QEMU_USER, "--", "test", "-x", dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The scratch base, created 0711 and checked to be reachable by the qemu user. */
export function scratchBase(): string {
  fs.mkdirSync(SCRATCH_BASE, { recursive: true, mode: 0o711 });
  if (!qemuCanEnter(SCRATCH_BASE)) {
    throw new Error(
      `test scratch ${SCRATCH_BASE} is not reachable by ${QEMU_USER} (QEMU opens files there): set FAME_TEST_SCRATCH to a directory every ancestor of which ${QEMU_USER} may enter`,
    );
  }
  return SCRATCH_BASE;
}

let uri: string | undefined;

/** Starts the sandbox on first use and returns its libvirt URI. */
export function sandboxUri(): string {
  if (uri) return uri;
  scratchBase();
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
export function sweepDeadRuns(runDir = SCRATCH_BASE): string[] {
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

/** A fresh scratch directory under SCRATCH_BASE, readable by QEMU (libvirt-qemu). */
export function scratchDir(name: string): string {
  const dir = path.join(scratchBase(), `${name}-${process.pid}-${Date.now()}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/**
 * Removes this run's scratch directories once the run is over (its sandbox is
 * stopped first); FAME_TEST_KEEP=1 keeps them for a post-mortem.
 */
export function removeOwnScratch(): void {
  if (process.env.FAME_TEST_KEEP === "1" || !fs.existsSync(SCRATCH_BASE)) return;
  for (const name of fs.readdirSync(SCRATCH_BASE)) {
    const m = SANDBOX_RE.exec(name) ?? SCRATCH_RE.exec(name);
    if (Number(m?.[1]) === process.pid) {
      fs.rmSync(path.join(SCRATCH_BASE, name), { recursive: true, force: true });
    }
  }
}

let imageCache: string | undefined;
/**
 * The golden-image cache the tests build into and boot from:
 * FAME_TEST_IMAGE_CACHE (default /var/cache/fame-test/images), kept across
 * runs. Overlays are backed by its images, so QEMU must reach it; where it
 * cannot (a cache under a 0700 directory), this run builds into a scratch
 * directory of its own instead and says so.
 */
export function testImageCache(): string {
  if (imageCache) return imageCache;
  const wanted = process.env.FAME_TEST_IMAGE_CACHE ?? "/var/cache/fame-test/images";
  fs.mkdirSync(wanted, { recursive: true });
  if (qemuCanEnter(wanted)) {
    imageCache = wanted;
  } else {
    imageCache = scratchDir("images");
    console.error(
      `test image cache: ${wanted} is not reachable by ${QEMU_USER}; this run builds its images in ${imageCache} (removed after the run)`,
    );
  }
  return imageCache;
}

/** virsh against the sandbox (tests inspect libvirt directly, not through fame). */
export function virshOut(...args: string[]): string {
  return execFileSync("virsh", ["-q", "-c", sandboxUri(), ...args], { encoding: "utf8" });
}
