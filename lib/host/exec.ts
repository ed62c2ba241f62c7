/**
 * Runs host commands with argument arrays (never a shell) and classifies
 * failures, so callers can tell "not found" from "cannot connect".
 */
import { spawn } from "node:child_process";

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
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
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

/** Whether a process exists (one owned by another user counts: EPERM). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
