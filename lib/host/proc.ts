/**
 * What /proc says about processes: parent, group, start time, command line
 * and work done. Used to stop what a provider started once its engine is
 * gone, and to tell a working image builder from a stuck one.
 */
// Not `fs`: a serialized provider binds each free name once, and `fs` is node:fs/promises elsewhere.
import * as fsSync from "node:fs";

export interface ProcInfo {
  pid: number;
  /** R, S, D, Z (a zombie: ended, not yet reaped), ... */
  state: string;
  ppid: number;
  /** Process group. */
  pgid: number;
  /** Session: a process that started its own (a daemon) means to outlive its parent. */
  sid: number;
  /** Start time in clock ticks after boot: with the pid, names one process for good. */
  start: number;
  /** CPU ticks used by it and by the children it waited for. */
  cpu: number;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses. */
export function parseStat(text: string): ProcInfo | undefined {
  const close = text.lastIndexOf(")");
  const pid = Number.parseInt(text, 10);
  if (close < 0 || !Number.isSafeInteger(pid)) return undefined;
  // After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime
  const f = text
    .slice(close + 2)
    .split(" ")
    .map((s) => Number(s));
  const state = text.slice(close + 2, close + 3);
  const [ppid, pgid, sid, start] = [f[1], f[2], f[3], f[19]];
  if (ppid === undefined || pgid === undefined || sid === undefined || start === undefined)
    return undefined;
  const cpu = (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0);
  return { pid, state, ppid, pgid, sid, start, cpu };
}

/** The process `pid`, or undefined when there is none. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    return parseStat(fsSync.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs (a zombie has ended). */
export function running(pid: number): boolean {
  const p = procInfo(pid);
  return p !== undefined && p.state !== "Z";
}

/** Every process on the host. */
export function processTable(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of fsSync.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const p = procInfo(Number(entry));
    if (p) out.push(p);
  }
  return out;
}

/** The children, grandchildren, ... of `pid` (not `pid` itself). */
export function descendants(pid: number, table: ProcInfo[] = processTable()): number[] {
  const children = new Map<number, number[]>();
  for (const p of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const out: number[] = [];
  const walk = (parent: number) => {
    for (const c of children.get(parent) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** The command line of `pid`, space separated ("" when it is gone). */
export function cmdline(pid: number): string {
  try {
    return fsSync
      .readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .replace(/\0+$/, "")
      .replace(/\0/g, " ");
  } catch {
    return "";
  }
}

/** Bytes `pid` read and wrote through system calls, sockets included (0 when unreadable). */
function ioBytes(pid: number): number {
  try {
    const io = fsSync.readFileSync(`/proc/${pid}/io`, "utf8");
    const n = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, "m").exec(io)?.[1] ?? 0);
    return n("rchar") + n("wchar");
  } catch {
    return 0;
  }
}

/**
 * A fingerprint of the work `pid`'s commands (`commandsOf`) do: it changes
 * when one of them uses CPU, reads or writes (a download counts), starts or
 * ends. `pid` itself is left out: a process spinning on its own proves nothing.
 */
export function treeActivity(pid: number): string {
  return commandsOf(pid)
    .sort((a, b) => a - b)
    .map((d) => `${d}:${procInfo(d)?.cpu ?? "-"}:${ioBytes(d)}`)
    .join(" ");
}

/** Sends `signal` to each of `pids`, ignoring those already gone. */
export function signalAll(pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone, or not ours to signal */
    }
  }
}

/**
 * What `pid` started and still runs as its commands: its descendants in its
 * own session. A daemon it started detached (the Librarian's supervisor) is
 * in a session of its own, and so are its children: they are left alone.
 */
export function commandsOf(pid: number, table: ProcInfo[] = processTable()): number[] {
  const sid = table.find((p) => p.pid === pid)?.sid;
  const bySid = new Map(table.map((p) => [p.pid, p.sid]));
  return descendants(pid, table).filter((d) => bySid.get(d) === sid);
}

/**
 * Sends `signal` to `pid` and its commands (`commandsOf`). The tree is read
 * first: once `pid` dies its children are re-parented and no longer found under it.
 */
export function signalTree(pid: number, signal: NodeJS.Signals): void {
  const below = commandsOf(pid);
  signalAll([pid, ...below], signal);
}
