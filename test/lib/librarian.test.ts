import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  BOOK_REGISTER_MAX_BOOKS_PER_NODE,
  BOOK_REGISTER_MAX_NODES,
  bookLayout,
  LFS_MAC_MAX_NODE,
  librarianIni,
  librarianWarnings,
} from "../../lib/librarian";
import { GiB, isPowerOfTwo, MiB, TiB } from "../../lib/units";
import { TM_LIBRARIAN } from "../helpers/lfs";

/** Every FAM size fame accepts (1G..1T, powers of two) and more node counts than it needs. */
const FAM_SIZES = Array.from({ length: 11 }, (_, i) => 2 ** i * GiB);
const NODE_COUNTS = Array.from({ length: 253 }, (_, i) => i + 1);

/** Parses fame's INI back into numbers (what book_register reads). */
function parseIni(ini: string): { nodes: number; bookBytes: number; booksPerNode: number } {
  const m =
    /^\[global\]\nnode_count = (\d+)\nbook_size_bytes = (\d+)M\nnvm_size_per_node = (\d+)B\n$/.exec(
      ini,
    );
  assert.ok(m, `unexpected INI shape:\n${ini}`);
  return { nodes: Number(m[1]), bookBytes: Number(m[2]) * MiB, booksPerNode: Number(m[3]) };
}

describe("Librarian INI", () => {
  it("matches FAME's check values", () => {
    assert.equal(
      librarianIni(16 * GiB, 4),
      "[global]\nnode_count = 4\nbook_size_bytes = 8M\nnvm_size_per_node = 512B\n",
    );
    assert.equal(
      librarianIni(32 * GiB, 4),
      "[global]\nnode_count = 4\nbook_size_bytes = 8M\nnvm_size_per_node = 1024B\n",
    );
  });

  it("doubles the book size while there would be more than 10000 books", () => {
    // 64G / 8M = 8192 books: still 8M. 128G / 8M = 16384 > 10000 -> 16M (8192 books).
    assert.deepEqual(bookLayout(64 * GiB, 1), {
      bookBytes: 8 * MiB,
      totalBooks: 8192,
      booksPerNode: 8192,
      unusedBooks: 0,
    });
    assert.deepEqual(bookLayout(128 * GiB, 8), {
      bookBytes: 16 * MiB,
      totalBooks: 8192,
      booksPerNode: 1024,
      unusedBooks: 0,
    });
    assert.equal(bookLayout(256 * GiB, 1).bookBytes, 32 * MiB);
    assert.equal(bookLayout(GiB, 1).bookBytes, 8 * MiB);
  });

  it("rounds books per node down to a multiple of 4 and counts the rest as unused", () => {
    // 16G = 2048 books of 8M; 3 nodes: 682 each would be refused by book_register -> 680, 8 unused.
    assert.deepEqual(bookLayout(16 * GiB, 3), {
      bookBytes: 8 * MiB,
      totalBooks: 2048,
      booksPerNode: 680,
      unusedBooks: 8,
    });
    assert.equal(
      librarianIni(16 * GiB, 3),
      "[global]\nnode_count = 3\nbook_size_bytes = 8M\nnvm_size_per_node = 680B\n",
    );
    // 2G = 256 books; 3 nodes: 85 -> 84, 4 unused.
    assert.equal(bookLayout(2 * GiB, 3).booksPerNode, 84);
    assert.equal(bookLayout(2 * GiB, 3).unusedBooks, 4);
  });

  it("satisfies book_register's rules for every FAM size and node count (property sweep)", () => {
    let cases = 0;
    for (const fam of FAM_SIZES) {
      for (const nodes of NODE_COUNTS) {
        const l = bookLayout(fam, nodes);
        const ini = parseIni(librarianIni(fam, nodes));
        const where = `${fam / GiB}G, ${nodes} nodes`;
        assert.equal(ini.nodes, nodes, where);
        assert.equal(ini.bookBytes, l.bookBytes, where);
        assert.equal(ini.booksPerNode, l.booksPerNode, where);
        // book size: a power of two from 2M to 8G
        assert.ok(isPowerOfTwo(l.bookBytes), where);
        assert.ok(l.bookBytes >= 2 * MiB && l.bookBytes <= 8 * GiB, where);
        // books per node: whole, a multiple of 4, at most 8192
        assert.ok(Number.isSafeInteger(l.booksPerNode) && l.booksPerNode >= 0, where);
        assert.equal(l.booksPerNode % 4, 0, where);
        assert.ok(l.booksPerNode <= BOOK_REGISTER_MAX_BOOKS_PER_NODE, where);
        // FAME's book size rule and accounting: nothing lost, nothing invented
        assert.ok(l.totalBooks <= 10000, where);
        assert.equal(l.totalBooks * l.bookBytes, fam, where);
        assert.equal(l.booksPerNode * nodes + l.unusedBooks, l.totalBooks, where);
        // rounding loses less than 4 books per node (the largest multiple of 4 that fits)
        assert.ok(l.unusedBooks < 4 * nodes, where);
        assert.ok((l.booksPerNode + 4) * nodes > l.totalBooks, where);
        cases++;
      }
    }
    assert.equal(cases, FAM_SIZES.length * NODE_COUNTS.length);
  });

  it("warns when no Librarian can serve the cluster (more than 80 nodes) and when LFS cannot find node numbers from MACs (more than 40)", () => {
    assert.deepEqual(librarianWarnings(16 * GiB, 4), []);
    assert.ok(!librarianWarnings(16 * GiB, LFS_MAC_MAX_NODE).some((w) => /MAC/.test(w)));
    const w41 = librarianWarnings(16 * GiB, LFS_MAC_MAX_NODE + 1).filter((w) => /MAC/.test(w));
    assert.equal(w41.length, 1);
    assert.match(w41[0] as string, /node41.*MAC.*01\.\.40.*--physloc/);
    const w80 = librarianWarnings(16 * GiB, BOOK_REGISTER_MAX_NODES);
    assert.ok(!w80.some((w) => /at most 80/.test(w)));
    const w81 = librarianWarnings(16 * GiB, BOOK_REGISTER_MAX_NODES + 1);
    assert.ok(
      w81.some((w) => /81 nodes.*at most 80.*no Librarian/.test(w)),
      w81.join("\n"),
    );
    // unused books (rounding to multiples of 4) are reported with their size
    const w3 = librarianWarnings(16 * GiB, 3);
    assert.equal(w3.length, 1);
    assert.match(w3[0] as string, /2048 Librarian books of 8M.*3 nodes.*680.*8 book\(s\) \(64M\)/);
    // a node count that leaves no books per node says so
    const w = librarianWarnings(GiB, 40);
    assert.ok(
      w.some((s) => /0 books? per node/.test(s)),
      w.join("\n"),
    );
  });

  it("refuses a node count below one", () => {
    assert.throws(() => bookLayout(GiB, 0), RangeError);
  });

  describe("the real tm-librarian book_register.py accepts fame's INI", () => {
    const suite = TM_LIBRARIAN;
    const script = path.join(suite, "src", "book_register.py");
    // A sample of the sweep: every FAM size with node counts around each rounding edge.
    const sample: [number, number][] = [];
    for (const fam of [GiB, 2 * GiB, 16 * GiB, 64 * GiB, 128 * GiB, TiB]) {
      for (const nodes of [1, 2, 3, 4, 5, 6, 7, 12, 40, 41, 80]) sample.push([fam, nodes]);
    }
    let tmp: string;
    before(() => {
      // The vendored suite (beside the checkout, or FAME_TM_LIBRARIAN); missing = a broken checkout.
      assert.ok(fs.existsSync(script), `${script} not found`);
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-ini-"));
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    function register(ini: string): { status: number; output: string } {
      const file = path.join(tmp, "librarian.ini");
      fs.writeFileSync(file, ini);
      try {
        // Debian's python3 (Python 3 + sqlite3 only); -d :memory: writes no database file.
        const out = execFileSync("/usr/bin/python3", [script, "-d", ":memory:", file], {
          cwd: path.dirname(script),
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
          timeout: 60_000,
        });
        return { status: 0, output: out };
      } catch (e) {
        const err = e as { status: number; stdout: string; stderr: string };
        return { status: err.status, output: `${err.stdout}${err.stderr}` };
      }
    }

    it("refuses an INI that breaks its rules (so acceptance below means something)", () => {
      const bad = register(
        "[global]\nnode_count = 3\nbook_size_bytes = 8M\nnvm_size_per_node = 682B\n",
      );
      assert.notEqual(bad.status, 0);
      assert.match(bad.output, /divisible by 4/);
    });

    it(`accepts ${sample.length} generated INIs (FAM 1G..1T, 1..80 nodes)`, function () {
      this.timeout(300_000);
      for (const [fam, nodes] of sample) {
        const r = register(librarianIni(fam, nodes));
        assert.equal(r.status, 0, `${fam / GiB}G, ${nodes} nodes: ${r.output}`);
      }
    });
  });
});
