/**
 * Runs host commands with argument arrays (never a shell) and classifies
 * failures, so callers can tell "not found" from "cannot connect". It also
 * stops the commands of a provider process whose Pulumi engine is gone.
 */
import { spawn } from "node:child_process";
// Not `fs`: a serialized provider binds each free name once, and `fs` is node:fs/promises elsewhere.
import * as fsSync from "node:fs";
import { cmdline, commandsOf, processTable, procInfo, signalAll, signalTree } from "./proc";

export type HostErrorKind = "not-found" | "unreachable" | "missing-tool" | "other";

/** An Error with the command, its stderr and a kind; plain (no class) so it survives serialization. */
export interface HostError extends Error {
  kind: HostErrorKind;
  command: string[];
  stderr: string;
}

export interface RunOptions {
  /** Text written to the command's standard input. */
  input?: string;
  /** Kill the command after this many milliseconds (default 120 s). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Called with each line the command writes (stdout and stderr), for progress logs. */
  onLine?: (line: string) => void;
}

const NOT_FOUND = [
  /domain not found/i,
  /network not found/i,
  /no (domain|network) with matching/i,
  /storage volume not found/i,
];
/**
 * What virsh prints for a name it could not look up, whatever the reason (it
 * drops libvirt's own error: not found, access denied, internal error). Alone,
 * it is "not-found" for lib/host/virsh.ts to confirm against libvirt's list;
 * with another error line after it, that line decides.
 */
const LOOKUP_FAILED = /failed to get (domain|network)/i;
const UNREACHABLE = [
  /failed to connect/i,
  /cannot recv data/i,
  /end of file while reading data/i,
  /failed to connect socket/i,
  /no connection driver available/i,
  /unable to connect to server/i,
  /connection refused/i,
];

export function classify(stderr: string): HostErrorKind {
  if (UNREACHABLE.some((re) => re.test(stderr))) return "unreachable";
  if (NOT_FOUND.some((re) => re.test(stderr))) return "not-found";
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (lines.length > 0 && lines.every((l) => LOOKUP_FAILED.test(l))) return "not-found";
  return "other";
}

export function hostError(
  kind: HostErrorKind,
  command: string[],
  stderr: string,
  message: string,
): HostError {
  return Object.assign(new Error(message), { kind, command, stderr, name: "HostError" });
}

export function isHostError(e: unknown, kind?: HostErrorKind): e is HostError {
  return (
    e instanceof Error &&
    typeof (e as Partial<HostError>).kind === "string" &&
    (kind === undefined || (e as HostError).kind === kind)
  );
}

/** Runs `command` with `args`; resolves with stdout, rejects with a HostError. */
export function run(
  command: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<string> {
  const argv = [command, ...args];
  // FAME_VERBOSE (inherited from `pulumi` by the provider process) traces every host command.
  if (process.env.FAME_VERBOSE) console.error(`fame: $ ${argv.join(" ")}`);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C", ...opts.env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    // The command's own children too: one left holding the pipes would keep it from closing.
    const timer = setTimeout(
      () => (child.pid ? signalTree(child.pid, "SIGKILL") : child.kill("SIGKILL")),
      opts.timeoutMs ?? 120_000,
    );
    const lines = (d: Buffer) => {
      if (opts.onLine) for (const l of d.toString("utf8").split("\n")) if (l.trim()) opts.onLine(l);
    };
    child.stdout.on("data", (d: Buffer) => {
      out.push(d);
      lines(d);
    });
    child.stderr.on("data", (d: Buffer) => {
      err.push(d);
      lines(d);
    });
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const kind = e.code === "ENOENT" ? "missing-tool" : "other";
      const hint = kind === "missing-tool" ? ` (is ${command} installed and on PATH?)` : "";
      reject(hostError(kind, argv, "", `${command}: ${e.message}${hint}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8").trim();
      if (code === 0) return resolve(stdout);
      const why = signal ? `killed by ${signal}` : `exit ${code}`;
      reject(
        hostError(classify(stderr), argv, stderr, `${argv.join(" ")} failed (${why}): ${stderr}`),
      );
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/**
 * Whether a process runs (one owned by another user counts: EPERM). A zombie
 * does not: it has ended and only waits for its parent to collect it, so a
 * lock or work directory it left is free (a builder just stopped by a waiter
 * in the same process is one until the event loop reaps it).
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  return procInfo(pid)?.state !== "Z";
}

/** Whether `script` (process.argv[1]) is @pulumi/pulumi's dynamic-provider, which runs fame's providers. */
export function inDynamicProvider(script = process.argv[1] ?? ""): boolean {
  return /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]dynamic-provider(?:[\\/]|$)/.test(script);
}

/** The shell script the engine starts the Node.js dynamic provider through (it does not exec). */
const PROVIDER_WRAPPER = /pulumi-resource-pulumi-nodejs/;

/**
 * Once per process: stops every command this process started, and then the
 * process, when the Pulumi engine that started it is gone (a killed or
 * closed `pulumi up`). The engine starts the provider as engine -> sh wrapper
 * -> node, in a process group of its own, and holds the write end of its
 * stdin and the read ends of its stdout and stderr; it kills that group when
 * it ends normally, but a killed engine cannot, and the orphan would go on
 * building (holding the image build lock) and spin on EPIPE: the SDK's
 * uncaught-error handler logs each failed write to stderr, which fails again.
 * Any of these means the engine is gone: the parent, or the wrapper's parent,
 * changes (re-parented to init or a subreaper); stdin, when a pipe, ends;
 * writing stdout or stderr fails. Commands get SIGTERM (a chance to clean
 * up; the build's own error path removes its directory), then SIGKILL after
 * `graceMs`. They stay in the plugin's
 * process group rather than groups of their own, so the engine's own group
 * kill (Ctrl-C, shutdown) keeps reaching them; they are found as this
 * process's descendants, and through the group when it is the plugin's own
 * (led by this process or by the wrapper), which also catches commands
 * re-parented after their parent died. A group led by anything else is
 * never signalled, nor a daemon started detached (lib/host/proc commandsOf),
 * which is meant to outlive this process.
 */
export function watchEngine(opts: { intervalMs?: number; graceMs?: number } = {}): void {
  const g = globalThis as { __fameEngineWatch?: boolean };
  if (g.__fameEngineWatch) return;
  g.__fameEngineWatch = true;
  const intervalMs = opts.intervalMs ?? 1000;
  const graceMs = opts.graceMs ?? 3000;
  const parent = process.ppid;
  const viaWrapper = PROVIDER_WRAPPER.test(cmdline(parent));
  const engine = viaWrapper ? procInfo(parent)?.ppid : undefined;
  const group = procInfo(process.pid)?.pgid;
  const ownGroup =
    group !== undefined && (group === process.pid || (viaWrapper && group === parent))
      ? group
      : undefined;
  const ours = (): Set<number> => {
    const table = processTable();
    const members = table.filter((p) => ownGroup !== undefined && p.pgid === ownGroup);
    const all = new Set([...commandsOf(process.pid, table), ...members.map((p) => p.pid)]);
    all.delete(process.pid);
    return all;
  };
  let stopping = false;
  let poll: NodeJS.Timeout | undefined;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    clearInterval(poll);
    // Likely read by no one (the engine is gone); harmless with stderr's error handler below.
    console.error(`fame: the Pulumi engine is gone (${why}): stopping this provider's commands`);
    signalAll(ours(), "SIGTERM");
    const until = Date.now() + graceMs;
    const finish = setInterval(() => {
      const left = ours();
      if (left.size > 0 && Date.now() < until) return;
      clearInterval(finish);
      signalAll(left, "SIGKILL");
      process.exit(1);
    }, 100);
  };
  poll = setInterval(() => {
    if (process.ppid !== parent) stop(`parent ${parent} is gone`);
    else if (engine !== undefined && procInfo(parent)?.ppid !== engine)
      stop(`engine ${engine} is gone`);
  }, intervalMs);
  poll.unref();
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") stop("its output pipe is closed");
    });
  }
  let stdinIsPipe = false;
  try {
    stdinIsPipe = fsSync.fstatSync(0).isFIFO();
  } catch {
    /* no stdin */
  }
  if (stdinIsPipe) {
    process.stdin.on("error", () => undefined);
    process.stdin.on("end", () => stop("stdin closed"));
    process.stdin.resume();
    // Watching must never keep a process alive.
    (process.stdin as { unref?: () => void }).unref?.();
  }
}
