/**
 * fame's LFS adapter on libfuse 3 (`fame_lfs.py --fuse 3`, templates/lfs/fusepy3.py;
 * fame:lfsFuse 3) without a VM: the real Librarian and two
 * unmodified lfs_fuse.py daemons on one shadow file, as test/lfs/adapter.test.ts
 * runs them on libfuse 2, in a private network + mount namespace.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  adapterPython,
  allocatedBooks,
  closeLab,
  type LfsLab,
  PYTHON,
  shelfBooks,
  startTwoNodeLab,
  TM_LIBRARIAN,
  zeroing,
} from "../helpers/lfs";

const MiB = 2 ** 20;

const py = adapterPython;

describe("LFS adapter on libfuse 3: pure parts", () => {
  it("turns lfs_fuse.py's fusepy options into libfuse 3's arguments", () => {
    const out = py(`from fusepy3 import mount_args
print(mount_args(dict(dev=True, allow_other=True, noatime=True, noexec=True, foreground=True, nothreads=True, big_writes=True, suid=False, fsname="LibrarianFS"), "X", "/lfs"))`);
    assert.equal(
      out.trim(),
      "['fuse', '-f', '-s', '-o', 'fsname=LibrarianFS,dev,allow_other,noatime,noexec', '/lfs']",
      "fusepy's loop options become flags; big_writes (libfuse 3 refuses it) and false ones go",
    );
  });

  it("lays out libfuse 3's structures as its headers do (fh at 16, write_buf the 37th operation)", () => {
    const out = py(`import ctypes, fusepy3 as f
print(f.fuse_file_info.fh.offset, ctypes.sizeof(f.fuse_file_info), f.fuse_operations.write_buf.offset // 8,
      f.fuse_operations.fallocate.offset // 8, ctypes.sizeof(f.fuse_operations), ctypes.sizeof(f.fuse_buf),
      f.fuse_bufvec.buf.offset)`);
    // offsetof/sizeof from <fuse.h> of Debian 12's libfuse3-dev 3.14 (fuse_operations: 42
    // pointers) and 13's 3.17, whose fuse_buf ends with mem_size (48 bytes; 3.14's is 40).
    assert.equal(out.trim(), "16 40 36 39 336 48 24");
  });

  it("takes --fuse 2 or 3, with any fast paths", () => {
    const out = py(`from fame_lfs import fuse_and_fast as f
print(f("2", None), f("2", "none"), f("3", None), f("3", "handle,copy"))
try:
    f("4", None); print("accepted 4")
except SystemExit as e:
    print("refused", e)`);
    const lines = out.trim().split("\n");
    assert.equal(lines[0], "('2', 'all') ('2', 'none') ('3', 'all') ('3', 'handle,copy')");
    assert.match(lines[1] ?? "", /refused --fuse '4': expected 2 .* or 3/);
  });

  it("takes the FUSE library from fame.lfs_fuse= on the kernel command line (fame:lfsFuse), else 2", () => {
    const out = py(`from fame_lfs import fuse_from_cmdline as f
print(f("root=/dev/vda fame.node=2"), f("fame.lfs_fuse=3 fame.node=1"), f("fame.lfs_fuse=3 fame.lfs_fuse=2"))`);
    assert.equal(out.trim(), "2 3 2");
  });

  it("mounts lfs_fuse.py's TMFS through libfuse 3 with every fast path; outside a request the context is this process's", () => {
    const out = py(`import os, fame_lfs, fusepy3, lfs_fast
fame_lfs.install_adapter(${JSON.stringify(path.join(TM_LIBRARIAN, "src"))}, None, "3")
import tm_fuse as t
assert issubclass(t.TMFS, fusepy3.FUSE3) and issubclass(t.TMFS, lfs_fast.FastTMFS)
print(sorted(t.TMFS.features))
print(t.tmfs_get_context() == (os.getuid(), os.getgid(), os.getpid()))
print(fusepy3.request_context())`);
    assert.deepEqual(out.trim().split("\n"), [
      "['copy', 'grow', 'handle', 'size', 'xattr', 'zero']",
      "True",
      "None",
    ]);
  });
});

/** What getxattr user.fame.stats answers (lfs_fast.py): round trips by command, requests by size. */
interface Stats {
  features: string[];
  librarian: Record<string, number>;
  ops: Record<string, { count: number; sizes: Record<string, number> }>;
}

for (const fast of ["all", "none"])
  describe(`LFS adapter on libfuse 3 (--fast ${fast}): two daemons on one shadow file, real Librarian`, function () {
    this.timeout(300_000);
    let lab: LfsLab;
    let m1: string;
    let m2: string;

    before(async () => {
      ({ lab, m1, m2 } = await startTwoNodeLab("lfs-fuse3", ["--fuse", "3", "--fast", fast]));
    });

    after(async function () {
      await closeLab(lab, this);
    });

    it("mounts through libfuse 3 with 1 MiB readahead", () => {
      const opts = lab.sh(["findmnt", "-no", "SOURCE,FSTYPE,OPTIONS", m1]).trim();
      assert.match(opts, /^LibrarianFS fuse .*allow_other/);
      const dev = lab.sh(["mountpoint", "-d", m1]).trim();
      assert.equal(fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, "utf8").trim(), "1024");
    });

    it("truncate allocates books; bytes written on node 1 read back on node 2 after close/open", () => {
      const before = allocatedBooks(lab.db);
      lab.sh(["truncate", "-s", "20M", path.join(m1, "data")]);
      assert.equal(shelfBooks(lab.db, "data").length, 3);
      assert.equal(allocatedBooks(lab.db) - before, 3);
      const data = Buffer.alloc(20 * MiB);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i ^ 0x5a5a5a5a, i);
      lab.sh(["dd", `of=${path.join(m1, "data")}`, "bs=1M", "conv=notrunc", "status=none"], data);
      const back = execFileSync(
        "nsenter",
        ["-t", String(lab.holder.pid), "-n", "-m", "--", "cat", path.join(m2, "data")],
        { maxBuffer: 64 * MiB },
      );
      assert.equal(back.length, data.length);
      assert.ok(back.equals(data), "node 2 reads node 1's bytes");
    });

    it("moves 1 MiB per request; with the fast paths, no Librarian round trip per request", async () => {
      const stats = (): Stats =>
        JSON.parse(
          lab.sh([
            PYTHON,
            "-c",
            "import os, sys; print(os.getxattr(sys.argv[1], 'user.fame.stats').decode())",
            m1,
          ]),
        );
      const moved = (cmd: string[], op: string) => {
        const b = stats();
        lab.sh(cmd);
        const a = stats();
        const sizes = Object.fromEntries(
          Object.entries(a.ops[op]?.sizes ?? {})
            .map(([k, v]) => [k, v - (b.ops[op]?.sizes[k] ?? 0)] as const)
            .filter(([, v]) => v > 0),
        );
        const trips = (x: Stats) =>
          Object.entries(x.librarian)
            .filter(([c]) => c !== "heartbeat")
            .reduce((n, [, v]) => n + v, 0);
        const by = Object.entries(a.librarian)
          .map(([c, v]) => `${c} ${v - (b.librarian[c] ?? 0)}`)
          .filter((x) => !x.endsWith(" 0"))
          .join(", ");
        return { sizes, trips: trips(a) - trips(b), by };
      };
      const file = path.join(m1, "seq16");
      const w = moved(
        ["dd", "if=/dev/zero", `of=${file}`, "bs=1M", "count=16", "status=none"],
        "write",
      );
      assert.deepEqual(w.sizes, { [MiB]: 16 }, "16 write requests of 1 MiB");
      const r = moved(["dd", `if=${file}`, "of=/dev/null", "bs=1M", "status=none"], "read");
      assert.deepEqual(r.sizes, { [MiB]: 16 }, "16 read requests of 1 MiB (read_ahead_kb 1024)");
      if (fast === "all") {
        assert.ok(
          stats().features.includes("copy"),
          "copy: one copy between the request and the FAM",
        );
        // A few per file (create, a grow per new book, the size at close, lookups), none per request.
        assert.ok(w.trips <= 12, `writing 16 MiB took ${w.trips} round trips (${w.by})`);
        assert.ok(r.trips <= 8, `reading 16 MiB took ${r.trips} round trips (${r.by})`);
      } else {
        assert.ok(
          w.trips >= 16 && r.trips >= 16,
          `upstream: one or more per request (${w.trips}, ${r.trips})`,
        );
      }
      lab.sh(["rm", file]);
      await lab.waitFor("seq16's books to be freed", () => zeroing(lab.db) === 0, 120_000);
    });

    it("close-to-open: a node that read a file reads another node's later write at its next open", async () => {
      const file = (m: string) => path.join(m, "coherent");
      lab.sh(["sh", "-c", `printf first-version > ${file(m1)}`]);
      assert.equal(lab.sh(["cat", file(m2)]), "first-version", "node 2 reads (and caches) it");
      lab.sh(["sh", "-c", `printf SECOND > ${file(m1)}`]);
      // The attribute timeout (1 s, as fusepy's) passes before node 2 opens it again.
      lab.sh(["sleep", "1.2"]);
      assert.equal(lab.sh(["cat", file(m2)]), "SECOND", "not node 2's cached pages");
      lab.sh(["rm", file(m1)]);
      await lab.waitFor("coherent's books to be freed", () => zeroing(lab.db) === 0, 120_000);
    });

    it("a write past the end grows the file at the Librarian; stat, ls and rename see it", () => {
      lab.sh(["sh", "-c", `printf hello > ${path.join(m1, "small")}`]);
      assert.equal(lab.sh(["stat", "-c", "%s", path.join(m2, "small")]).trim(), "5");
      assert.equal(shelfBooks(lab.db, "small").length, 1);
      lab.sh(["mv", path.join(m2, "small"), path.join(m2, "renamed")]);
      assert.equal(lab.sh(["cat", path.join(m1, "renamed")]), "hello");
      assert.equal(lab.run(["stat", path.join(m1, "small")]).status, 1, "the old name is gone");
      const names = lab.sh(["ls", "-1", m1]).trim().split("\n");
      assert.ok(names.includes("renamed") && names.includes("data"), names.join(","));
      // security.* (ls asks for security.selinux): upstream's empty answer, through the bridge.
      const xattr = lab.sh([
        PYTHON,
        "-c",
        "import os, sys; print(repr(os.getxattr(sys.argv[1], 'security.selinux')))",
        path.join(m1, "renamed"),
      ]);
      assert.equal(xattr.trim(), "b''");
    });

    it("fallocate allocates books through libfuse 3", async () => {
      lab.sh(["fallocate", "-l", "16M", path.join(m2, "falloc")]);
      assert.equal(shelfBooks(lab.db, "falloc").length, 2);
      assert.equal(lab.sh(["stat", "-c", "%s", path.join(m1, "falloc")]).trim(), String(16 * MiB));
      lab.sh(["rm", path.join(m1, "falloc")]);
      await lab.waitFor("falloc's books to be freed", () => zeroing(lab.db) === 0, 120_000);
    });

    it("statfs answers the Librarian's totals", () => {
      const [bsize, blocks] = lab
        .sh(["stat", "-f", "-c", "%S %b", m1])
        .trim()
        .split(" ")
        .map(Number);
      assert.ok((bsize ?? 0) > 0 && (blocks ?? 0) > 0, `${bsize} ${blocks}`);
    });

    it("rm frees the file's books, and the name can be created again", async () => {
      const before = allocatedBooks(lab.db);
      lab.sh(["rm", path.join(m1, "data")]);
      await lab.waitFor(
        "the books of data to be freed",
        () => allocatedBooks(lab.db) === before - 3 && zeroing(lab.db) === 0,
        120_000,
      );
      assert.equal(lab.run(["stat", path.join(m2, "data")]).status, 1);
      lab.sh(["sh", "-c", `printf again > ${path.join(m2, "data")}`]);
      assert.equal(lab.sh(["cat", path.join(m1, "data")]), "again");
    });

    it("left the shadow (FAM) file's size alone; SIGTERM unmounts", async () => {
      assert.equal(fs.statSync(lab.fam).size, 2 * 1024 * MiB);
      process.kill(lab.nodePids.get(2) as number, "SIGTERM");
      await lab.waitFor("node 2's unmount", () => !lab.mounted(m2), 30_000);
    });
  });
