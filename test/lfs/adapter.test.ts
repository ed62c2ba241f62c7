/**
 * fame's LFS node adapter (templates/lfs: tm_fuse stand-in + fame_lfs.py
 * launcher) without a VM: the real tm-librarian book_register and
 * librarian.py, two real lfs_fuse.py daemons (nodes 1:1:1 and 1:1:2) on one
 * plain shadow file, stock FUSE (/dev/fuse, Debian's python3-fusepy), all in
 * a private network + mount namespace.
 */
import * as assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  adapterPython,
  allocatedBooks,
  booksPerNode,
  closeLab,
  type LfsLab,
  launcherArgv,
  PYTHON,
  shelfBooks,
  startTwoNodeLab,
  zeroing,
} from "../helpers/lfs";

const MiB = 2 ** 20;
const BOOK = 8 * MiB;

/** What getxattr user.fame.stats answers (templates/lfs/lfs_fast.py). */
interface AdapterStats {
  features: string[];
  librarian: Record<string, number>;
  ops: Record<
    string,
    { count: number; seconds: number; bytes: number; sizes: Record<string, number> }
  >;
}

const py = adapterPython;

describe("LFS adapter: pure parts", () => {
  it("maps fame node N to a physloc whose Librarian node id is N, for every node 1..80", () => {
    const out = py(`import json
from fame_lfs import physloc_for_node
from frdnode import FRDnode
print(json.dumps([[n, physloc_for_node(n), FRDnode(physloc_for_node(n)).node_id] for n in range(1, 81)]))`);
    const rows = JSON.parse(out) as [number, string, number][];
    assert.equal(rows.length, 80);
    for (const [n, loc, id] of rows) {
      assert.equal(id, n, `node ${n} -> ${loc} -> Librarian node ${id}`);
      assert.match(loc, /^1:[1-8]:([1-9]|10)$/);
    }
    assert.equal(rows[0]![1], "1:1:1");
    assert.equal(rows[1]![1], "1:1:2");
    assert.equal(rows[10]![1], "1:2:1");
  });

  it("refuses node numbers the Librarian cannot place", () => {
    const out = py(`from fame_lfs import physloc_for_node
for n in (0, 81, 253, -1, True, "3"):
    try:
        physloc_for_node(n); print("accepted", repr(n))
    except ValueError as e:
        print("refused", repr(n), e)`);
    assert.doesNotMatch(out, /accepted/);
    assert.match(out, /refused 81 node 81 has no Librarian location: LFS supports nodes 1\.\.80/);
  });

  it("reads fame.node=N from a kernel command line", () => {
    const out = py(`from fame_lfs import node_from_cmdline as f
print(f("root=/dev/vda rw console=ttyS0 systemd.hostname=node07 fame.node=7"), f("quiet"), f("fame.node=2 fame.node=12"))
try:
    f("fame.node=x")
except ValueError as e:
    print("refused", e)`);
    assert.equal(out, "7 None 12\nrefused fame.node=x is not a node number\n");
  });

  it("hands libfuse big_writes, a fallocate entry and a getattr that ignores the file handle; context only inside a request", () => {
    // libfuse's main loop replaced by a recorder: the table TMFS builds is inspected directly.
    const out = py(`import ctypes, json, os, fusepy, tm_fuse
seen = {}
class Fake:
    def fuse_main_real(self, argc, argv, ops, size, user):
        seen["argv"] = [argv[i].decode() for i in range(argc)]
        seen["size"] = size
        o = ops.contents
        seen["fallocate"] = bool(ctypes.cast(o.fallocate, ctypes.c_void_p).value)
        seen["poll"] = bool(o.poll)
        st = fusepy.c_stat()
        fi = fusepy.fuse_file_info(); fi.fh = 42
        seen["fgetattr_rc"] = o.fgetattr(b"/f", ctypes.pointer(st), ctypes.pointer(fi))
        seen["st_size"] = st.st_size
        seen["fallocate_rc"] = o.fallocate(b"/f", 0, 0, 4096, ctypes.pointer(fi))
        return 0
    def fuse_get_context(self):
        return ctypes.pointer(ctx)
ctx = fusepy.fuse_context(uid=7, gid=8, pid=9)
fusepy._libfuse = Fake()
class Ops(tm_fuse.Operations):
    calls = []
    def getattr(self, path, fh=None):
        self.calls.append(["getattr", path, fh, list(tm_fuse.tmfs_get_context())])
        if fh is not None:
            raise tm_fuse.TmfsOSError(2)
        return {"st_size": 123, "st_mode": 0o100644}
    def fallocate(self, path, mode, offset, length, fh=None):
        self.calls.append(["fallocate", path, mode, offset, length, fh])
ops = Ops()
tm_fuse.TMFS(ops, "/nonexistent", foreground=True, nothreads=True, allow_other=True)
seen["calls"] = ops.calls
seen["outside"] = list(tm_fuse.tmfs_get_context()) == [os.getuid(), os.getgid(), os.getpid()]
seen["import_name"] = tm_fuse.TMFS.__mro__[1].__module__
print(json.dumps(seen))`);
    const seen = JSON.parse(out);
    assert.equal(seen.import_name, "fusepy");
    assert.equal(seen.outside, true, "outside a request: this process's ids");
    assert.deepEqual(seen.argv.slice(0, 3), ["fuse", "-f", "-s"]);
    assert.ok(seen.argv[4].split(",").includes("big_writes"), seen.argv[4]);
    assert.ok(seen.argv[4].split(",").includes("allow_other"), seen.argv[4]);
    assert.equal(seen.fallocate, true);
    assert.equal(seen.poll, false);
    assert.equal(seen.fgetattr_rc, 0);
    assert.equal(seen.st_size, 123);
    assert.equal(seen.fallocate_rc, 0);
    assert.deepEqual(seen.calls, [
      ["getattr", "/f", null, [7, 8, 9]],
      ["fallocate", "/f", 0, 0, 4096, 42],
    ]);
  });

  it("takes --fast all, none or a comma list of lfs_fast's features, refusing others", () => {
    const out = py(`from lfs_fast import parse_features as f
print(sorted(f("all")), sorted(f("none")), sorted(f("handle,copy")))
for bad in ("", "fast", "handle,bogus", "copy", "size,xattr", "grow"):
    try:
        f(bad); print("accepted", repr(bad))
    except ValueError as e:
        print("refused", e)`);
    assert.doesNotMatch(out, /accepted/);
    const [first, ...refusals] = out.trim().split("\n");
    assert.equal(
      first,
      "['copy', 'grow', 'handle', 'size', 'xattr', 'zero'] [] ['copy', 'handle']",
    );
    assert.equal(refusals.length, 6);
    assert.match(out, /refused --fast 'fast': expected all, none or a comma list of handle, copy/);
    assert.match(out, /refused --fast copy needs handle/);
  });

  it("sends each Librarian request with its own context: another thread's command while one waits for the socket is no EILSEQ", () => {
    // Upstream's librarian() with a socket stand-in; thread A's request waits for the
    // socket while another thread makes its next command.
    const run = (wrapped: boolean) =>
      py(
        `import json, sys, threading, time
import lfs_fast, lfs_fuse
from cmdproto import LibrarianCommandProtocol
class Torms:
    inOOB = []
    sent = []
    def send_all(self, d):
        self.sent.append(json.loads(json.dumps(d)))
    def recv_all(self):
        return {"value": 1, "context": {"seq": self.sent[-1]["context"]["seq"]}}
class Log:
    def error(self, m):
        pass
fs = object.__new__(lfs_fuse.LibrarianFS)
fs.lcp = LibrarianCommandProtocol({"umask": 0, "node_id": 1, "physloc": "1_1_1"})
fs.inflight, fs.torms, fs.logger = threading.Lock(), Torms(), Log()
stats = lfs_fast.Stats([])
if sys.argv[1] == "wrapped":
    lfs_fast.count_round_trips(fs, stats)
got = []
def a():
    try:
        got.append(fs.librarian(fs.lcp("get_fs_stats")))
    except OSError as e:
        got.append("errno %d" % e.errno)
fs.inflight.acquire()
t = threading.Thread(target=a)
t.start()
time.sleep(0.3)
fs.lcp("get_fs_stats")
fs.inflight.release()
t.join()
print(json.dumps([got, stats.snapshot()["librarian"]]))`,
        wrapped ? "wrapped" : "upstream",
      );
    assert.deepEqual(JSON.parse(run(false)), [["errno 84"], {}], "upstream's race: EILSEQ");
    assert.deepEqual(JSON.parse(run(true)), [[1], { get_fs_stats: 1 }]);
  });

  it("answers a context outside a FUSE request with this process's ids", () => {
    const out = py(`import os, tm_fuse
print(tm_fuse.tmfs_get_context() == (os.getuid(), os.getgid(), os.getpid()))`);
    assert.equal(out.trim(), "True");
  });
});

describe("LFS adapter: two daemons on one shadow file, real Librarian, stock FUSE", function () {
  this.timeout(300_000);
  // 2 nodes x 64 books of 8M = 1G; the FAM file is 2G so an unused tail shows nothing is resized.
  const famBytes = 2 * 1024 * MiB;
  let lab: LfsLab;
  let m1: string;
  let m2: string;

  before(async () => {
    ({ lab, m1, m2 } = await startTwoNodeLab("lfs-adapter"));
  });

  after(async function () {
    await closeLab(lab, this);
  });

  it("registered the nodes the launcher derived from --node (1:1:1 and 1:1:2)", () => {
    const out = execFileSync(
      PYTHON,
      [
        "-c",
        `import sqlite3,sys
c=sqlite3.connect(sys.argv[1])
print([f"{r}:{e}:{n}" for r, e, n in c.execute("select rack, enc, node from FRDnodes order by node_id")])`,
        lab.db,
      ],
      { encoding: "utf8" },
    );
    assert.equal(out.trim(), "['1:1:1', '1:1:2']");
    assert.equal(booksPerNode(lab.db), 64);
  });

  it("truncate allocates books; a pattern written on node 1 reads back on node 2 and sits in FAM at the books' offset", () => {
    const before = allocatedBooks(lab.db);
    lab.sh(["truncate", "-s", "64M", path.join(m1, "data")]);
    const books = shelfBooks(lab.db, "data");
    assert.equal(books.length, 8, "64M = 8 books of 8M");
    assert.equal(allocatedBooks(lab.db) - before, 8);
    assert.equal(lab.sh(["stat", "-c", "%s", path.join(m2, "data")]).trim(), String(64 * MiB));

    // A pattern that straddles the boundary between the file's books 2 and 3.
    const offset = 3 * BOOK - 100;
    const pattern = Buffer.from(`fame-lfs-pattern-${process.pid}-`.repeat(10));
    lab.sh(
      [
        "dd",
        `of=${path.join(m1, "data")}`,
        "bs=1M",
        `seek=${offset}`,
        "oflag=seek_bytes",
        "conv=notrunc",
        "status=none",
      ],
      pattern,
    );
    const onNode2 = spawnSync(
      "nsenter",
      [
        "-t",
        String(lab.holder.pid),
        "-n",
        "-m",
        "--",
        "dd",
        `if=${path.join(m2, "data")}`,
        "bs=1M",
        `skip=${offset}`,
        `count=${pattern.length}`,
        "iflag=skip_bytes,count_bytes",
        "status=none",
      ],
      { timeout: 60_000 },
    ).stdout;
    assert.deepEqual(onNode2, pattern);

    // FAM offset = interleave group x (books per node x book size) + book number x book size + offset in book.
    const fam = fs.openSync(lab.fam, "r");
    try {
      const got = Buffer.alloc(pattern.length);
      let done = 0;
      for (let pos = offset; done < pattern.length; ) {
        const b = books[Math.floor(pos / BOOK)]!;
        const inBook = pos % BOOK;
        const n = Math.min(BOOK - inBook, pattern.length - done);
        const famOffset = b.intlvGroup * 64 * BOOK + b.bookNum * BOOK + inBook;
        fs.readSync(fam, got, done, n, famOffset);
        done += n;
        pos += n;
      }
      assert.deepEqual(got, pattern);
    } finally {
      fs.closeSync(fam);
    }
  });

  it("lfs_offsets gives the FAM offsets the Librarian's books imply, and reads/writes there live", () => {
    const tool = (...args: string[]) => lab.sh([...lab.offsetsCommand(m1, 2), ...args]);
    const info = JSON.parse(tool(path.join(m1, "data"))) as {
      size: number;
      book_size: number;
      books: { fam_offset: number }[];
    };
    const books = shelfBooks(lab.db, "data");
    assert.equal(info.size, 64 * MiB);
    assert.equal(info.book_size, BOOK);
    assert.deepEqual(
      info.books.map((b) => b.fam_offset),
      books.map((b) => b.intlvGroup * 64 * BOOK + b.bookNum * BOOK),
    );
    const at = 5 * BOOK + 12345;
    assert.equal(
      Number(tool(path.join(m1, "data"), String(at)).trim()),
      info.books[5]!.fam_offset + 12345,
    );
    // Straddles books 5 and 6; written through the mapping, read back by the tool and by the file system.
    const off = 6 * BOOK - 4;
    tool(path.join(m1, "data"), "write", String(off), "LIVE-SHARED");
    assert.equal(tool(path.join(m1, "data"), "read", String(off), "11"), "LIVE-SHARED");
    const viaFs = lab.sh([
      "dd",
      `if=${path.join(m2, "data")}`,
      "bs=1M",
      `skip=${off}`,
      "count=11",
      "iflag=skip_bytes,count_bytes",
      "status=none",
    ]);
    assert.equal(viaFs, "LIVE-SHARED");
  });

  it("fstat after ftruncate (a getattr with a file handle) answers instead of ENOENT", () => {
    const out = lab.sh([
      PYTHON,
      "-c",
      `import os,sys
fd=os.open(sys.argv[1], os.O_CREAT|os.O_RDWR, 0o644)
os.ftruncate(fd, 3*1024*1024)
print(os.fstat(fd).st_size)
os.close(fd)`,
      path.join(m1, "fstat"),
    ]);
    assert.equal(out.trim(), String(3 * MiB));
    assert.equal(shelfBooks(lab.db, "fstat").length, 1);
  });

  it("fallocate allocates books through FUSE", () => {
    lab.sh(["fallocate", "-l", "16M", path.join(m2, "falloc")]);
    assert.equal(shelfBooks(lab.db, "falloc").length, 2);
    assert.equal(lab.sh(["stat", "-c", "%s", path.join(m1, "falloc")]).trim(), String(16 * MiB));
  });

  it("a 20 MiB write on node 2 reads back identical on node 1", () => {
    const data = path.join(lab.dir, "rand");
    const buf = Buffer.alloc(20 * MiB);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 7919) % 251;
    fs.writeFileSync(data, buf);
    lab.sh(["dd", `if=${data}`, `of=${path.join(m2, "big")}`, "bs=1M", "status=none"]);
    lab.sh(["cmp", data, path.join(m1, "big")]);
    assert.equal(shelfBooks(lab.db, "big").length, 3);
  });

  /** The daemon's own counters (getxattr user.fame.stats on the mount's root). */
  function daemonStats(mnt: string): AdapterStats {
    return JSON.parse(
      lab.sh([
        PYTHON,
        "-c",
        "import os,sys; sys.stdout.write(os.getxattr(sys.argv[1], 'user.fame.stats').decode())",
        mnt,
      ]),
    ) as AdapterStats;
  }

  /**
   * Requests a node's daemon has sent the Librarian: the data segments out of
   * its TCP connection, as the kernel counts them (each request is one
   * segment on lo), independent of the adapter.
   */
  function sentToLibrarian(node: number): number {
    const pid = lab.nodePids.get(node);
    const out = lab.sh(["ss", "-Htinp", "state", "established", "( dport = :9093 )"]);
    // One record per socket: its address line, then an indented line of TCP info.
    const records = out.split(/\n(?=\S)/);
    const mine = records.filter((r) => r.includes(`pid=${pid},`));
    assert.equal(mine.length, 1, `one Librarian connection of node ${node}'s daemon:\n${out}`);
    const m = /data_segs_out:(\d+)/.exec(mine[0]!);
    return m ? Number(m[1]) : 0;
  }

  const heartbeat = (d: AdapterStats) =>
    (d.librarian.update_node_soc_status ?? 0) + (d.librarian.update_node_mc_status ?? 0);
  const allRoundTrips = (d: AdapterStats) => Object.values(d.librarian).reduce((a, b) => a + b, 0);

  it("a sequential 16 MiB write and read cost at most 0.75 and 0.5 Librarian round trips per MiB, in 128 KiB requests", async () => {
    const data = path.join(lab.dir, "seq16");
    const buf = Buffer.alloc(16 * MiB);
    for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i);
    fs.writeFileSync(data, buf);
    const file = path.join(m1, "seq16");

    /** Runs cmd; requests node 1 sent, at most `limit` besides its heartbeat (one per 10 s). */
    const phase = (what: string, cmd: string[], limit: number) => {
      const segs = sentToLibrarian(1);
      const t = Date.now();
      lab.sh(cmd);
      const sent = sentToLibrarian(1) - segs;
      const heartbeats = Math.floor((Date.now() - t) / 10_000) + 1;
      assert.ok(
        sent <= limit + heartbeats,
        `${what} took ${sent} Librarian round trips (at most ${limit} + ${heartbeats} heartbeat)`,
      );
      return sent;
    };
    const w = phase(
      "writing 16 MiB",
      ["dd", `if=${data}`, `of=${file}`, "bs=1M", "status=none"],
      12,
    );
    const r = phase(
      "reading 16 MiB",
      ["sh", "-c", 'dd if="$1" bs=1M status=none | cmp - "$2"', "sh", file, data],
      8,
    );
    assert.ok(w > 0 && r > 0);

    // The adapter's own counters agree with the kernel's, and see 128 KiB requests.
    const counted = (cmd: string[]) => {
      const segs = sentToLibrarian(1);
      const before = daemonStats(m1);
      lab.sh(cmd);
      const after = daemonStats(m1);
      assert.equal(allRoundTrips(after) - allRoundTrips(before), sentToLibrarian(1) - segs);
      assert.ok(heartbeat(after) - heartbeat(before) <= 2);
      return { before, after };
    };
    // Request sizes: libfuse 2's largest (its buffer holds 128 KiB + a header; the
    // kernel's FUSE_MAX_PAGES is libfuse 3's).
    const sizes = (p: { before: AdapterStats; after: AdapterStats }, op: string) => {
      const a = p.after.ops[op]?.sizes ?? {};
      const b = p.before.ops[op]?.sizes ?? {};
      return Object.fromEntries(
        Object.entries(a)
          .map(([k, v]) => [k, v - (b[k] ?? 0)] as const)
          .filter(([, v]) => v > 0),
      );
    };
    const again = path.join(m1, "seq16b");
    assert.deepEqual(
      sizes(counted(["dd", `if=${data}`, `of=${again}`, "bs=1M", "status=none"]), "write"),
      { [128 * 1024]: 128 },
    );
    assert.deepEqual(
      sizes(counted(["dd", `if=${again}`, "of=/dev/null", "bs=1M", "status=none"]), "read"),
      {
        [128 * 1024]: 128,
      },
    );
    lab.sh(["rm", again]);
    await lab.waitFor("the removed file's books to be freed", () => zeroing(lab.db) === 0);
  });

  it("this node's truncate and fallocate refresh what its open handles use", () => {
    // One process keeps the file open; another truncates and fallocates it meanwhile.
    const out = lab.sh([
      PYTHON,
      "-c",
      `import os, subprocess, sys
f = sys.argv[1]
fd = os.open(f, os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"A" * 4096)
subprocess.check_call(["truncate", "-s", "12M", f])
subprocess.check_call(["fallocate", "-l", "24M", f])
os.pwrite(fd, b"in-book-2", 20 * 1024 * 1024)
os.pwrite(fd, b"in-book-1", 9 * 1024 * 1024)
os.close(fd)
print(os.stat(f).st_size)`,
      path.join(m1, "held"),
    ]);
    assert.equal(out.trim(), String(24 * MiB));
    const books = shelfBooks(lab.db, "held");
    assert.equal(books.length, 3);
    const fam = fs.openSync(lab.fam, "r");
    try {
      for (const [at, text] of [
        [20 * MiB, "in-book-2"],
        [9 * MiB, "in-book-1"],
      ] as const) {
        const b = books[Math.floor(at / BOOK)]!;
        const got = Buffer.alloc(text.length);
        fs.readSync(
          fam,
          got,
          0,
          got.length,
          b.intlvGroup * 64 * BOOK + b.bookNum * BOOK + (at % BOOK),
        );
        assert.equal(got.toString(), text, `byte ${at} in FAM at its book's offset`);
      }
    } finally {
      fs.closeSync(fam);
    }
    assert.equal(lab.sh(["stat", "-c", "%s", path.join(m2, "held")]).trim(), String(24 * MiB));
  });

  it("a size grown by writes reaches the Librarian at close; close-to-open across nodes after node 2 extends, shrinks and re-creates a file", async () => {
    const f1 = path.join(m1, "coherent");
    const f2 = path.join(m2, "coherent");
    const pattern = (seed: number, n: number) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17) % 253;
      return b;
    };
    const put = (file: string, data: Buffer, seek = 0, trunc = true) =>
      lab.sh(
        [
          "dd",
          `of=${file}`,
          "bs=1M",
          `seek=${seek}`,
          "oflag=seek_bytes",
          ...(trunc ? [] : ["conv=notrunc"]),
          "status=none",
        ],
        data,
      );
    const get = (file: string) =>
      spawnSync("nsenter", ["-t", String(lab.holder.pid), "-n", "-m", "--", "cat", file], {
        maxBuffer: 64 * MiB,
      }).stdout;
    // The kernel keeps a file's attributes for FUSE's default attr_timeout (1 s).
    const attrTimeout = () => new Promise((r) => setTimeout(r, 1100));

    // Node 1 writes 5 MiB + 3 bytes from empty: one book, its size set at close.
    const a = pattern(1, 5 * MiB + 3);
    put(f1, a);
    assert.equal(shelfBooks(lab.db, "coherent").length, 1);
    assert.equal(lab.sh(["stat", "-c", "%s", f2]).trim(), String(a.length));
    assert.deepEqual(get(f2), a);

    // Node 2 extends it (new books) and writes there; node 1 reopens.
    lab.sh(["truncate", "-s", "20M", f2]);
    const b = pattern(2, 3 * MiB);
    put(f2, b, 15 * MiB, false);
    await attrTimeout();
    const extended = Buffer.alloc(20 * MiB);
    a.copy(extended);
    b.copy(extended, 15 * MiB);
    assert.equal(lab.sh(["stat", "-c", "%s", f1]).trim(), String(20 * MiB));
    assert.deepEqual(get(f1), extended);

    // Node 2 shrinks it.
    lab.sh(["truncate", "-s", "4M", f2]);
    await attrTimeout();
    assert.deepEqual(get(f1), a.subarray(0, 4 * MiB));

    // Node 2 re-creates it with other content (other books); node 1 reads the new file.
    lab.sh(["rm", f2]);
    const c = pattern(3, 9 * MiB);
    put(f2, c);
    await attrTimeout();
    assert.deepEqual(get(f1), c);
    await lab.waitFor(
      "the removed file's books to be zeroed and freed",
      () => zeroing(lab.db) === 0,
    );

    // A write past the end on node 1, inside the last book: node 2 sees the size once node 1 closed.
    put(f1, Buffer.from("tail"), 9 * MiB, false);
    await attrTimeout();
    assert.equal(lab.sh(["stat", "-c", "%s", f2]).trim(), String(9 * MiB + 4));
    assert.equal(shelfBooks(lab.db, "coherent").length, 2);
  });

  it("a file held open while another node grows it: a write past this node's books keeps the other node's size and bytes", async () => {
    const f1 = path.join(m1, "grown");
    const f2 = path.join(m2, "grown");
    lab.sh(["truncate", "-s", "8M", f1]);
    // Node 1 keeps the file open (one book, as it knew it at open) until told to write.
    const holder = spawn(
      "nsenter",
      [
        "-t",
        String(lab.holder.pid),
        "-n",
        "-m",
        "--",
        PYTHON,
        "-c",
        `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
print("open", flush=True)
sys.stdin.readline()
os.pwrite(fd, b"node1-at-12M", 12 * 1024 * 1024)
os.close(fd)
print("done", flush=True)`,
        f1,
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    let said = "";
    holder.stdout.on("data", (d) => {
      said += d;
    });
    await lab.waitFor("node 1 to open the file", () => said.includes("open"));
    lab.sh(["truncate", "-s", "24M", f2]);
    lab.sh(
      [
        "dd",
        `of=${f2}`,
        "bs=1M",
        `seek=${20 * MiB}`,
        "oflag=seek_bytes",
        "conv=notrunc",
        "status=none",
      ],
      "node2-at-20M",
    );
    holder.stdin.write("go\n");
    await lab.waitFor("node 1's write", () => said.includes("done"));
    await new Promise((r) => setTimeout(r, 1100)); // node 2's attribute cache
    assert.equal(lab.sh(["stat", "-c", "%s", f2]).trim(), String(24 * MiB));
    const at = (off: number, n: number) =>
      lab.sh([
        "dd",
        `if=${f2}`,
        "bs=1M",
        `skip=${off}`,
        `count=${n}`,
        "iflag=skip_bytes,count_bytes",
        "status=none",
      ]);
    assert.equal(at(20 * MiB, 12), "node2-at-20M");
    assert.equal(at(12 * MiB, 12), "node1-at-12M");
    assert.equal(shelfBooks(lab.db, "grown").length, 3);
  });

  it("rm frees the file's books", async () => {
    const before = allocatedBooks(lab.db);
    lab.sh(["rm", path.join(m1, "data")]);
    await lab.waitFor(
      "the books of data to be freed",
      () => allocatedBooks(lab.db) === before - 8,
      60_000,
    );
    assert.equal(lab.run(["stat", path.join(m2, "data")]).status, 1);
  });

  it("rm of many files at once zeroes and frees every book", async () => {
    const before = allocatedBooks(lab.db);
    const files = Array.from({ length: 12 }, (_, i) => path.join(m2, `many${i}`));
    for (const f of files) lab.sh(["truncate", "-s", "8M", f]);
    assert.equal(allocatedBooks(lab.db), before + files.length);
    // Zeroing threads run while the daemon handles the next unlinks.
    lab.sh(["rm", ...files]);
    await lab.waitFor(
      "every book of the removed files to be freed",
      () => allocatedBooks(lab.db) === before && zeroing(lab.db) === 0,
      60_000,
    );
  });

  it("left the shadow (FAM) file's size alone", () => {
    assert.equal(fs.statSync(lab.fam).size, famBytes);
  });

  it("a daemon never creates a missing shadow file", () => {
    const missing = path.join(lab.dir, "no-such-FAM");
    const r = lab.run([
      "timeout",
      "60",
      ...launcherArgv({
        node: 2,
        shadowFile: missing,
        mountpoint: path.join(lab.dir, "lfs-missing"),
      }),
    ]);
    assert.notEqual(r.status, 0);
    assert.equal(fs.existsSync(missing), false);
  });
});
