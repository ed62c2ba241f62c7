import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { imageArgs } from "../../components/cluster";
import { goldenImageRecipe } from "../../components/goldenImage";
import {
  ConfigError,
  type FameConfig,
  MAX_LIBRARIAN_NODES,
  resolveRaw,
  validateConfig,
} from "../../lib/config";
import { checkTmLibrarianDir, tmLibrarianDir, tmLibrarianFiles } from "../../lib/host/tmlibrarian";
import { imageCmdline } from "../../lib/image";
import {
  fameBootArgs,
  LFS_PACKAGES,
  lfsBootArgs,
  lfsUnit,
  NODE_TM_LIBRARIAN,
  tmLibrarianSource,
} from "../../lib/lfs";
import type { ConfigKey } from "../../lib/schema";
import { TM_LIBRARIAN } from "../helpers/lfs";
import { ROOT } from "../helpers/sandbox";

const ctx = { project: "fame", stack: "test" };
// tm-librarian as a path relative to the project directory (beside the checkout, or FAME_TM_LIBRARIAN).
const VENDOR = path.relative(ROOT, TM_LIBRARIAN);

function validate(over: Partial<Record<ConfigKey, string>>): FameConfig {
  return validateConfig(resolveRaw((k) => over[k], {}, ctx)).config;
}

function problems(over: Partial<Record<ConfigKey, string>>): string[] {
  try {
    validate(over);
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
}

describe("Librarian config", () => {
  it("is off by default with the upstream source pinned to 1f43788 and port 9093", () => {
    const c = validate({});
    assert.equal(c.librarian, false);
    assert.equal(c.librarianSource, "https://github.com/FabricAttachedMemory/tm-librarian");
    assert.equal(c.librarianCommit, "1f43788822b191682917f912139990f387bb4706");
    assert.equal(c.librarianPort, 9093);
    assert.equal(c.librarianReset, false);
  });

  it("refuses more than 80 nodes with the Librarian on, naming key, value and rule; accepts 80", () => {
    assert.deepEqual(problems({ librarian: "true", nodes: "81", famSize: "64G" }), [
      `fame:nodes = "81": must be at most ${MAX_LIBRARIAN_NODES} while fame:librarian is on (the Librarian places at most 80 nodes)`,
    ]);
    assert.deepEqual(problems({ librarian: "true", nodes: "80", famSize: "64G" }), []);
    assert.deepEqual(problems({ librarian: "false", nodes: "81" }), []);
  });

  it("refuses a FAM that gives a node fewer than 4 books", () => {
    // 1G = 128 books of 8M: 40 nodes would get 3 each, rounded down to a multiple of 4: 0.
    const p = problems({ librarian: "true", nodes: "40", famSize: "1G" });
    assert.equal(p.length, 1);
    assert.match(
      p[0]!,
      /^fame:famSize = "1G": gives each of 40 nodes 0 Librarian book\(s\) of 8M; .* at least 4/,
    );
  });

  it("wants a full 40-hex commit for a git source, and a sane URL", () => {
    for (const commit of ["1f43788", "master", "v1.0", `${"a".repeat(39)}g`]) {
      const p = problems({ librarian: "true", librarianCommit: commit });
      assert.equal(p.length, 1, commit);
      assert.ok(
        p[0]!.startsWith(
          `fame:librarianCommit = ${JSON.stringify(commit)}: must be a full commit id of 40 hex digits`,
        ),
        p[0],
      );
    }
    assert.match(
      problems({ librarian: "true", librarianSource: "ftp://example.org/x" })[0]!,
      /^fame:librarianSource = "ftp:\/\/example.org\/x": must be an http\(s\):\/\/, git:\/\/, ssh:\/\/ or file:\/\/ git URL/,
    );
    // A directory needs no commit.
    assert.deepEqual(
      problems({ librarian: "true", librarianSource: VENDOR, librarianCommit: "" }),
      [],
    );
    assert.match(
      problems({ librarianPort: "80" })[0]!,
      /^fame:librarianPort = "80": must be a TCP port from 1024 to 65535/,
    );
  });

  it("takes a network namespace name for the supervised Librarian, from the stack or FAME_LIBRARIAN_NETNS", () => {
    assert.equal(validate({}).librarianNetns, "");
    assert.equal(validate({ librarianNetns: "fame-t-1a2b.x_y" }).librarianNetns, "fame-t-1a2b.x_y");
    const env = validateConfig(resolveRaw(() => undefined, { FAME_LIBRARIAN_NETNS: "lab" }, ctx));
    assert.equal(env.config.librarianNetns, "lab");
    for (const bad of ["../x", "a/b", "-a", ".a", "a b", "a;b", "x".repeat(65), "a\nb"]) {
      assert.deepEqual(
        problems({ librarianNetns: bad }),
        [
          `fame:librarianNetns = ${JSON.stringify(bad)}: must be a network namespace name (ip netns): 1..64 of A-Z a-z 0-9 _ . -, not starting with . or -`,
        ],
        bad,
      );
    }
  });

  it("runs the monitor with the Librarian unless the stack says otherwise, on port 31179", () => {
    const off = validate({});
    assert.deepEqual([off.librarianMonitor, off.librarianMonitorPort], [false, 31179]);
    const on = validate({ librarian: "true", librarianSource: VENDOR });
    assert.deepEqual([on.librarianMonitor, on.librarianMonitorPort], [true, 31179]);
    assert.equal(
      validate({ librarian: "true", librarianSource: VENDOR, librarianMonitor: "false" })
        .librarianMonitor,
      false,
    );
    const raw = resolveRaw((k) => ({ librarian: "yes" })[k as string], {}, ctx);
    assert.deepEqual(raw.librarianMonitor, { value: "yes", source: "computed" });
    assert.equal(
      validate({ librarian: "true", librarianSource: VENDOR, librarianMonitorPort: "8080" })
        .librarianMonitorPort,
      8080,
    );
  });

  it("mounts /lfs through libfuse 2 unless fame:lfsFuse is 3; 3 needs the Librarian", () => {
    assert.equal(validate({}).lfsFuse, 2);
    const lib = { librarian: "true", librarianSource: VENDOR };
    assert.equal(validate(lib).lfsFuse, 2);
    assert.equal(validate({ ...lib, lfsFuse: "3" }).lfsFuse, 3);
    assert.deepEqual(problems({ lfsFuse: "3" }), [
      `fame:lfsFuse = "3": must be 2 (or unset) while fame:librarian is off: it chooses how nodes mount /lfs`,
    ]);
    for (const v of ["1", "4"])
      assert.deepEqual(problems({ ...lib, lfsFuse: v }), [
        `fame:lfsFuse = "${v}": must be 2 (libfuse 2) or 3 (libfuse 3)`,
      ]);
    assert.deepEqual(problems({ ...lib, lfsFuse: "fuse3" }), [
      `fame:lfsFuse = "fuse3": must be an integer (must be 2 (libfuse 2) or 3 (libfuse 3))`,
    ]);
    assert.deepEqual(lfsBootArgs({ librarian: true, lfsFuse: 3 }), ["fame.lfs_fuse=3"]);
    assert.deepEqual(lfsBootArgs({ librarian: true, lfsFuse: 2 }), []);
    assert.deepEqual(lfsBootArgs({ librarian: false, lfsFuse: 3 }), []);
    // What the domains boot and what applied.json records: the image's arguments, then /lfs's.
    const image = imageCmdline("bookworm", "ivshmem", "qemu");
    const base = { suite: "bookworm", famMode: "ivshmem" } as const;
    assert.equal(
      fameBootArgs({ ...base, librarian: true, lfsFuse: 3 }, "qemu"),
      `${image} fame.lfs_fuse=3`,
    );
    assert.equal(fameBootArgs({ ...base, librarian: true, lfsFuse: 2 }, "qemu"), image);
    assert.equal(
      fameBootArgs({ ...base, librarian: false, lfsFuse: 2 }, "kvm"),
      imageCmdline("bookworm", "ivshmem", "kvm"),
    );
  });

  it("refuses a monitor without the Librarian, on the Librarian's port, or on a bad port", () => {
    assert.deepEqual(problems({ librarianMonitor: "true" }), [
      `fame:librarianMonitor = "true": must be false (or unset) while fame:librarian is off: the monitor shows the Librarian's database`,
    ]);
    const lib = { librarian: "true", librarianSource: VENDOR };
    assert.deepEqual(problems({ ...lib, librarianMonitorPort: "9093" }), [
      `fame:librarianMonitorPort = "9093": must differ from fame:librarianPort (9093): both listen on torms`,
    ]);
    assert.deepEqual(problems({ ...lib, librarianPort: "9100", librarianMonitorPort: "9100" }), [
      `fame:librarianMonitorPort = "9100": must differ from fame:librarianPort (9100): both listen on torms`,
    ]);
    // Off, the port is not used: no clash.
    assert.deepEqual(
      problems({ ...lib, librarianMonitor: "false", librarianMonitorPort: "9093" }),
      [],
    );
    for (const bad of ["80", "65536", "x"])
      assert.match(
        problems({ ...lib, librarianMonitorPort: bad })[0]!,
        new RegExp(
          `^fame:librarianMonitorPort = "${bad}": must (be an integer \\(must )?be a TCP port from 1024 to 65535`,
        ),
      );
    assert.match(
      problems({ ...lib, librarianMonitor: "maybe" })[0]!,
      /^fame:librarianMonitor = "maybe": must be true or false/,
    );
  });

  it("resolves a relative directory against the project directory", () => {
    assert.deepEqual(tmLibrarianSource(VENDOR, "", ROOT), {
      kind: "dir",
      dir: path.resolve(ROOT, VENDOR),
    });
    assert.equal(tmLibrarianSource("https://x.org/r", "c", ROOT).kind, "git");
    assert.deepEqual(checkTmLibrarianDir(TM_LIBRARIAN), []);
    assert.match(
      checkTmLibrarianDir(ROOT)[0]!,
      /is not a tm-librarian tree: src\/book_register.py, .* missing/,
    );
  });
});

describe("Librarian in the image recipe", () => {
  const base = validate({});
  const on = validate({ librarian: "true", librarianSource: VENDOR, nodes: "2", famSize: "1G" });

  it("leaves the default recipe exactly as without the Librarian", () => {
    const args = imageArgs(base, ROOT);
    assert.equal("lfs" in args, false);
    const r = goldenImageRecipe(args);
    assert.ok(!r.recipe.packages.includes("python3-fusepy"));
    assert.ok(!r.recipe.files.some((f) => f.path.startsWith("/opt/fame")));
    // Same key as a recipe built from args that never heard of the Librarian.
    const { lfs: _none, ...plain } = args;
    assert.equal(goldenImageRecipe(plain).key, r.key);
  });

  it("adds packages, the adapter, tm-librarian's source and the /lfs unit when on; the source is part of the key", () => {
    const args = imageArgs(on, ROOT);
    const r = goldenImageRecipe(args);
    for (const p of LFS_PACKAGES) assert.ok(r.recipe.packages.includes(p), p);
    const paths = r.recipe.files.map((f) => f.path);
    for (const p of [
      "/opt/fame/lfs/tm_fuse.py",
      "/opt/fame/lfs/fusepy3.py",
      "/opt/fame/lfs/fame_lfs.py",
      "/opt/fame/lfs/lfs_fast.py",
      "/opt/fame/lfs/lfs_offsets.py",
      `${NODE_TM_LIBRARIAN}/src/lfs_fuse.py`,
      `${NODE_TM_LIBRARIAN}/src/tm_fuse.py`,
      "/etc/systemd/system/fame-lfs.service",
      "/etc/systemd/system/multi-user.target.d/fame-lfs.conf",
    ])
      assert.ok(paths.includes(p), p);
    const unitFile = r.recipe.files.find((f) => f.path === "/etc/systemd/system/fame-lfs.service")!;
    assert.equal(unitFile.content, lfsUnit(9093));
    assert.match(unitFile.content, /Restart=on-failure/);
    assert.match(unitFile.content, /fame-lfs-wait torms 9093/);
    assert.notEqual(r.key, goldenImageRecipe(imageArgs(base, ROOT)).key);

    // A different tm-librarian tree (one byte) is a different image.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), "tmlib-"));
    try {
      fs.cpSync(path.resolve(ROOT, VENDOR), copy, { recursive: true });
      assert.equal(
        goldenImageRecipe({ ...args, lfs: { tmLibrarianDir: copy, port: 9093 } }).key,
        r.key,
      );
      fs.appendFileSync(path.join(copy, "src", "lfs_fuse.py"), "\n");
      assert.notEqual(
        goldenImageRecipe({ ...args, lfs: { tmLibrarianDir: copy, port: 9093 } }).key,
        r.key,
      );
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it("fetches a git source at its pinned commit once into the cache, and refuses a commit it does not have", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "tmgit-"));
    try {
      const repo = path.join(work, "repo");
      fs.cpSync(path.resolve(ROOT, VENDOR), repo, { recursive: true });
      const git = (...a: string[]) =>
        require("node:child_process")
          .execFileSync("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", ...a], {
            encoding: "utf8",
          })
          .trim();
      git("init", "-q");
      git("add", "-A");
      git("commit", "-qm", "one");
      const first = git("rev-parse", "HEAD");
      fs.appendFileSync(path.join(repo, "src", "librarian.py"), "# two\n");
      git("commit", "-qam", "two");
      git("config", "uploadpack.allowReachableSHA1InWant", "true");
      const cache = path.join(work, "cache");
      const dir = tmLibrarianDir({ kind: "git", url: `file://${repo}`, commit: first }, cache);
      assert.equal(dir, path.join(cache, "sources", `tm-librarian-${first}`));
      assert.doesNotMatch(fs.readFileSync(path.join(dir, "src", "librarian.py"), "utf8"), /# two/);
      assert.equal(fs.existsSync(path.join(dir, ".git")), false);
      assert.ok(tmLibrarianFiles(dir).some((f) => f.rel === "src/lfs_fuse.py"));
      // Cached: the repository can go away.
      fs.renameSync(repo, `${repo}.gone`);
      assert.equal(
        tmLibrarianDir({ kind: "git", url: `file://${repo}`, commit: first }, cache),
        dir,
      );
      assert.throws(
        () => tmLibrarianDir({ kind: "git", url: `file://${repo}`, commit: "0".repeat(40) }, cache),
        /fame:librarianSource: cannot fetch commit 0{40} from file:/,
      );
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
