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
import { librarianSystemdUnit, systemdQuote } from "../../lib/lfs";
import { librarianIni } from "../../lib/librarian";
import {
  LibrarianDb,
  type LibrarianDbInputs,
  type LibrarianDbOutputs,
} from "../../providers/librarianDb";
import {
  LibrarianService,
  type LibrarianServiceInputs,
  type LibrarianServiceOutputs,
} from "../../providers/librarianService";
import { loadSerialized } from "../helpers/engine";
import { PYTHON, TM_LIBRARIAN } from "../helpers/lfs";
import { scratchDir } from "../helpers/sandbox";

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
});

function writeIni(dir: string): string {
  const f = path.join(dir, "librarian.ini");
  fs.writeFileSync(f, librarianIni(GiB, 2));
  return f;
}
