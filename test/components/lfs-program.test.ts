import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { librarianIni } from "../../lib/librarian";
import { PYTHON, TM_LIBRARIAN } from "../helpers/lfs";
import { runProgram, runProgramRefused } from "../helpers/mocks";
import { scratchDir } from "../helpers/sandbox";

const T = (t: string) => `pulumi-nodejs:dynamic/fame:${t}`;
const GiB = 2 ** 30;
const VENDOR = TM_LIBRARIAN;
/** A 2-node stack with the Librarian on, from the vendored tm-librarian. */
const LIB_ON = {
  nodes: "2",
  famSize: "1G",
  dir: "/srv/fame",
  librarian: "true",
  librarianSource: VENDOR,
} as const;

describe("program under mocks: the Librarian", function () {
  this.timeout(120_000);

  it("registers nothing of the Librarian when it is off (the default)", async () => {
    const run = await runProgram({ nodes: "2", famSize: "1G", dir: "/srv/fame" });
    assert.equal(run.ofType(T("LibrarianDb")).length, 0);
    assert.equal(run.ofType(T("LibrarianService")).length, 0);
    assert.equal(run.ofType(T("LibrarianMonitor")).length, 0);
    const recipe = run.ofType(T("GoldenImage"))[0]!.inputs.recipe as { packages: string[] };
    assert.ok(!recipe.packages.includes("python3-fusepy"));
    assert.equal(run.exports.librarianDb, undefined);
    assert.ok(!("librarianMonitorUrl" in run.exports));
  });

  it("with it on: a database from fame's INI in <dir>, a confined service per stack, and an LFS image", async () => {
    const run = await runProgram({
      nodes: "2",
      famSize: "1G",
      dir: "/srv/fame",
      librarian: "true",
      librarianSource: VENDOR,
      octets123: "10.9.8",
    });
    const [db] = run.ofType(T("LibrarianDb"));
    assert.equal(db?.inputs.path, "/srv/fame/librarian.db");
    assert.equal(db?.inputs.ini, librarianIni(GiB, 2));
    assert.equal(db?.inputs.tmLibrarian, path.resolve(TM_LIBRARIAN));
    assert.equal(db?.inputs.reset, false);
    const [svc] = run.ofType(T("LibrarianService"));
    assert.equal(svc?.inputs.mode, "systemd");
    assert.equal(svc?.inputs.subnet, "10.9.8.0/24");
    assert.equal(svc?.inputs.bridge, "br_node");
    assert.equal(svc?.inputs.port, 9093);
    assert.equal(svc?.inputs.owner, "fame/test");
    const recipe = run.ofType(T("GoldenImage"))[0]!.inputs.recipe as {
      packages: string[];
      files: { path: string }[];
    };
    assert.ok(recipe.packages.includes("python3-fusepy"));
    assert.ok(recipe.files.some((f) => f.path === "/etc/systemd/system/fame-lfs.service"));
    assert.equal(run.exports.librarianDb, "/srv/fame/librarian.db");
    assert.equal(run.exports.librarianUnit, "fame-librarian-fame-test.service");
    // The monitor comes with it, the same way, on torms's address.
    const [mon] = run.ofType(T("LibrarianMonitor"));
    assert.equal(mon?.inputs.mode, "systemd");
    assert.equal(mon?.inputs.host, "10.9.8.254");
    assert.equal(mon?.inputs.port, 31179);
    assert.equal(mon?.inputs.db, "/srv/fame/librarian.db");
    assert.equal(mon?.inputs.subnet, "10.9.8.0/24");
    assert.equal(mon?.inputs.bridge, "br_node");
    assert.equal(mon?.inputs.stateDir, "/srv/fame");
    assert.equal(run.exports.librarianMonitorUrl, "http://10.9.8.254:31179/lmp/");
  });

  it("fame:librarianMonitor false leaves the monitor out, and its port moves it without touching the nodes", async () => {
    const cfg = LIB_ON;
    const on = await runProgram(cfg);
    const off = await runProgram({ ...cfg, librarianMonitor: "false" });
    assert.equal(off.ofType(T("LibrarianMonitor")).length, 0);
    assert.equal(off.ofType(T("LibrarianService")).length, 1);
    assert.ok(!("librarianMonitorUrl" in off.exports));
    const moved = await runProgram({ ...cfg, librarianMonitorPort: "8080", librarianNetns: "lab" });
    const [mon] = moved.ofType(T("LibrarianMonitor"));
    assert.deepEqual(
      [mon?.inputs.port, mon?.inputs.mode, mon?.inputs.netns],
      [8080, "netns", "lab"],
    );
    assert.equal(moved.exports.librarianMonitorUrl, "http://192.168.42.254:8080/lmp/");
    // The monitor is torms's alone: the node image is the same with it on, off or moved.
    const key = (r: typeof on) => r.ofType(T("GoldenImage"))[0]!.inputs.key;
    assert.equal(key(off), key(on));
    assert.equal(key(moved), key(on));
  });

  it("fame:lfsFuse 3 boots the nodes with fame.lfs_fuse=3 from the same image; the default adds no argument", async () => {
    const cfg = LIB_ON;
    const two = await runProgram(cfg);
    const three = await runProgram({ ...cfg, lfsFuse: "3" });
    const cmdlines = (r: typeof two) => r.ofType(T("Domain")).map((d) => String(d.inputs.cmdline));
    assert.equal(cmdlines(three).length, 2);
    for (const c of cmdlines(three)) assert.match(c, / fame\.lfs_fuse=3( |$)/);
    for (const c of cmdlines(two)) assert.doesNotMatch(c, /lfs_fuse/);
    // Both libraries are in the LFS image: choosing one never replaces a disk.
    const key = (r: typeof two) => r.ofType(T("GoldenImage"))[0]!.inputs.key;
    assert.equal(key(three), key(two));
  });

  it("with fame:librarianNetns: the supervised service in that namespace, and the same node image", async () => {
    const cfg = LIB_ON;
    const unit = await runProgram(cfg);
    const run = await runProgram({ ...cfg, librarianNetns: "fame-lab" });
    const [svc] = run.ofType(T("LibrarianService"));
    assert.equal(svc?.inputs.mode, "netns");
    assert.equal(svc?.inputs.netns, "fame-lab");
    assert.equal(svc?.inputs.stateDir, "/srv/fame");
    // How the host runs the Librarian is not part of the nodes: no disk is replaced by switching.
    const key = (r: typeof run) => r.ofType(T("GoldenImage"))[0]!.inputs.key;
    assert.equal(key(run), key(unit));
  });

  it("refuses more than 80 nodes and a missing tm-librarian directory before registering anything", async () => {
    const many = await runProgramRefused({
      nodes: "81",
      famSize: "64G",
      librarian: "true",
      librarianSource: VENDOR,
    });
    assert.match(
      many.error.message,
      /fame:nodes = "81": must be at most 80 while fame:librarian is on/,
    );
    assert.equal(many.resources.length, 0);
    const missing = await runProgramRefused({
      nodes: "2",
      famSize: "1G",
      librarian: "true",
      librarianSource: "/nonexistent/tm-librarian",
    });
    assert.match(
      missing.error.message,
      /fame:librarianSource: \/nonexistent\/tm-librarian does not exist/,
    );
    assert.equal(missing.resources.length, 0);
  });

  it("refuses a FAM grow that needs a new database, saying how many files would be lost, unless reset", async () => {
    const dir = scratchDir("lfs-program");
    try {
      const ini = path.join(dir, "librarian.ini");
      fs.writeFileSync(ini, librarianIni(GiB, 2));
      const db = path.join(dir, "librarian.db");
      execFileSync(PYTHON, [path.join(TM_LIBRARIAN, "src", "book_register.py"), "-d", db, ini]);
      execFileSync(PYTHON, [
        "-c",
        `import sqlite3,sys
c=sqlite3.connect(sys.argv[1])
c.execute("insert into shelves (creator_id,size_bytes,book_count,ctime,mtime,name,mode,parent_id,link_count) values (0,0,0,0,0,'data',33188,2,1)")
c.commit()`,
        db,
      ]);
      const cfg = { nodes: "2", dir, librarian: "true", librarianSource: VENDOR };
      const same = await runProgram({ ...cfg, famSize: "1G" });
      assert.equal(same.ofType(T("LibrarianDb")).length, 1);
      const grow = await runProgramRefused({ ...cfg, famSize: "2G" });
      assert.match(grow.error.message, /^refusing this change \(nothing was changed\):/);
      assert.match(grow.error.message, /would lose 1 file\(s\) and 0 directory\(ies\) under \/lfs/);
      assert.match(grow.error.message, /fame:librarianReset/);
      assert.equal(grow.resources.length, 0);
      const more = await runProgramRefused({ ...cfg, nodes: "4", famSize: "1G" });
      assert.match(more.error.message, /was built for 2 node\(s\)/);
      const reset = await runProgram({ ...cfg, famSize: "2G", librarianReset: "true" });
      assert.equal(reset.ofType(T("LibrarianDb"))[0]?.inputs.reset, true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
