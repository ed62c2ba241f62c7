/**
 * An LFS lab on the host, without VMs: the real tm-librarian (book_register,
 * librarian.py) and LFS daemons started through fame's launcher
 * (templates/lfs/fame_lfs.py) on one plain shadow file, under stock FUSE.
 *
 * Everything runs inside a private network + mount namespace made by
 * `unshare` (a holder process keeps it alive): the Librarian's socket, which
 * listens on every interface, only has that namespace's `lo`, and the FUSE
 * mounts are invisible to the host. Commands enter it with `nsenter`.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROOT, scratchDir } from "./sandbox";

/** tm-librarian source used by the tests (GPL-2, never copied into the repo). */
/**
 * The vendored tm-librarian (never copied into this repository): beside the
 * checkout in ../shared/vendor, or where FAME_TM_LIBRARIAN points (the PR
 * workflow checks it out). Missing is a broken setup, not a skip.
 */
export const TM_LIBRARIAN =
  process.env.FAME_TM_LIBRARIAN ?? path.resolve(ROOT, "..", "shared", "vendor", "tm-librarian");
/** Debian's interpreter: python3-fusepy and python3-psutil are installed for it. */
export const PYTHON = "/usr/bin/python3";
export const LFS_TEMPLATES = path.join(ROOT, "templates", "lfs");
export const LAUNCHER = path.join(LFS_TEMPLATES, "fame_lfs.py");

/** Runs Python with fame's adapter directory first on sys.path and tm-librarian's src after it. */
export function adapterPython(code: string, ...args: string[]): string {
  return execFileSync(PYTHON, ["-P", "-c", code, ...args], {
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: `${LFS_TEMPLATES}:${path.join(TM_LIBRARIAN, "src")}` },
  });
}

/** The command line of fame's LFS launcher for a node on this host (Librarian at 127.0.0.1). */
export function launcherArgv(o: {
  node: number;
  /** Default: the launcher's own (9093). */
  port?: number;
  shadowFile: string;
  mountpoint: string;
}): string[] {
  return [
    PYTHON,
    "-P",
    LAUNCHER,
    "--tm_librarian",
    TM_LIBRARIAN,
    "--node",
    String(o.node),
    "--hostname",
    "127.0.0.1",
    ...(o.port === undefined ? [] : ["--port", String(o.port)]),
    "--shadow_file",
    o.shadowFile,
    "--mountpoint",
    o.mountpoint,
  ];
}

export interface Book {
  /** LZA, as the Librarian stores it. */
  id: number;
  intlvGroup: number;
  bookNum: number;
  seq: number;
}

/** The books of a file, from the Librarian's database, in file order. */
export function shelfBooks(db: string, name: string): Book[] {
  const out = execFileSync(
    PYTHON,
    [
      "-c",
      `import sqlite3,sys,json
c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True)
r=c.execute("select b.id,b.intlv_group,b.book_num,bos.seq_num from shelves s join books_on_shelves bos on bos.shelf_id=s.id join books b on b.id=bos.book_id where s.name=? order by bos.seq_num",(sys.argv[2],)).fetchall()
print(json.dumps(r))`,
      db,
      name,
    ],
    { encoding: "utf8" },
  );
  return (JSON.parse(out) as number[][]).map(([id, ig, num, seq]) => ({
    id: id!,
    intlvGroup: ig!,
    bookNum: num!,
    seq: seq!,
  }));
}

/** One number from a read-only query of a Librarian database. */
function dbCount(db: string, sql: string): number {
  const script = `import sqlite3,sys
c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True)
print(c.execute(sys.argv[2]).fetchone()[0])`;
  return Number(execFileSync(PYTHON, ["-c", script, db, sql], { encoding: "utf8" }).trim());
}

/** Count of allocated books (any state but free) in a Librarian database. */
export function allocatedBooks(db: string): number {
  return dbCount(db, "select count(*) from books where allocated!=0");
}

/** Files waiting for their books to be zeroed and freed (upstream's unlink workflow). */
export function zeroing(db: string): number {
  return dbCount(db, "select count(*) from shelves where name like '.lfs_pending_zero_%'");
}

/** Books per interleave group (node), from the database's FAModules. */
export function booksPerNode(db: string): number {
  return dbCount(db, "select count(*) from books where intlv_group=0");
}

export class LfsLab {
  readonly holder: ChildProcess;
  readonly procs: ChildProcess[] = [];
  readonly db: string;
  readonly fam: string;
  readonly port = 9093;
  /** Pid of each node's LFS daemon (nsenter execs it: the same process). */
  readonly nodePids = new Map<number, number>();

  /** A namespace with `lo` up, a database built from `ini`, and a FAM file of `famBytes`. */
  constructor(
    readonly dir: string,
    ini: string,
    famBytes: number,
  ) {
    this.db = path.join(dir, "librarian.db");
    this.fam = path.join(dir, "FAM");
    fs.writeFileSync(path.join(dir, "librarian.ini"), ini);
    execFileSync(PYTHON, [
      path.join(TM_LIBRARIAN, "src", "book_register.py"),
      "-f",
      "-d",
      this.db,
      path.join(dir, "librarian.ini"),
    ]);
    fs.closeSync(fs.openSync(this.fam, "w"));
    fs.truncateSync(this.fam, famBytes);
    this.holder = spawn(
      "unshare",
      [
        "--net",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "ip link set lo up && exec sleep 100000",
      ],
      { stdio: "ignore" },
    );
  }

  /** Runs a command inside the lab's namespaces (synchronously). */
  run(
    cmd: string[],
    input?: string | Buffer,
  ): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync("nsenter", ["-t", String(this.holder.pid), "-n", "-m", "--", ...cmd], {
      input,
      encoding: "utf8",
      timeout: 120_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like run, but throws with stderr unless the command succeeds. */
  sh(cmd: string[], input?: string | Buffer): string {
    const r = this.run(cmd, input);
    if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  private start(name: string, cmd: string[]): ChildProcess {
    const log = fs.openSync(path.join(this.dir, `${name}.log`), "a");
    const p = spawn("nsenter", ["-t", String(this.holder.pid), "-n", "-m", "--", ...cmd], {
      stdio: ["ignore", log, log],
    });
    fs.closeSync(log);
    this.procs.push(p);
    return p;
  }

  async waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** fame's lfs_offsets.py for `node`'s mount: FAM offsets of a file's books (see its --help). */
  offsetsCommand(mountpoint: string, node: number): string[] {
    return [
      PYTHON,
      "-P",
      path.join(LFS_TEMPLATES, "lfs_offsets.py"),
      "--tm_librarian",
      TM_LIBRARIAN,
      "--hostname",
      "127.0.0.1",
      "--mountpoint",
      mountpoint,
      "--shadow_file",
      this.fam,
      "--node",
      String(node),
    ];
  }

  async startLibrarian(): Promise<ChildProcess> {
    await this.waitFor("the lab namespace", () =>
      this.run(["ip", "link", "show", "lo", "up"]).stdout.includes("UP"),
    );
    const p = this.start("librarian", [
      PYTHON,
      path.join(TM_LIBRARIAN, "src", "librarian.py"),
      "--db_file",
      this.db,
      "--port",
      String(this.port),
    ]);
    await this.waitFor("librarian.py listening", () =>
      this.run(["ss", "-Hltn", `sport = :${this.port}`]).stdout.includes(String(this.port)),
    );
    return p;
  }

  mounted(mountpoint: string): boolean {
    return this.run(["grep", "-q", ` ${mountpoint} fuse `, "/proc/self/mounts"]).status === 0;
  }

  /** Starts an LFS daemon as fame node `node` through fame's launcher and waits for its mount. */
  async startNode(node: number, extra: string[] = []): Promise<string> {
    const mnt = path.join(this.dir, `lfs${node}`);
    fs.mkdirSync(mnt, { recursive: true });
    const p = this.start(`lfs${node}`, [
      ...launcherArgv({ node, port: this.port, shadowFile: this.fam, mountpoint: mnt }),
      ...extra,
    ]);
    this.nodePids.set(node, p.pid!);
    await this.waitFor(`the LFS mount of node ${node}`, () => this.mounted(mnt));
    return mnt;
  }

  /** Unmounts every LFS mount, stops every process the lab started, ends the namespace. */
  async close(): Promise<void> {
    for (const m of fs
      .readdirSync(this.dir)
      .filter((f) => f.startsWith("lfs") && !f.endsWith(".log"))) {
      const mnt = path.join(this.dir, m);
      if (this.mounted(mnt)) this.run(["umount", mnt]);
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const p of [...this.procs, this.holder]) {
      if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    }
    await Promise.all(
      [...this.procs, this.holder].map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const t = setTimeout(() => {
              p.kill("SIGKILL");
              resolve();
            }, 5000);
            p.once("exit", () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}

/**
 * The adapter tests' lab: 2 nodes x 64 books of 8M = 1G, on a FAM file of 2G
 * (an unused tail shows nothing resizes it), the Librarian, and an LFS daemon
 * per node started with `args`.
 */
export async function startTwoNodeLab(
  name: string,
  args: string[] = [],
): Promise<{ lab: LfsLab; m1: string; m2: string }> {
  const ini = "[global]\nnode_count = 2\nbook_size_bytes = 8M\nnvm_size_per_node = 64B\n";
  const lab = new LfsLab(scratchDir(name), ini, 2 * 1024 * 2 ** 20);
  await lab.startLibrarian();
  const m1 = await lab.startNode(1, args);
  const m2 = await lab.startNode(2, args);
  return { lab, m1, m2 };
}

/** Closes a lab after its suite; keeps its logs and database when a test of the suite failed. */
export async function closeLab(lab: LfsLab | undefined, ctx: Mocha.Context): Promise<void> {
  if (!lab) return;
  await lab.close();
  if (ctx.test?.parent?.tests.every((t) => t.state === "passed"))
    fs.rmSync(lab.dir, { recursive: true });
}
