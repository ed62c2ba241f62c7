/**
 * End to end, the Librarian File System on two real Debian nodes inside the
 * sandbox's network namespace (engine-free: fame's providers loaded as the
 * engine loads them; the cluster is test/helpers/lfsCluster.ts's). The image is the golden image with the Librarian on;
 * the Librarian (database built by the real book_register, librarian.py
 * supervised) runs in the sandbox namespace, where the node network is the
 * only network. Shows: /lfs mounted on both nodes at boot by the image's
 * unit, node01 through libfuse 2 (fusepy, fame:lfsFuse 2) and node02 through
 * libfuse 3 (templates/lfs/fusepy3.py, fame:lfsFuse 3: fame.lfs_fuse=3 on its kernel command
 * line), so every step between the nodes crosses both; with fame:famPrealloc (on unless FAME_TEST_FAM_PREALLOC=0) every
 * FAM page mapped in by each node's QEMU; a file written on node01 read on node02; its books in the host's
 * database and its bytes in the host's FAM file at the offsets those books
 * give; live sharing through BAR2 at those offsets without reopening; /lfs
 * throughput against BAR2 on each node (bench/lfs_workload.py, one run, reported; the
 * median of 3 against the target is `npm run bench:lfs-nodes`'s); rm freeing the
 * books (timed); a vCPU change (nodes restart) keeping a file;
 * destroy + up keeping the database and the file; a FAM grow refused
 * without the reset opt-in.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { markdownTable, PHASE_HEADER, phaseRows, ratios, summarize } from "../../bench/lfsReport";
import { librarianIni } from "../../lib/librarian";
import { clusterPlan } from "../../lib/plan";
import type { DomainOutputs } from "../../providers/domain";
import type { LibrarianDbOutputs } from "../../providers/librarianDb";
import type { LibrarianServiceOutputs } from "../../providers/librarianService";
import { allocatedBooks, PYTHON, shelfBooks } from "../helpers/lfs";
import { LfsCluster } from "../helpers/lfsCluster";
import { LFS_HOSTBASE, LFS_OCTETS } from "../helpers/lfsImage";
import { RUN_DIR } from "../helpers/sandbox";
import { ssh, waitForSsh } from "../helpers/ssh";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const BOOK = 8 * MiB;
const BOOKS_PER_NODE = 64; // 1G FAM, 2 nodes: 128 books of 8M
/** fame:famPrealloc for this run: on unless FAME_TEST_FAM_PREALLOC=0 (for a before/after of the throughput). */
const PREALLOC = process.env.FAME_TEST_FAM_PREALLOC !== "0";
/** Workload runs per node (FAME_TEST_LFS_RUNS, default 1): reported here, held by `npm run bench:lfs-nodes`. */
const RUNS = Number(process.env.FAME_TEST_LFS_RUNS ?? 1);

/** Bytes of `file` mapped in by each QEMU process that maps it (Rss in /proc/<pid>/smaps). */
function qemuRssOf(file: string): number[] {
  const out: number[] = [];
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let smaps: string;
    try {
      if (!fs.readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("qemu-system")) continue;
      smaps = fs.readFileSync(`/proc/${pid}/smaps`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    let inFile = false;
    let kib = 0;
    let maps = false;
    for (const line of smaps.split("\n")) {
      const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (header) {
        inFile = header[1] === file;
        maps ||= inFile;
      } else if (inFile) {
        const rss = /^Rss:\s+(\d+) kB/.exec(line);
        if (rss) kib += Number(rss[1]);
      }
    }
    if (maps) out.push(kib * 1024);
  }
  return out;
}

/** node_id:status of every SOC in a Librarian database (status 1: active). */
function socStatus(db: string): string {
  return execFileSync(
    PYTHON,
    [
      "-c",
      `import sqlite3,sys
c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True)
print(",".join("%s:%s" % r for r in c.execute("select node_id,status from SOCs order by node_id")))`,
      db,
    ],
    { encoding: "utf8" },
  ).trim();
}

describe("e2e: the Librarian File System on two Debian nodes", function () {
  this.timeout(60 * 60_000);
  let c: LfsCluster;
  const [ip1, ip2] = clusterPlan({
    nodes: 2,
    hostbase: LFS_HOSTBASE,
    octets123: LFS_OCTETS,
  }).nodes.map((n) => n.ip) as [string, string];
  const on = (ip: string, cmd: string) => c.on(ip, cmd);

  after(async () => {
    if (c) await c.stop();
  });

  it("boots two nodes that mount /lfs from the Librarian on torms", async () => {
    c = new LfsCluster("fame/e2e-lfs", PREALLOC, (m) => console.log(`      ${m}`));
    assert.deepEqual(c.ips, [ip1, ip2]);
    await c.start();
    for (const p of ["python3-fusepy ", "fuse3 ", "python3-psutil ", "pciutils "])
      assert.ok(
        c.image.packages.some((x) => x.startsWith(p)),
        p,
      );
    assert.match(await on(ip1, "findmnt -n -o FSTYPE,SOURCE /lfs"), /fuse\s+LibrarianFS/);
    // The release this run tests (bookworm, or FAME_TEST_SUITE): what the nodes really run.
    for (const ip of [ip1, ip2])
      assert.equal(
        (await on(ip, ". /etc/os-release && echo $VERSION_CODENAME")).trim(),
        c.imgIn.recipe.suite,
      );
    // The library each daemon mounted through: node01's libfuse 2 only, node02's libfuse 3
    // (fusepy3.py sets the mount's read-ahead to 1 MiB).
    const libfuse = async (ip: string) =>
      (
        await on(
          ip,
          "sudo grep -o 'libfuse[0-9]*\\.so\\.[0-9]*' /proc/$(pgrep -f fame_lfs.py | head -n 1)/maps | sort -u | tr '\\n' ' '; cat /sys/class/bdi/$(mountpoint -d /lfs)/read_ahead_kb",
        )
      ).trim();
    assert.equal(await libfuse(ip1), "libfuse.so.2 128");
    // fusepy is loaded there too (tm_fuse imports it), but libfuse 3 serves the mount.
    // (maps names the file, libfuse3.so.3.14.0 on bookworm and libfuse3.so.3.17.2 on trixie,
    // whose soname is libfuse3.so.4.)
    assert.equal(await libfuse(ip2), "libfuse.so.2 libfuse3.so.3 1024");
    // Each daemon registered as its own node (from fame.node=<N> on the kernel command line): both SOCs active.
    assert.equal(socStatus(c.dbIn.path), "1:1,2:1");
  });

  it(`fame:famPrealloc ${PREALLOC ? "on: each node's QEMU has every FAM page mapped in from its start" : "off: no node's QEMU has the whole FAM mapped in"}`, () => {
    const rss = qemuRssOf(c.famIn.path);
    assert.equal(rss.length, 2, `QEMU processes mapping ${c.famIn.path}: ${rss.length}`);
    for (const bytes of rss) {
      if (PREALLOC) assert.equal(bytes, c.famIn.sizeBytes);
      else assert.ok(bytes < c.famIn.sizeBytes, `${bytes} bytes of the FAM mapped in`);
    }
    console.log(
      `      FAM mapped in per QEMU: ${rss.map((b) => `${Math.round(b / MiB)} MiB`).join(", ")}`,
    );
  });

  let patternOffset = 0;
  const pattern = `fame-lfs-e2e-${process.pid}-`.repeat(8);

  it("a file written on node01 is read on node02; its books are in the host's database and its bytes in the host's FAM file", async () => {
    await on(ip1, "sudo truncate -s 64M /lfs/data");
    const books = shelfBooks(c.dbIn.path, "data");
    assert.equal(books.length, 8, "64M = 8 books of 8M");
    patternOffset = 3 * BOOK - 50; // straddles books 2 and 3
    await on(
      ip1,
      `printf '%s' '${pattern}' | sudo dd of=/lfs/data bs=1M seek=${patternOffset} oflag=seek_bytes conv=notrunc status=none`,
    );
    const read = await on(
      ip2,
      `sudo dd if=/lfs/data bs=1M skip=${patternOffset} count=${pattern.length} iflag=skip_bytes,count_bytes status=none`,
    );
    assert.equal(read, pattern);
    // In the host's FAM file at interleave group x 512M + book x 8M + offset in book.
    const fd = fs.openSync(c.famIn.path, "r");
    try {
      const got = Buffer.alloc(pattern.length);
      let done = 0;
      for (let pos = patternOffset; done < pattern.length; ) {
        const b = books[Math.floor(pos / BOOK)]!;
        const n = Math.min(BOOK - (pos % BOOK), pattern.length - done);
        fs.readSync(
          fd,
          got,
          done,
          n,
          b.intlvGroup * BOOKS_PER_NODE * BOOK + b.bookNum * BOOK + (pos % BOOK),
        );
        done += n;
        pos += n;
      }
      assert.equal(got.toString(), pattern);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("shares the file's memory live through BAR2 at its FAM offsets, without reopening", async () => {
    const off = 5 * BOOK + 4096;
    // node02 maps BAR2 at the byte's FAM offset once and watches it; node01 then stores through its own mapping.
    const famOff = Number((await on(ip2, `sudo lfs_offsets /lfs/data ${off}`)).trim());
    const watch = `import mmap,os,time,sys
fd=os.open(sys.argv[1],os.O_RDWR); off=int(sys.argv[2]); base=off-off%mmap.PAGESIZE
m=mmap.mmap(fd,mmap.PAGESIZE*2,mmap.MAP_SHARED,mmap.PROT_READ|mmap.PROT_WRITE,offset=base)
print("mapped",flush=True)
end=time.time()+300
while time.time()<end:
    v=m[off-base:off-base+12]
    if v==b"LIVE-FROM-01": print("seen",flush=True); break
    time.sleep(0.05)
else: print("timeout",flush=True)`;
    await on(ip2, `cat > /tmp/watch.py <<'EOF'\n${watch}\nEOF`);
    await on(
      ip2,
      `bar=$(for d in /sys/bus/pci/devices/*; do [ "$(cat $d/vendor)" = 0x1af4 ] && [ "$(cat $d/device)" = 0x1110 ] && echo $d/resource2 && break; done); sudo nohup python3 /tmp/watch.py $bar ${famOff} > /tmp/watch.out 2>&1 &`,
    );
    const end = Date.now() + 60_000;
    while (!(await on(ip2, "cat /tmp/watch.out 2>/dev/null || true")).includes("mapped")) {
      if (Date.now() > end) throw new Error("watcher did not map BAR2");
      await new Promise((r) => setTimeout(r, 500));
    }
    await on(ip1, `sudo lfs_offsets /lfs/data write ${off} LIVE-FROM-01`);
    const end2 = Date.now() + 120_000;
    let out = "";
    while (!/seen|timeout/.test(out)) {
      if (Date.now() > end2) break;
      await new Promise((r) => setTimeout(r, 500));
      out = await on(ip2, "cat /tmp/watch.out");
    }
    assert.match(out, /seen/);
    // hello_fabric, built on the node, reads the same bytes at the printed offset.
    await on(ip2, "gcc -O2 -o hello_fabric /usr/local/share/fame/hello_fabric.c");
    assert.match(await on(ip2, `sudo ./hello_fabric read ${famOff} 12`), /LIVE-FROM-01/);
    // And /lfs (close-to-open) sees it on the next open.
    assert.equal(
      await on(
        ip1,
        `sudo dd if=/lfs/data bs=1M skip=${off} count=12 iflag=skip_bytes,count_bytes status=none`,
      ),
      "LIVE-FROM-01",
    );
  });

  /**
   * bench/lfs_workload.py on one node (LfsCluster.workload), reported; `features`: the fast
   * paths its daemon must report; `request`: the FUSE library's largest sequential request.
   * One run here: the median of 3 against the target is bench/lfsNodes.ts's.
   */
  async function measure(
    node: string,
    ip: string,
    features: string[],
    request: number,
    spliced = false,
  ): Promise<void> {
    const result = await c.workload(ip, RUNS);
    const s = summarize(result);
    const q = ratios(s);
    const report = [
      `${node}, TCG, fame's adapter (--fast ${result.features?.join(",")}), ${result.runs.length === 1 ? "one run" : `median (min-max) of ${result.runs.length} runs`}:`,
      markdownTable(PHASE_HEADER, phaseRows(s)),
      `/lfs against BAR2 at the same file's books (8 MiB blocks): write ${q.write.toFixed(2)}x (rewrite in place ${q.rewrite.toFixed(2)}x), read ${q.read.toFixed(2)}x`,
    ].join("\n");
    console.log(report.replace(/^/gm, "      "));
    // Kept after the run (the scratch directory is not) for a look at every counter.
    fs.mkdirSync(RUN_DIR, { recursive: true });
    fs.writeFileSync(path.join(RUN_DIR, `lfs-e2e-throughput-${node}.json`), JSON.stringify(result));
    assert.equal(result.runs.length, RUNS);
    assert.deepEqual(result.features, features);
    for (const phase of ["seq8_write", "seq8_read"] as const)
      assert.equal(s[phase]?.largestRequest, request, `${node} ${phase}: largest request`);
    // libfuse 3 splices a write's pages out of /dev/fuse into a pipe, which the fast path
    // reads into the FAM mapping (lfs_fast write_buf's write_spliced); libfuse 2 never does.
    const ops = result.runs[0]?.seq8_write?.daemon?.ops;
    assert.equal(
      ops?.write_spliced?.count ?? 0,
      spliced ? ops?.write?.count : 0,
      `${node}: spliced writes of ${ops?.write?.count} new-file write requests`,
    );
  }

  it("measures /lfs against BAR2 on node01 (libfuse 2: 128 KiB requests): 64 MiB in 8 MiB and 1 MiB blocks, 4 KiB random, rm (reported, not asserted)", () =>
    measure("node01", ip1, ["copy", "grow", "handle", "size", "xattr", "zero"], 128 * 1024));

  it("measures the same on node02 (libfuse 3: 1 MiB requests, every write spliced from /dev/fuse into the FAM)", () =>
    measure("node02", ip2, ["copy", "grow", "handle", "size", "xattr", "zero"], MiB, true));

  it("rm frees the books (the time is reported)", async () => {
    const before = allocatedBooks(c.dbIn.path);
    // Timed on node02: from the unlink until the Librarian counts the 8 books free (statvfs).
    const timed = `import os,time
free=os.statvfs("/lfs").f_bfree*4096//(8<<20); t=time.time(); os.unlink("/lfs/data")
while os.statvfs("/lfs").f_bfree*4096//(8<<20) < free+8:
    if time.time()-t > 300: raise SystemExit("books not freed in 300 s")
    time.sleep(0.05)
print("%.2f" % (time.time()-t))`;
    const seconds = (
      await ssh(c.keyFile, c.user, ip2, `sudo python3 -c '${timed}'`, 400_000)
    ).stdout.trim();
    const end = Date.now() + 300_000;
    // (Books of other files freed meanwhile, such as the benchmark's, only lower the count further.)
    while (allocatedBooks(c.dbIn.path) > before - 8 || shelfBooks(c.dbIn.path, "data").length > 0) {
      if (Date.now() > end)
        throw new Error(
          `books not freed: ${allocatedBooks(c.dbIn.path)} allocated, ${before} before`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
    console.log(
      `      rm of the 64 MiB /lfs/data on node02: its 8 books free after ${seconds} s (statvfs on node02)`,
    );
    assert.match(seconds, /^\d+\.\d\d$/);
    assert.equal((await ssh(c.keyFile, c.user, ip1, "ls /lfs/data")).code !== 0, true);
  });

  it("a vCPU change restarts the nodes and keeps a file", async () => {
    await on(ip1, "echo kept-across-restart | sudo tee /lfs/keep >/dev/null");
    for (let i = 0; i < c.domIns.length; i++) {
      const d = c.domIns[i]!;
      const next = { ...d, vcpus: 1 };
      await c.dom.update(d.name, { ...d, running: true } as unknown as DomainOutputs, next);
      c.domIns[i] = next;
    }
    await Promise.all([
      waitForSsh(c.keyFile, c.user, ip1, 900_000),
      waitForSsh(c.keyFile, c.user, ip2, 900_000),
    ]);
    assert.equal((await on(ip1, "nproc")).trim(), "1");
    await Promise.all([c.waitLfs(ip1), c.waitLfs(ip2)]);
    assert.equal((await on(ip2, "cat /lfs/keep")).trim(), "kept-across-restart");
  });

  it("destroy then up keeps the database and the file", async () => {
    for (const d of c.domIns)
      await c.dom.delete(d.name, { ...d, shutdownTimeoutMs: 60_000 } as unknown as DomainOutputs);
    await c.svcP.delete!(c.svcOut!.unit, c.svcOut!);
    c.svcOut = undefined;
    await c.dbP.delete!(c.dbIn.path, {
      ...c.dbIn,
      info: {} as LibrarianDbOutputs["info"],
      generation: "",
    });
    assert.ok(fs.existsSync(c.dbIn.path), "database kept");
    // up
    const adopted = (await c.dbP.create!(c.dbIn)).outs as LibrarianDbOutputs;
    assert.equal(adopted.info.files, 1, "the database still lists /lfs/keep");
    assert.equal(
      adopted.generation,
      c.svcIn.dbGeneration,
      "the same database file, not a rebuilt one",
    );
    c.svcOut = (await c.svcP.create!(c.svcIn)).outs as LibrarianServiceOutputs;
    await c.bootAll();
    await Promise.all([c.waitLfs(ip1), c.waitLfs(ip2)]);
    assert.equal((await on(ip1, "cat /lfs/keep")).trim(), "kept-across-restart");
  });

  it("refuses a FAM grow with the Librarian on unless the reset opt-in is set", async () => {
    const grown = { ...c.dbIn, ini: librarianIni(2 * GiB, 2) };
    const olds = {
      ...c.dbIn,
      info: (await c.dbP.read!(c.dbIn.path, undefined)).props!.info,
    } as LibrarianDbOutputs;
    const r = await c.dbP.check!(olds, grown);
    assert.equal(r.failures?.length, 1);
    assert.match(
      r.failures![0]!.reason,
      /would lose 1 file\(s\) and 0 directory\(ies\) under \/lfs/,
    );
    assert.deepEqual((await c.dbP.check!(olds, { ...grown, reset: true })).failures, []);
    assert.equal((await on(ip2, "cat /lfs/keep")).trim(), "kept-across-restart");
  });
});
