/**
 * The Librarian's torms resources, with the real tm-librarian: the database
 * (book_register) kept like FAM, and librarian.py supervised inside a network
 * namespace of its own (restart on failure, stop on delete). Providers are
 * loaded as the engine loads them (serialized).
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { LMP_LAUNCHER, monitorCommand, pythonHas } from "../../lib/host/librarian";
import { librarianSystemdUnit, monitorSystemdUnit, systemdQuote } from "../../lib/lfs";
import { librarianIni } from "../../lib/librarian";
import { SCHEMA } from "../../lib/schema";
import {
  LibrarianDb,
  type LibrarianDbInputs,
  type LibrarianDbOutputs,
} from "../../providers/librarianDb";
import {
  LibrarianMonitor,
  type LibrarianMonitorInputs,
  type LibrarianMonitorOutputs,
} from "../../providers/librarianMonitor";
import {
  LibrarianService,
  type LibrarianServiceInputs,
  type LibrarianServiceOutputs,
} from "../../providers/librarianService";
import { loadSerialized } from "../helpers/engine";
import { allocatedBooks, LfsLab, PYTHON, shelfBooks, TM_LIBRARIAN } from "../helpers/lfs";
import { RUN_DIR, scratchDir } from "../helpers/sandbox";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Adds a regular-file shelf to a database the way the Librarian would list it (for loss counts). */
function addFile(db: string, name: string): void {
  execFileSync(PYTHON, [
    "-c",
    `import sqlite3,sys
c=sqlite3.connect(sys.argv[1])
c.execute("insert into shelves (creator_id,size_bytes,book_count,ctime,mtime,name,mode,parent_id,link_count) values (0,0,0,0,0,?,33188,2,1)",(sys.argv[2],))
c.commit()`,
    db,
    name,
  ]);
}

describe("LibrarianDb provider (real book_register)", function () {
  this.timeout(120_000);
  let dir: string;
  let db: string;
  const ini2 = librarianIni(GiB, 2);
  const ini2big = librarianIni(2 * GiB, 2);
  let p: Awaited<ReturnType<typeof load>>;

  const load = async () =>
    (
      await loadSerialized<LibrarianDbInputs, LibrarianDbOutputs>(
        () =>
          new LibrarianDb("db", { path: "/x", ini: ini2, tmLibrarian: TM_LIBRARIAN, reset: false }),
      )
    ).provider;
  const inputs = (over: Partial<LibrarianDbInputs> = {}): LibrarianDbInputs => ({
    path: db,
    ini: ini2,
    tmLibrarian: TM_LIBRARIAN,
    reset: false,
    ...over,
  });

  before(async () => {
    dir = scratchDir("librarian-db");
    db = path.join(dir, "librarian.db");
    p = await load();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("check runs the real book_register on the INI against :memory: and reports its verdict, touching nothing", async () => {
    const bad = "[global]\nnode_count = 3\nbook_size_bytes = 8M\nnvm_size_per_node = 682B\n";
    const r = await p.check!({}, inputs({ ini: bad }));
    assert.equal(r.failures?.length, 1);
    assert.equal(r.failures![0]!.property, "ini");
    assert.match(
      r.failures![0]!.reason,
      /^tm-librarian's book_register rejects fame's Librarian INI \(.+\)/,
    );
    assert.deepEqual((await p.check!({}, inputs())).failures, []);
    assert.equal(fs.existsSync(db), false);
  });

  it("check tolerates unknown inputs during preview", async () => {
    const r = await p.check!({}, inputs({ path: UNKNOWN, ini: UNKNOWN }));
    assert.deepEqual(r.failures, []);
    const r2 = await p.check!({}, inputs({ path: UNKNOWN }));
    assert.deepEqual(r2.failures, []);
  });

  it("create builds the database with book_register; a second create adopts it untouched", async () => {
    const out = (await p.create!(inputs())).outs as LibrarianDbOutputs;
    assert.equal(out.info.nodes, 2);
    assert.equal(out.info.book_size_bytes, 8 * 2 ** 20);
    assert.equal(out.info.nvm_bytes_total, GiB);
    assert.equal(out.info.files, 0);
    addFile(db, "kept");
    const before = fs.statSync(db);
    const again = (await p.create!(inputs())).outs as LibrarianDbOutputs;
    assert.equal(again.info.files, 1);
    assert.equal(again.generation, out.generation);
    assert.equal(fs.statSync(db).mtimeMs, before.mtimeMs);
    assert.equal(fs.statSync(db).ino, before.ino);
  });

  it("refuses a layout change in check, saying how many files would be lost, unless reset", async () => {
    addFile(db, "second");
    const olds = {
      ...inputs(),
      info: (await p.read!(db, undefined)).props!.info,
    } as LibrarianDbOutputs;
    const r = await p.check!(olds, inputs({ ini: ini2big }));
    assert.equal(r.failures?.length, 1);
    assert.match(
      r.failures![0]!.reason,
      /would lose 2 file\(s\) and 0 directory\(ies\) under \/lfs/,
    );
    assert.match(r.failures![0]!.reason, /fame:librarianReset/);
    // update without the opt-in refuses too (an `up` that skipped preview).
    await assert.rejects(p.update!(db, olds, inputs({ ini: ini2big })), /refusing to rebuild it/);
    assert.equal(((await p.read!(db, olds)).props as LibrarianDbOutputs).info.files, 2);

    assert.deepEqual((await p.check!(olds, inputs({ ini: ini2big, reset: true }))).failures, []);
    const d = await p.diff!(db, olds, inputs({ ini: ini2big, reset: true }));
    assert.equal(d.changes, true);
    assert.deepEqual(d.replaces, []);
    const rebuilt = (await p.update!(db, olds, inputs({ ini: ini2big, reset: true })))
      .outs as LibrarianDbOutputs;
    assert.equal(rebuilt.info.nvm_bytes_total, 2 * GiB);
    assert.equal(rebuilt.info.files, 0);
  });

  it("delete keeps the database", async () => {
    await p.delete!(db, { ...inputs(), info: {} as LibrarianDbOutputs["info"], generation: "" });
    assert.ok(fs.existsSync(db));
  });
});

describe("LibrarianService provider (supervised in a network namespace)", function () {
  this.timeout(120_000);
  const ns = `fame-t-lib${process.pid}`;
  let dir: string;
  let inputs: LibrarianServiceInputs;
  let p: Awaited<
    ReturnType<typeof loadSerialized<LibrarianServiceInputs, LibrarianServiceOutputs>>
  >["provider"];
  let outs: LibrarianServiceOutputs;
  const inNs = (...cmd: string[]) =>
    spawnSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", timeout: 30_000 });
  const listening = () => inNs("ss", "-Hltn", "sport = :9093").stdout.includes(":9093");
  const childPid = () => Number(fs.readFileSync(path.join(dir, "librarian.pid.child"), "utf8"));
  const waitFor = async (what: string, ok: () => boolean) => {
    const end = Date.now() + 30_000;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  before(async () => {
    dir = scratchDir("librarian-svc");
    execFileSync(PYTHON, [
      path.join(TM_LIBRARIAN, "src", "book_register.py"),
      "-d",
      path.join(dir, "librarian.db"),
      writeIni(dir),
    ]);
    execFileSync("ip", ["netns", "add", ns]);
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    inputs = {
      owner: "fame/test",
      mode: "netns",
      netns: ns,
      stateDir: dir,
      tmLibrarian: TM_LIBRARIAN,
      db: path.join(dir, "librarian.db"),
      dbGeneration: "1",
      port: 9093,
      subnet: "10.213.99.0/24",
      bridge: "br_t",
    };
    p = (
      await loadSerialized<LibrarianServiceInputs, LibrarianServiceOutputs>(
        () => new LibrarianService("svc", inputs),
      )
    ).provider;
  });
  after(async () => {
    if (outs) await p.delete!(outs.unit, outs).catch(() => undefined);
    spawnSync("ip", ["netns", "delete", ns]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("starts librarian.py as a process inside the namespace (where only that network exists)", async () => {
    assert.deepEqual((await p.check!({}, inputs)).failures, []);
    outs = (await p.create!(inputs)).outs as LibrarianServiceOutputs;
    assert.equal(outs.running, true);
    assert.equal(outs.unit, "fame-librarian-fame-test.service");
    await waitFor("librarian.py listening in the namespace", listening);
    assert.equal(
      spawnSync("ip", ["netns", "identify", String(childPid())], {
        encoding: "utf8",
      }).stdout.trim(),
      ns,
    );
  });

  it("restarts librarian.py when it dies", async () => {
    const first = childPid();
    process.kill(first, "SIGKILL");
    await waitFor("a new librarian.py", () => {
      try {
        return childPid() !== first;
      } catch {
        return false;
      }
    });
    await waitFor("the new librarian.py listening", listening);
    assert.equal(((await p.read!(outs.unit, outs)).props as LibrarianServiceOutputs).running, true);
  });

  it("a Librarian stopped out of band shows as a change without a refresh, and update starts it", async () => {
    const pid = Number(fs.readFileSync(path.join(dir, "librarian.pid"), "utf8"));
    process.kill(pid, "SIGTERM");
    await waitFor("the supervisor gone", () => !listening());
    // The recorded state still says running: diff asks the host.
    const d = await p.diff!(outs.unit, outs, inputs);
    assert.deepEqual([d.changes, d.replaces], [true, []]);
    outs = (await p.update!(outs.unit, outs, inputs)).outs as LibrarianServiceOutputs;
    assert.equal(outs.running, true);
    await waitFor("librarian.py listening again", listening);
    assert.equal((await p.diff!(outs.unit, outs, inputs)).changes, false);
  });

  it("delete stops it; read then reports it not running and diff asks to start it again", async () => {
    const child = childPid();
    await p.delete!(outs.unit, outs);
    await waitFor(
      "librarian.py gone",
      () =>
        !fs.existsSync(`/proc/${child}`) ||
        /\) Z/.test(fs.readFileSync(`/proc/${child}/stat`, "utf8")),
    );
    assert.equal(listening(), false);
    const read = (await p.read!(outs.unit, outs)).props as LibrarianServiceOutputs;
    assert.equal(read.running, false);
    assert.equal((await p.diff!(outs.unit, read, inputs)).changes, true);
  });

  it("restarts the service in place when the database was rebuilt (new generation)", async () => {
    const d = await p.diff!(
      "u",
      { ...inputs, unit: "u", running: true },
      { ...inputs, dbGeneration: "2" },
    );
    assert.equal(d.changes, true);
    assert.deepEqual(d.replaces, []);
  });

  it("refuses a netns mode without a namespace or with a missing one, and systemd mode on a host without systemd", async () => {
    const r = await p.check!({}, { ...inputs, netns: "" });
    assert.match(r.failures![0]!.reason, /mode netns needs a network namespace/);
    if (!fs.existsSync("/run/systemd/system")) {
      const s = await p.check!({}, { ...inputs, mode: "systemd" });
      assert.match(s.failures![0]!.reason, /fame:librarian needs systemd on the host/);
    }
    assert.deepEqual((await p.check!({}, { ...inputs, netns: UNKNOWN })).failures, []);
    const missing = `fame-none-${process.pid}`;
    assert.deepEqual((await p.check!({}, { ...inputs, netns: missing })).failures, [
      {
        property: "netns",
        reason: `network namespace "${missing}" does not exist (ip netns list; fame:librarianNetns)`,
      },
    ]);
    assert.deepEqual((await p.check!({}, { ...inputs })).failures, [], "the sandbox's namespace");
  });
});

describe("Librarian systemd unit", () => {
  it("confines the unit to the node subnet and bridge, restarts it, and quotes paths literally", () => {
    const u = librarianSystemdUnit({
      owner: "fame/dev",
      tmLibrarian: "/opt/tm lib",
      db: '/var/lib/fame/a "b" $HOME %n\\x',
      port: 9093,
      subnet: "192.168.42.0/24",
      bridge: "br_node",
    });
    assert.equal(u.name, "fame-librarian-fame-dev.service");
    const lines = u.content.split("\n");
    assert.ok(lines.includes("IPAddressDeny=any"));
    assert.ok(lines.includes("IPAddressAllow=192.168.42.0/24 localhost"));
    assert.ok(lines.includes("RestrictNetworkInterfaces=lo br_node"));
    assert.ok(lines.includes("Restart=on-failure"));
    assert.ok(
      lines.includes(
        'ExecStart=/usr/bin/python3 "/opt/tm lib/src/librarian.py" --db_file "/var/lib/fame/a \\"b\\" $$HOME %%n\\\\x" --port 9093',
      ),
      u.content,
    );
    assert.throws(() => systemdQuote("a\nExecStartPre=/bin/evil"), /line break/);
  });

  it("runs the monitor through fame's launcher on the torms address, confined the same way", () => {
    const u = monitorSystemdUnit({
      owner: "fame/dev",
      command: monitorCommand({
        tmLibrarian: "/opt/tm lib",
        db: "/var/lib/fame/a%b/librarian.db",
        host: "192.168.42.254",
        port: 31179,
        fifo: "/var/lib/fame/a%b/lmp.fifo",
      }),
      url: "http://192.168.42.254:31179/lmp/",
      subnet: "192.168.42.0/24",
      bridge: "br_node",
    });
    assert.equal(u.name, "fame-lmp-fame-dev.service");
    const lines = u.content.split("\n");
    for (const l of [
      "IPAddressDeny=any",
      "IPAddressAllow=192.168.42.0/24 localhost",
      "RestrictNetworkInterfaces=lo br_node",
      "Restart=on-failure",
      "Description=fame Librarian monitor for fame/dev (lmp.py, http://192.168.42.254:31179/lmp/)",
    ])
      assert.ok(lines.includes(l), `${l} in\n${u.content}`);
    assert.ok(
      lines.includes(
        `ExecStart=/usr/bin/python3 "-P" ${systemdQuote(LMP_LAUNCHER)} "--tm_librarian" "/opt/tm lib" "--db_file" "/var/lib/fame/a%%b/librarian.db" "--host" "192.168.42.254" "--port" "31179" "--fifo" "/var/lib/fame/a%%b/lmp.fifo"`,
      ),
      u.content,
    );
    assert.throws(
      () =>
        monitorSystemdUnit({ owner: "o", command: ["python3"], url: "", subnet: "", bridge: "" }),
      /absolute executable/,
    );
  });
});

describe("fame_lmp.py: tm-librarian's lmp.py on Debian's Flask", function () {
  this.timeout(60_000);
  let dir: string;
  let db: string;
  /**
   * The status and body of a page of lmp.py's app (Flask's test client: no
   * socket), imported as `how`, asked as a browser asks (Accept: text/html)
   * or with no Accept header.
   */
  const page = (how: "upstream" | "launcher", url: string, accept: string | null = "text/html") => {
    const load =
      how === "upstream"
        ? `sys.path.insert(0, os.path.join(tm, "src")); import lmp`
        : `sys.path.insert(0, os.path.dirname(sys.argv[3])); import fame_lmp; lmp = fame_lmp.load(tm)`;
    const r = spawnSync(
      PYTHON,
      [
        "-P",
        "-c",
        `import json, os, sys
tm, db = sys.argv[1], sys.argv[2]
${load}
lmp.mainapp.db_file = db
headers = json.loads(sys.argv[5])
r = lmp.mainapp.test_client().get(sys.argv[4], headers=headers)
print(json.dumps([r.status_code, r.get_data(as_text=True)]))`,
        TM_LIBRARIAN,
        db,
        LMP_LAUNCHER,
        url,
        JSON.stringify(accept === null ? {} : { Accept: accept }),
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const [status, body] = JSON.parse(r.stdout) as [number, string];
    // Flask logs a view's exception; its last line names it.
    const error = r.stderr.trim().split("\n").pop() ?? "";
    return [status, body, error] as const;
  };

  before(() => {
    dir = scratchDir("lmp-launcher");
    db = path.join(dir, "librarian.db");
    execFileSync(PYTHON, [
      path.join(TM_LIBRARIAN, "src", "book_register.py"),
      "-d",
      db,
      writeIni(dir),
    ]);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("upstream as is answers every HTML page with 500 (its templates are not where Flask looks), and a request without Accept too", () => {
    for (const url of ["/lmp/", "/lmp/global/", "/lmp/nodes/"]) {
      const [status, , error] = page("upstream", url);
      assert.equal(status, 500, url);
      assert.match(error, /^jinja2\.exceptions\.TemplateNotFound: show_\w+\.html$/, url);
    }
    // Its JSON form works: the data is there.
    const [status, body] = page("upstream", "/lmp/global/", "application/json;version=1.0");
    assert.equal(status, 200);
    assert.equal(JSON.parse(body).memory.total, GiB);
    const [bare, , bareError] = page("upstream", "/lmp/global/", null);
    assert.equal(bare, 500);
    assert.match(bareError, /^KeyError: 'HTTP_ACCEPT'$/);
  });

  it("through fame's launcher the pages render from tm-librarian's templates", () => {
    const [status, html, error] = page("launcher", "/lmp/global/");
    assert.equal(status, 200, error);
    assert.match(html, /<TITLE>LMP - Global Memory Information<\/TITLE>/);
    assert.match(html, new RegExp(`<LI>total -> ${GiB}</LI>`));
    assert.equal(page("launcher", "/lmp/interleaveGroups/")[0], 200);
    const [bare, barePage] = page("launcher", "/lmp/global/", null);
    assert.equal(bare, 200, "no Accept header: the HTML page");
    assert.match(barePage, /<TITLE>LMP - Global Memory Information<\/TITLE>/);
  });

  it("finds Flask for Debian's python3 (a host preflight of the monitor)", async () => {
    assert.equal(await pythonHas("flask"), true);
    assert.equal(await pythonHas("fame_no_such_module"), false);
    await assert.rejects(pythonHas("os; import sys"), /not a Python module name/);
  });
});

describe("LibrarianMonitor provider: lmp.py over a real LFS file, seen in a real browser", function () {
  this.timeout(240_000);
  const ns = `fame-t-lmp${process.pid}`;
  const torms = "10.213.99.254";
  const port = SCHEMA.librarianMonitorPort.default;
  const BOOK = 8 * MiB;
  const file = `monitored-${process.pid}.dat`;
  const fileBytes = 2 * BOOK + 4 * MiB;
  let lab: LfsLab;
  let mnt: string;
  let inputs: LibrarianMonitorInputs;
  let p: Awaited<
    ReturnType<typeof loadSerialized<LibrarianMonitorInputs, LibrarianMonitorOutputs>>
  >["provider"];
  let outs: LibrarianMonitorOutputs | undefined;
  const inNs = (...cmd: string[]) =>
    spawnSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", timeout: 60_000 });
  const listeners = () => inNs("ss", "-Hltn", `sport = :${port}`).stdout;
  const childPid = () => Number(fs.readFileSync(path.join(lab.dir, "lmp.pid.child"), "utf8"));
  const waitFor = async (what: string, ok: () => boolean) => {
    const end = Date.now() + 30_000;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** A view's JSON form, fetched inside the namespace with lmp's versioned Accept header. */
  const json = (view: string) => {
    const r = inNs(
      PYTHON,
      "-c",
      `import sys, urllib.request as u
r = u.urlopen(u.Request(sys.argv[1], headers={"Accept": "application/json;version=1.0"}), timeout=20)
assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
sys.stdout.write(r.read().decode())`,
      `${outs!.url}${view}`,
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  /** Headless Chromium inside the namespace (as root it needs --no-sandbox), on its own profile. */
  const chromium = (...args: string[]) => {
    const profile = path.join(lab.dir, "chromium");
    const r = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        ns,
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        `--user-data-dir=${profile}`,
        ...args,
      ],
      { encoding: "utf8", timeout: 90_000, env: { ...process.env, HOME: profile } },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const dom = (view: string) => chromium("--dump-dom", `${outs!.url}${view}`);
  const screenshot = (view: string, png: string) => {
    fs.mkdirSync(RUN_DIR, { recursive: true });
    const f = path.join(RUN_DIR, png);
    fs.rmSync(f, { force: true });
    chromium(`--screenshot=${f}`, "--window-size=1280,1024", `${outs!.url}${view}`);
    const head = fs.readFileSync(f).subarray(0, 8);
    assert.deepEqual([...head], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${f} is a PNG`);
    assert.ok(fs.statSync(f).size > 10_000, `${f} shows a page`);
  };

  before(async () => {
    // A real cluster's torms side without VMs: book_register, librarian.py and an LFS node
    // (lfs_fuse.py through fame's launcher, stock FUSE) in a private namespace, named for
    // `ip netns`, with torms's address on a node bridge.
    lab = new LfsLab(scratchDir("lmp"), librarianIni(GiB, 2), GiB);
    await lab.startLibrarian();
    execFileSync("ip", ["netns", "attach", ns, String(lab.holder.pid)]);
    execFileSync("ip", ["-n", ns, "link", "add", "br_t", "type", "bridge"]);
    execFileSync("ip", ["-n", ns, "addr", "add", `${torms}/24`, "dev", "br_t"]);
    execFileSync("ip", ["-n", ns, "link", "set", "br_t", "up"]);
    mnt = await lab.startNode(1);
    lab.sh(["truncate", "-s", String(fileBytes), path.join(mnt, file)]);
    inputs = {
      owner: "fame/test",
      mode: "netns",
      netns: ns,
      stateDir: lab.dir,
      tmLibrarian: TM_LIBRARIAN,
      db: lab.db,
      dbGeneration: "1",
      host: torms,
      port,
      subnet: "10.213.99.0/24",
      bridge: "br_t",
    };
    p = (
      await loadSerialized<LibrarianMonitorInputs, LibrarianMonitorOutputs>(
        () => new LibrarianMonitor("lmp", inputs),
      )
    ).provider;
  });
  after(async function () {
    if (outs) await p.delete(outs.unit, outs).catch(() => undefined);
    if (lab) await lab.close();
    spawnSync("ip", ["netns", "delete", ns]);
    // Keep the logs and the database of a failed run for inspection.
    if (lab && this.test?.parent?.tests.every((t) => t.state === "passed"))
      fs.rmSync(lab.dir, { recursive: true, force: true });
  });

  it("starts lmp.py supervised inside the namespace, listening on the torms address only", async () => {
    assert.deepEqual((await p.check({}, inputs)).failures, []);
    outs = (await p.create(inputs)).outs as LibrarianMonitorOutputs;
    assert.equal(outs.running, true);
    assert.equal(outs.unit, "fame-lmp-fame-test.service");
    assert.equal(outs.url, `http://${torms}:${port}/lmp/`);
    await waitFor("lmp.py listening", () => listeners().includes(`:${port}`));
    assert.deepEqual(
      listeners()
        .trim()
        .split("\n")
        .map((l) => l.trim().split(/\s+/)[3]),
      [`${torms}:${port}`],
    );
    assert.equal(
      spawnSync("ip", ["netns", "identify", String(childPid())], {
        encoding: "utf8",
      }).stdout.trim(),
      ns,
    );
  });

  it("its JSON gives the FAM size as total bytes, the file's books as allocated bytes, and the node's heartbeat", () => {
    const books = shelfBooks(lab.db, file);
    assert.equal(books.length, Math.ceil(fileBytes / BOOK));
    assert.equal(allocatedBooks(lab.db), books.length, "the file holds every allocated book");
    // Any request of the node advances its heartbeat; lmp counts a node active for 10 s after one.
    lab.sh(["stat", path.join(mnt, file)]);
    const g = json("global/");
    assert.equal(g.memory.total, GiB, "the FAM size");
    assert.equal(g.memory.allocated, books.length * BOOK);
    assert.equal(g.memory.available, GiB - books.length * BOOK);
    assert.deepEqual([g.socs.total, g.socs.active], [2, 1], "two nodes, node 1 alive");
    const shelf = json(`shelf/${file}`);
    assert.equal(shelf.size, fileBytes);
    assert.equal(shelf.booksize, BOOK);
    assert.deepEqual(
      [...shelf.books].sort((a: number, b: number) => a - b),
      books.map((b) => b.id).sort((a, b) => a - b),
    );
  });

  it("a real browser shows the file's name on /lmp/shelf/, its books on its shelf page, and the allocation on /lmp/global/", () => {
    const books = shelfBooks(lab.db, file);
    const dir = dom("shelf/");
    assert.match(dir, /<title>LMP - List Directory<\/title>/);
    assert.ok(dir.includes(`<li>name -&gt; ${file}</li>`), dir);
    assert.ok(dir.includes(`<li>size -&gt; ${fileBytes}</li>`), dir);
    const shelf = dom(`shelf/${file}`);
    const listed = [...shelf.matchAll(/<li>0x([0-9a-f]{16})<\/li>/g)].map((m) =>
      Number.parseInt(m[1]!, 16),
    );
    assert.equal(listed.length, books.length, "the page lists the file's book count");
    assert.deepEqual(
      listed.sort((a, b) => a - b),
      books.map((b) => b.id).sort((a, b) => a - b),
    );
    const global = dom("global/");
    assert.ok(global.includes(`<li>total -&gt; ${GiB}</li>`), global);
    assert.ok(global.includes(`<li>allocated -&gt; ${books.length * BOOK}</li>`), global);
    // Kept as CI artifacts.
    screenshot("shelf/", "lmp-shelf.png");
    screenshot(`shelf/${file}`, "lmp-shelf-file.png");
    screenshot("global/", "lmp-global.png");
  });

  it("restarts lmp.py when it dies", async () => {
    const first = childPid();
    process.kill(first, "SIGKILL");
    await waitFor("a new lmp.py", () => {
      try {
        return childPid() !== first;
      } catch {
        return false;
      }
    });
    await waitFor("the new lmp.py listening", () => listeners().includes(`${torms}:${port}`));
    assert.equal(json("global/").memory.total, GiB);
    assert.equal(((await p.read(outs!.unit, outs)).props as LibrarianMonitorOutputs).running, true);
  });

  it("restarts in place for a rebuilt database, and replaces for another namespace", async () => {
    const d = await p.diff(outs!.unit, outs!, { ...inputs, dbGeneration: "2" });
    assert.deepEqual([d.changes, d.replaces], [true, []]);
    const n = await p.diff(outs!.unit, outs!, { ...inputs, netns: "other" });
    assert.deepEqual([n.changes, n.replaces, n.deleteBeforeReplace], [true, ["netns"], true]);
  });

  it("refuses a tm-librarian tree without lmp.py or its templates, and a host that is not an address", async () => {
    const empty = scratchDir("lmp-empty");
    try {
      const r = await p.check({}, { ...inputs, tmLibrarian: empty, host: "torms" });
      assert.deepEqual(
        r.failures?.map((f) => f.reason),
        [
          "host torms must be an IPv4 address",
          `${empty} has no src/lmp.py: the Librarian's monitor needs tm-librarian's lmp.py and its templates (or set fame:librarianMonitor false)`,
          `${empty} has no templates/show_global.html: the Librarian's monitor needs tm-librarian's lmp.py and its templates (or set fame:librarianMonitor false)`,
        ],
      );
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it("delete stops it and removes its FIFO, keeping the database; diff then asks to start it again", async () => {
    const child = childPid();
    assert.ok(fs.lstatSync(path.join(lab.dir, "lmp.fifo")).isFIFO());
    await p.delete(outs!.unit, outs!);
    await waitFor(
      "lmp.py gone",
      () =>
        !fs.existsSync(`/proc/${child}`) ||
        /\) Z/.test(fs.readFileSync(`/proc/${child}/stat`, "utf8")),
    );
    assert.equal(listeners().trim(), "");
    assert.equal(fs.existsSync(path.join(lab.dir, "lmp.fifo")), false);
    assert.ok(fs.existsSync(lab.db));
    const read = (await p.read(outs!.unit, outs)).props as LibrarianMonitorOutputs;
    assert.equal(read.running, false);
    assert.equal((await p.diff(outs!.unit, read, inputs)).changes, true);
    outs = undefined;
  });
});

function writeIni(dir: string): string {
  const f = path.join(dir, "librarian.ini");
  fs.writeFileSync(f, librarianIni(GiB, 2));
  return f;
}
