import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  BOOT_INITRD_FILE,
  compressionOf,
  isStaticElf,
  MASKED_GENERATORS,
  MASKED_UNITS,
  MODULE_ORDER_FILE,
  moduleLoadOrder,
  moduleName,
  parseBuiltin,
  parseModulesDep,
  RUN_TREE,
  readNewc,
  splitInitrd,
  writeNewc,
} from "../../lib/bootinitrd";
import { bootInitrdProblem, ensureBootInitrd, readBootInitrd } from "../../lib/host/bootinitrd";

const DEP = [
  "kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz",
  "kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz:",
  "kernel/drivers/virtio/virtio_ring.ko.xz:",
  "kernel/drivers/virtio/virtio.ko.xz:",
  "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz",
  "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz",
  "kernel/fs/jbd2/jbd2.ko.xz:",
  "kernel/fs/mbcache.ko.xz:",
  "kernel/lib/crc16.ko.xz:",
  "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/virtio/virtio.ko.xz",
  "",
].join("\n");

/** What DEP gives for the root's modules, each after what it needs (crc32c_generic built in). */
const ROOT_ORDER = [
  "virtio_pci_modern_dev",
  "virtio_ring",
  "virtio",
  "virtio_pci",
  "virtio_blk",
  "jbd2",
  "mbcache",
  "crc16",
  "ext4",
];

describe("fame's boot initrd: pure parts", () => {
  it("writes newc archives that cpio lists and readNewc reads back, byte for byte", () => {
    const entries = [
      { name: "bin", mode: 0o040755, data: Buffer.alloc(0) },
      { name: "bin/busybox", mode: 0o100755, data: Buffer.from("abc") },
      { name: "init", mode: 0o100755, data: Buffer.from("#!/bin/sh\necho hi\n") },
    ];
    const archive = writeNewc(entries);
    const listed = execFileSync("cpio", ["-it", "--quiet"], { input: archive, encoding: "utf8" });
    assert.deepEqual(listed.trim().split("\n"), ["bin", "bin/busybox", "init"]);
    const back = readNewc(archive);
    assert.equal(back.end, archive.length);
    assert.deepEqual(
      back.entries.map((e) => [e.name, e.mode, e.data.toString()]),
      entries.map((e) => [e.name, e.mode, e.data.toString()]),
    );
    assert.deepEqual(writeNewc(entries), archive, "the same entries, the same bytes");
  });

  it("reads an archive cpio wrote, and refuses what is not one", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-newc-"));
    try {
      fs.mkdirSync(path.join(dir, "lib"));
      fs.writeFileSync(path.join(dir, "lib", "x.ko"), "module");
      fs.symlinkSync("x.ko", path.join(dir, "lib", "y.ko"));
      const archive = execFileSync("cpio", ["-o", "-H", "newc", "--quiet"], {
        cwd: dir,
        input: "lib\nlib/x.ko\nlib/y.ko\n",
      });
      const names = readNewc(archive).entries.map((e) => e.name);
      assert.deepEqual(names, ["lib", "lib/x.ko"], "directories and files; the link is skipped");
      assert.throws(() => readNewc(Buffer.from("not an archive at all")), /not a newc cpio/);
      assert.throws(() => readNewc(archive.subarray(0, 200)), /runs past the end|not a newc/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("splits initramfs-tools' uncompressed early archive from the compressed main one", () => {
    const early = writeNewc([
      { name: "kernel/x86/microcode/AuthenticAMD.bin", mode: 0o100644, data: Buffer.from("u") },
    ]);
    const padded = Buffer.concat([early, Buffer.alloc(512 - (early.length % 512))]);
    const main = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
    const split = splitInitrd(Buffer.concat([padded, main]));
    assert.deepEqual(
      split.early.map((e) => e.name),
      ["kernel/x86/microcode/AuthenticAMD.bin"],
    );
    assert.deepEqual(split.main, main);
    assert.equal(compressionOf(split.main), "zstd");
    assert.equal(compressionOf(Buffer.from([0x1f, 0x8b, 8])), "gzip");
    assert.equal(compressionOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), "xz");
    assert.equal(compressionOf(early), "none");
    assert.equal(compressionOf(Buffer.from("BZh9")), undefined);
  });

  it("orders the root's modules after what they depend on, built-in ones left out", () => {
    const dep = parseModulesDep(DEP);
    assert.equal(moduleName("kernel/fs/ext4/ext4.ko.xz"), "ext4");
    assert.equal(moduleName("crc16.ko"), "crc16");
    const order = moduleLoadOrder(dep, parseBuiltin("kernel/crypto/crc32c_generic.ko\n"), [
      "virtio_pci",
      "virtio_blk",
      "ext4",
      "crc32c_generic",
    ]).map(moduleName);
    assert.deepEqual(order, ROOT_ORDER);
    assert.ok(!order.includes("virtio_net"), "only what the root needs");
    assert.throws(
      () => moduleLoadOrder(dep, new Set(), ["crc32c_generic"]),
      /the image's initrd has no module crc32c_generic and the kernel does not build it in/,
    );
    const broken = parseModulesDep("kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\n");
    assert.throws(
      () => moduleLoadOrder(broken, new Set(), ["ext4"]),
      /no module jbd2 \(needed by ext4\)/,
    );
  });

  it("tells a static executable from a dynamic one", () => {
    assert.equal(isStaticElf(fs.readFileSync("/bin/busybox")), true, "Debian's busybox-static");
    assert.equal(isStaticElf(fs.readFileSync("/bin/ls")), false);
    assert.equal(isStaticElf(Buffer.from("#!/bin/sh\n")), false);
  });
});

describe("fame's boot initrd: made from an image's initrd", () => {
  let dir: string;
  let source: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-bootinitrd-"));
    // An initrd as trixie's initramfs-tools writes it: the .ko.xz modules in an uncompressed
    // first archive (padded to 512 bytes), modules.dep and the rest in a zstd one.
    const modDir = "usr/lib/modules/6.12.0-test-amd64";
    const modules = DEP.split("\n")
      .filter(Boolean)
      .map((l) => l.slice(0, l.indexOf(":")))
      .map((rel) => ({
        name: `${modDir}/${rel}`,
        mode: 0o100644,
        data: execFileSync("xz", ["-c"], { input: `module ${moduleName(rel)}` }),
      }));
    const rest = [
      { name: "usr", mode: 0o040755, data: Buffer.alloc(0) },
      { name: `${modDir}/modules.dep`, mode: 0o100644, data: Buffer.from(DEP) },
      {
        name: `${modDir}/modules.builtin`,
        mode: 0o100644,
        data: Buffer.from("kernel/crypto/crc32c_generic.ko\n"),
      },
    ];
    const early = writeNewc(modules);
    source = path.join(dir, "initrd.img");
    fs.writeFileSync(
      source,
      Buffer.concat([
        early,
        Buffer.alloc((512 - (early.length % 512)) % 512),
        execFileSync("zstd", ["-q", "-c"], { input: writeNewc(rest) }),
      ]),
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("holds busybox, init.sh and the root's modules unpacked, in load order", async () => {
    const made = await ensureBootInitrd(source);
    assert.equal(made.path, path.join(dir, BOOT_INITRD_FILE));
    assert.equal(made.kernelRelease, "6.12.0-test-amd64");
    assert.deepEqual(made.modules, ROOT_ORDER);
    const files = new Map(readNewc(fs.readFileSync(made.path)).entries.map((e) => [e.name, e]));
    assert.deepEqual(files.get("bin/busybox")?.data, fs.readFileSync("/bin/busybox"));
    assert.equal(files.get("init")?.mode, 0o100755);
    assert.match(files.get("init")?.data.toString() ?? "", /mount -t ext4 -o ro \/dev\/vda \/root/);
    assert.equal(
      files.get("lib/modules/ext4.ko")?.data.toString(),
      "module ext4",
      "unpacked from .ko.xz",
    );
    assert.equal(
      files.get(MODULE_ORDER_FILE)?.data.toString(),
      `${made.modules.map((m) => `${m}.ko`).join("\n")}\n`,
    );
    // The masks init.sh copies into the root's /run: symlinks to /dev/null, as cpio unpacks them.
    assert.match(
      files.get("init")?.data.toString() ?? "",
      /cp -a \/fame-run\/systemd \/root\/run\//,
    );
    const unpacked = path.join(dir, "unpacked");
    fs.mkdirSync(unpacked);
    execFileSync("cpio", ["-idm", "--quiet", `${RUN_TREE}/*`], {
      cwd: unpacked,
      input: fs.readFileSync(made.path),
    });
    const masks = (sub: string) =>
      fs.readdirSync(path.join(unpacked, RUN_TREE, "systemd", sub)).map((n) => {
        const p = path.join(unpacked, RUN_TREE, "systemd", sub, n);
        return fs.lstatSync(p).isSymbolicLink() ? `${n} -> ${fs.readlinkSync(p)}` : n;
      });
    assert.deepEqual(masks("system").sort(), MASKED_UNITS.map((u) => `${u} -> /dev/null`).sort());
    assert.deepEqual(
      masks("system-generators").sort(),
      MASKED_GENERATORS.map((g) => `${g} -> /dev/null`).sort(),
    );
    assert.ok(MASKED_UNITS.includes("modprobe@loop.service"));
    assert.ok(!MASKED_UNITS.some((u) => /fuse|configfs/.test(u)), "/lfs and CXL keep theirs");
    fs.rmSync(unpacked, { recursive: true });
    assert.equal(fs.statSync(made.path).mode & 0o777, 0o644, "QEMU (libvirt-qemu) reads it");
    assert.deepEqual(
      fs.readdirSync(dir).sort(),
      [BOOT_INITRD_FILE, "initrd.img"],
      "nothing left beside it",
    );
    assert.deepEqual(await readBootInitrd(made.path), made, "read back as made");
  });

  it("reuses the file it made (another stack on the same image boots from it)", async () => {
    const first = await ensureBootInitrd(source);
    const before = fs.statSync(first.path);
    const again = await ensureBootInitrd(source);
    assert.deepEqual(again, first);
    assert.equal(fs.statSync(first.path).ino, before.ino, "not rewritten");
  });

  it("refuses an initrd without modules.dep, and a dynamic busybox, naming the fix", async () => {
    fs.writeFileSync(source, execFileSync("zstd", ["-q", "-c"], { input: writeNewc([]) }));
    await assert.rejects(ensureBootInitrd(source), /initrd\.img: the initrd has no modules\.dep/);
    assert.deepEqual(fs.readdirSync(dir), ["initrd.img"], "no half-made file");
    assert.match(await bootInitrdProblem("/bin/ls"), /not statically linked.*busybox-static/);
    assert.match(await bootInitrdProblem(path.join(dir, "none")), /is missing.*busybox-static/);
    assert.equal(await bootInitrdProblem(), "");
  });

  it("reports no boot initrd where there is none, and fails on a file it cannot read", async () => {
    assert.equal(await readBootInitrd(path.join(dir, "absent.img")), undefined);
    await assert.rejects(readBootInitrd(dir), /EISDIR/);
  });
});
