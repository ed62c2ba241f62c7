/**
 * The boot initrd provider, loaded from its serialized form as the engine
 * does, on an initrd built like initramfs-tools' (no VM; the e2e tests boot it).
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { BOOT_INITRD_FILE, BOOT_INITRD_VERSION, readNewc, writeNewc } from "../../lib/bootinitrd";
import {
  BootInitrdFile,
  type BootInitrdInputs,
  type BootInitrdOutputs,
} from "../../providers/bootInitrd";
import { UNKNOWN } from "../../providers/contract";
import { loadSerialized } from "../helpers/engine";
import { scratchDir } from "../helpers/sandbox";

/** A bookworm-like initrd.img: plain .ko modules, the archive in zstd. */
function imageInitrd(dir: string): string {
  const mods = "usr/lib/modules/6.1.0-test-amd64";
  const ko = (rel: string) => ({ name: `${mods}/${rel}`, mode: 0o100644, data: Buffer.from(rel) });
  const dep = [
    "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio.ko:",
    "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko",
    "kernel/fs/ext4/ext4.ko:",
    "kernel/crypto/crc32c_generic.ko:",
  ];
  const archive = writeNewc([
    { name: `${mods}/modules.dep`, mode: 0o100644, data: Buffer.from(`${dep.join("\n")}\n`) },
    ...dep.map((l) => ko(l.slice(0, l.indexOf(":")))),
  ]);
  const file = path.join(dir, "initrd.img");
  fs.writeFileSync(file, execFileSync("zstd", ["-q", "-c"], { input: archive }));
  return file;
}

describe("BootInitrd provider (loaded from its serialized form)", function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = scratchDir("bootinitrd");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("makes the initrd beside the image's, reports it on read, and keeps it on delete", async () => {
    const inputs: BootInitrdInputs = { source: imageInitrd(dir), version: BOOT_INITRD_VERSION };
    const { provider: p } = await loadSerialized<BootInitrdInputs, BootInitrdOutputs>(
      () => new BootInitrdFile("i", inputs),
    );
    assert.deepEqual((await p.check({}, inputs)).failures ?? [], []);
    const { id, outs } = await p.create(inputs);
    const file = path.join(dir, BOOT_INITRD_FILE);
    assert.equal(id, file);
    assert.deepEqual(outs?.modules, [
      "virtio",
      "virtio_pci",
      "virtio_blk",
      "ext4",
      "crc32c_generic",
    ]);
    assert.equal(outs?.kernelRelease, "6.1.0-test-amd64");
    const names = readNewc(fs.readFileSync(file)).entries.map((e) => e.name);
    for (const n of ["init", "bin/busybox", "lib/modules/virtio_blk.ko"])
      assert.ok(names.includes(n), n);
    assert.deepEqual((await p.read(id, outs)).props, outs);
    // Another stack on the same image: the same file, not rewritten.
    const ino = fs.statSync(file).ino;
    assert.equal((await p.create(inputs)).id, file);
    assert.equal(fs.statSync(file).ino, ino);
    // Shared with every stack on the image, like the image: delete keeps it.
    await p.delete(id, outs as BootInitrdOutputs);
    assert.ok(fs.existsSync(file));
    // Gone by hand: read says so (the next up makes it again); the image's initrd is untouched.
    fs.rmSync(file);
    assert.deepEqual(await p.read(id, outs), {});
    assert.ok(fs.existsSync(inputs.source));
  });

  it("a new version is a new file (replacement); in a preview an unknown image is no failure", async () => {
    const inputs: BootInitrdInputs = { source: imageInitrd(dir), version: BOOT_INITRD_VERSION };
    const { provider: p } = await loadSerialized<BootInitrdInputs, BootInitrdOutputs>(
      () => new BootInitrdFile("i", inputs),
    );
    const { id, outs } = await p.create(inputs);
    const olds = outs as BootInitrdOutputs;
    const same = await p.diff(id, olds, inputs);
    assert.deepEqual([same.changes, same.replaces], [false, []]);
    const newer = await p.diff(id, { ...olds, version: "0" }, inputs);
    assert.deepEqual([newer.changes, newer.replaces], [true, ["version"]]);
    const preview = await p.diff(id, olds, { ...inputs, source: UNKNOWN });
    assert.deepEqual([preview.changes, preview.replaces], [true, ["source"]]);
    assert.deepEqual((await p.check({}, { ...inputs, source: UNKNOWN })).failures ?? [], []);
    assert.match(
      JSON.stringify((await p.check({}, { ...inputs, source: "initrd.img" })).failures),
      /source/,
    );
    assert.match(
      JSON.stringify((await p.check({}, { ...inputs, version: "99" })).failures),
      new RegExp(`boot initrd version ${BOOT_INITRD_VERSION}, not 99`),
    );
  });

  it("a create that cannot make it fails naming the image's initrd, leaving nothing", async () => {
    const source = path.join(dir, "initrd.img");
    fs.writeFileSync(source, "not an initrd");
    const inputs: BootInitrdInputs = { source, version: BOOT_INITRD_VERSION };
    const { provider: p } = await loadSerialized<BootInitrdInputs, BootInitrdOutputs>(
      () => new BootInitrdFile("i", inputs),
    );
    await assert.rejects(
      p.create(inputs),
      /initrd\.img: the initrd's main archive is in an unknown format/,
    );
    assert.deepEqual(fs.readdirSync(dir), ["initrd.img"]);
  });
});
