/**
 * The Librarian on torms: its database (built by tm-librarian's real
 * book_register.py) and the librarian.py service. Commands run with argument
 * arrays; config values never pass through a shell.
 */
import { execFileSync, spawn } from "node:child_process";
import * as fsSync from "node:fs";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { parseSize } from "../units";
import { run } from "./exec";

export const PYTHON = "/usr/bin/python3";
const TORMS_TEMPLATES = path.join(__dirname, "..", "..", "templates", "torms");
export const DB_TOOL = path.join(TORMS_TEMPLATES, "fame_librarian_db.py");
export const SUPERVISOR = path.join(TORMS_TEMPLATES, "fame_supervise.py");

export interface DbInfo {
  book_size_bytes: number;
  nvm_bytes_total: number;
  nodes: number;
  books: number;
  allocated_books: number;
  files: number;
  directories: number;
}

/** The layout an INI asks for, parsed as book_register reads fame's three keys. */
export function iniLayout(
  ini: string,
): { nodes: number; bookBytes: number; nvmBytesTotal: number } | undefined {
  const get = (k: string) => new RegExp(`^\\s*${k}\\s*=\\s*(\\S+)\\s*$`, "m").exec(ini)?.[1];
  const nodes = Number(get("node_count"));
  const bookBytes = parseSize(get("book_size_bytes") ?? "") ?? Number.NaN;
  const perNode = get("nvm_size_per_node") ?? "";
  const perNodeBytes = perNode.endsWith("B")
    ? Number(perNode.slice(0, -1)) * bookBytes
    : (parseSize(perNode) ?? Number.NaN);
  if (![nodes, bookBytes, perNodeBytes].every(Number.isSafeInteger)) return undefined;
  return { nodes, bookBytes, nvmBytesTotal: nodes * perNodeBytes };
}

/** Does an existing database have the layout the INI asks for? */
export function dbMatchesIni(info: DbInfo, ini: string): boolean {
  const l = iniLayout(ini);
  return (
    l !== undefined &&
    info.nodes === l.nodes &&
    info.book_size_bytes === l.bookBytes &&
    info.nvm_bytes_total === l.nvmBytesTotal
  );
}

async function withIniFile<T>(ini: string, f: (file: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fame-ini-"));
  try {
    const file = path.join(dir, "librarian.ini");
    await fs.writeFile(file, ini);
    return await f(file);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** book_register's verdict on an INI, against an in-memory database (nothing on disk). */
export async function checkIni(tmLibrarian: string, ini: string): Promise<string | undefined> {
  return withIniFile(ini, async (file) => {
    try {
      await run(PYTHON, [
        path.join(tmLibrarian, "src", "book_register.py"),
        "-d",
        ":memory:",
        file,
      ]);
      return undefined;
    } catch (e) {
      const stderr = ((e as { stderr?: string }).stderr ?? String(e)).trim();
      return stderr.split("\n").filter(Boolean).pop() ?? "rejected";
    }
  });
}

export async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** Identity of the database file (its inode): changes exactly when the file is rebuilt. */
export async function dbGeneration(db: string): Promise<string> {
  return String((await fs.stat(db)).ino);
}

/** Facts about a database file, or undefined when there is none. */
export async function dbInfo(db: string): Promise<DbInfo | undefined> {
  if (!(await exists(db))) return undefined;
  return JSON.parse(await run(PYTHON, [DB_TOOL, "info", db])) as DbInfo;
}

/**
 * Builds a database from the INI with book_register, aside, then renames it
 * over `db` (so a failed build leaves the old one). Replacing an existing
 * database is the caller's decision (the reset opt-in).
 */
export async function buildDb(tmLibrarian: string, ini: string, db: string): Promise<DbInfo> {
  await fs.mkdir(path.dirname(db), { recursive: true });
  const next = `${db}.fame-new`;
  await fs.rm(next, { force: true });
  try {
    await withIniFile(ini, (file) =>
      run(PYTHON, [path.join(tmLibrarian, "src", "book_register.py"), "-d", next, file]),
    );
    await fs.chmod(next, 0o600);
    // librarian.py runs SQLite in WAL mode: an old database's journal must not be replayed onto the new one.
    await fs.rm(`${db}-wal`, { force: true });
    await fs.rm(`${db}-shm`, { force: true });
    await fs.rename(next, db);
  } finally {
    // A failed build leaves no part-made database beside the real one.
    await fs.rm(next, { force: true }).catch(() => undefined);
  }
  const info = await dbInfo(db);
  if (!info) throw new Error(`book_register left no database at ${db}`);
  return info;
}

/**
 * Synchronous program-time check: the message refusing a database rebuild
 * (existing database of another layout, no reset opt-in), else undefined.
 */
export function librarianDbRefusal(db: string, ini: string, reset: boolean): string | undefined {
  if (reset || !fsSync.existsSync(db)) return undefined;
  const info = JSON.parse(
    execFileSync(PYTHON, [DB_TOOL, "info", db], { encoding: "utf8" }),
  ) as DbInfo;
  if (dbMatchesIni(info, ini)) return undefined;
  const l = iniLayout(ini);
  return `the Librarian database ${db} was built for ${info.nodes} node(s) and ${info.nvm_bytes_total} bytes of books; this configuration (${l?.nodes} node(s), ${l?.nvmBytesTotal} bytes) needs a new database, which would lose ${lossMessage(info)}. Keep fame:famSize and fame:nodes, or set fame:librarianReset true to rebuild it`;
}

export function lossMessage(info: DbInfo): string {
  return `${info.files} file(s) and ${info.directories} directory(ies) under /lfs, ${info.allocated_books} allocated book(s)`;
}

// ---- the services: supervised processes (in a network namespace) ----

/** fame's launcher of tm-librarian's monitoring server (lmp.py) on stock Debian. */
export const LMP_LAUNCHER = path.join(TORMS_TEMPLATES, "fame_lmp.py");

/** A supervised service of a stack: its pid files and log are `<stateDir>/<name>.*`. */
export type ServiceName = "librarian" | "lmp";

export interface SupervisedArgs {
  /** Directory for the pid file and log. */
  stateDir: string;
  name: ServiceName;
  /** Network namespace to run in (`ip netns exec`); empty: the host's. */
  netns: string;
  /** The command kept running (argv, no shell). */
  command: string[];
}

/** librarian.py serving `db` on `port` (it listens on every interface). */
export function librarianCommand(tmLibrarian: string, db: string, port: number): string[] {
  return [
    PYTHON,
    path.join(tmLibrarian, "src", "librarian.py"),
    "--db_file",
    db,
    "--port",
    String(port),
  ];
}

/** lmp.py through fame's launcher: `db` read-only, listening on `host`:`port` only. */
export function monitorCommand(a: {
  tmLibrarian: string;
  db: string;
  host: string;
  port: number;
  fifo: string;
}): string[] {
  return [
    PYTHON,
    "-P",
    LMP_LAUNCHER,
    "--tm_librarian",
    a.tmLibrarian,
    "--db_file",
    a.db,
    "--host",
    a.host,
    "--port",
    String(a.port),
    "--fifo",
    a.fifo,
  ];
}

/** Can Debian's python3 import `module` (a dotted module name)? */
export async function pythonHas(module: string): Promise<boolean> {
  if (!/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/.test(module))
    throw new RangeError(`not a Python module name: ${module}`);
  return run(PYTHON, ["-c", `import ${module}`]).then(
    () => true,
    () => false,
  );
}

/** lmp.py's "Fabric %" FIFO (its /fab/ view) of a stack. */
export function monitorFifo(stateDir: string): string {
  return path.join(stateDir, "lmp.fifo");
}

export function pidFile(stateDir: string, name: ServiceName): string {
  return path.join(stateDir, `${name}.pid`);
}

async function readPid(file: string): Promise<number | undefined> {
  const n = Number((await fs.readFile(file, "utf8").catch(() => "")).trim());
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** The pid of this stack's running supervisor of `name` (checked by its command line), if any. */
export async function supervisorPid(
  stateDir: string,
  name: ServiceName,
): Promise<number | undefined> {
  const pid = await readPid(pidFile(stateDir, name));
  if (pid === undefined) return undefined;
  const cmd = await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  const argv = cmd.split("\0");
  return argv.includes(SUPERVISOR) && argv.includes(pidFile(stateDir, name)) ? pid : undefined;
}

/** The pid of the process the supervisor runs now, if any. */
export async function supervisedPid(
  stateDir: string,
  name: ServiceName,
): Promise<number | undefined> {
  if ((await supervisorPid(stateDir, name)) === undefined) return undefined;
  return readPid(`${pidFile(stateDir, name)}.child`);
}

/** Starts a command under fame's supervisor (restart on failure), detached; waits for its pid file. */
export async function startSupervised(a: SupervisedArgs): Promise<number> {
  const running = await supervisorPid(a.stateDir, a.name);
  if (running !== undefined) return running;
  await fs.mkdir(a.stateDir, { recursive: true });
  const cmd = [
    PYTHON,
    SUPERVISOR,
    "--pidfile",
    pidFile(a.stateDir, a.name),
    "--log",
    path.join(a.stateDir, `${a.name}.log`),
    "--",
    ...a.command,
  ];
  const [exe, ...argv] = a.netns ? ["ip", "netns", "exec", a.netns, ...cmd] : cmd;
  // Detached (its own session) and with no pipes to us, so it outlives the provider process.
  const child = spawn(exe ?? PYTHON, argv, { detached: true, stdio: "ignore" });
  child.on("error", () => undefined);
  child.unref();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const pid = await supervisorPid(a.stateDir, a.name);
    if (pid !== undefined && (await supervisedPid(a.stateDir, a.name)) !== undefined) return pid;
    if (Date.now() > deadline)
      throw new Error(`the ${a.name} supervisor did not start (see ${a.stateDir}/${a.name}.log)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the supervisor (which stops its command); waits until it is gone. */
export async function stopSupervised(stateDir: string, name: ServiceName): Promise<void> {
  const pid = await supervisorPid(stateDir, name);
  if (pid === undefined) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 15_000;
  while (await exists(`/proc/${pid}`)) {
    const state = (await fs.readFile(`/proc/${pid}/stat`, "utf8").catch(() => "")).split(") ")[1];
    if (!state || state.startsWith("Z")) break;
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Does the named network namespace (`ip netns add`) exist? */
export async function netnsExists(name: string): Promise<boolean> {
  return !name.includes("/") && exists(path.join("/run/netns", name));
}

// ---- the service: a systemd unit per stack ----

export const SYSTEMD_DIR = "/etc/systemd/system";

export async function hasSystemd(): Promise<boolean> {
  return exists("/run/systemd/system");
}

export async function installUnit(unitName: string, content: string): Promise<void> {
  const file = path.join(SYSTEMD_DIR, unitName);
  await fs.writeFile(`${file}.fame-new`, content, { mode: 0o644 });
  await fs.rename(`${file}.fame-new`, file);
  await run("systemctl", ["daemon-reload"]);
  await run("systemctl", ["enable", unitName]);
  await run("systemctl", ["restart", unitName]);
}

export async function unitActive(unitName: string): Promise<boolean> {
  return run("systemctl", ["is-active", "--quiet", unitName]).then(
    () => true,
    () => false,
  );
}

export async function removeUnit(unitName: string): Promise<void> {
  const file = path.join(SYSTEMD_DIR, unitName);
  if (!(await exists(file))) return;
  await run("systemctl", ["disable", "--now", unitName]).catch(() => undefined);
  await fs.rm(file, { force: true });
  await run("systemctl", ["daemon-reload"]);
}
