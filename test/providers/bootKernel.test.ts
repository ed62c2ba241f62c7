/**
 * The boot kernel provider, loaded from its serialized form as the engine
 * does, on synthetic bzImages built as the kernel's build makes them (no VM;
 * the e2e tests boot the real one).
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { BOOT_KERNEL_FILE, BOOT_KERNEL_VERSION } from "../../lib/bootkernel";
import {
  BootKernelFile,
  type BootKernelInputs,
  type BootKernelOutputs,
} from "../../providers/bootKernel";
import { UNKNOWN } from "../../providers/contract";
import { loadSerialized } from "../helpers/engine";
import { bzImage, elf64, pvhNote } from "../helpers/kernelFiles";
import { scratchDir } from "../helpers/sandbox";

describe("BootKernel provider (loaded from its serialized form)", function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = scratchDir("bootkernel");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const load = (inputs: BootKernelInputs) =>
    loadSerialized<BootKernelInputs, BootKernelOutputs>(() => new BootKernelFile("k", inputs));
  const vmlinuz = (kernel: Buffer, tool: "xz" | "zstd") => {
    const file = path.join(dir, "vmlinuz");
    fs.writeFileSync(file, bzImage(kernel, tool));
    return file;
  };

  for (const tool of ["xz", "zstd"] as const) {
    it(`unpacks a ${tool} kernel beside the image's, reports it on read, and keeps it on delete`, async () => {
      const kernel = elf64([[pvhNote(0x1000850)]], Buffer.alloc(100_000, 0x90));
      const inputs: BootKernelInputs = {
        source: vmlinuz(kernel, tool),
        version: BOOT_KERNEL_VERSION,
      };
      const { provider: p } = await load(inputs);
      assert.deepEqual((await p.check({}, inputs)).failures ?? [], []);
      const { id, outs } = await p.create(inputs);
      const file = path.join(dir, BOOT_KERNEL_FILE);
      assert.equal(id, file);
      assert.deepEqual(outs, { ...inputs, path: file, pvhEntry: 0x1000850 });
      assert.deepEqual(fs.readFileSync(file), kernel, "the kernel itself, byte for byte");
      assert.equal(fs.statSync(file).mode & 0o777, 0o644);
      assert.deepEqual((await p.read(id, outs)).props, outs);
      // Another stack on the same image: the same file, not rewritten.
      const ino = fs.statSync(file).ino;
      assert.equal((await p.create(inputs)).id, file);
      assert.equal(fs.statSync(file).ino, ino);
      await p.delete(id, outs as BootKernelOutputs);
      assert.ok(fs.existsSync(file), "shared with every stack on the image: kept");
      // Gone by hand: read says so (the next up makes it again); the image's kernel is untouched.
      fs.rmSync(file);
      assert.deepEqual(await p.read(id, outs), {});
      assert.ok(fs.existsSync(inputs.source));
    });
  }

  it("boots a kernel without a PVH entry as the image has it, writing nothing", async () => {
    const inputs: BootKernelInputs = {
      source: vmlinuz(elf64([[{ name: "Xen", type: 6, desc: Buffer.from("linux\0") }]]), "xz"),
      version: BOOT_KERNEL_VERSION,
    };
    const { provider: p } = await load(inputs);
    const { id, outs } = await p.create(inputs);
    assert.deepEqual(outs, { ...inputs, path: inputs.source, pvhEntry: 0 });
    assert.deepEqual(fs.readdirSync(dir), ["vmlinuz"]);
    assert.deepEqual((await p.read(id, outs)).props, outs, "still there: the image's kernel");
    fs.rmSync(inputs.source);
    assert.deepEqual(await p.read(id, outs), {}, "the image's kernel gone: so is this");
  });

  it("a new version is a new file (replacement); in a preview an unknown image is no failure", async () => {
    const inputs: BootKernelInputs = {
      source: vmlinuz(elf64([[pvhNote(0x2000)]]), "zstd"),
      version: BOOT_KERNEL_VERSION,
    };
    const { provider: p } = await load(inputs);
    const { id, outs } = await p.create(inputs);
    const olds = outs as BootKernelOutputs;
    const same = await p.diff(id, olds, inputs);
    assert.deepEqual([same.changes, same.replaces], [false, []]);
    const newer = await p.diff(id, { ...olds, version: "0" }, inputs);
    assert.deepEqual([newer.changes, newer.replaces], [true, ["version"]]);
    const preview = await p.diff(id, olds, { ...inputs, source: UNKNOWN });
    assert.deepEqual([preview.changes, preview.replaces], [true, ["source"]]);
    assert.deepEqual((await p.check({}, { ...inputs, source: UNKNOWN })).failures ?? [], []);
    assert.match(
      JSON.stringify((await p.check({}, { ...inputs, source: "vmlinuz" })).failures),
      /source/,
    );
    assert.match(
      JSON.stringify((await p.check({}, { ...inputs, version: "99" })).failures),
      /boot kernel version 1, not 99/,
    );
  });

  it("a create that cannot unpack it fails naming the image's kernel, leaving nothing", async () => {
    const source = path.join(dir, "vmlinuz");
    fs.writeFileSync(source, "not a kernel");
    const { provider: p } = await load({ source, version: BOOT_KERNEL_VERSION });
    await assert.rejects(
      p.create({ source, version: BOOT_KERNEL_VERSION }),
      /not a bzImage \(no HdrS setup header/,
    );
    // A payload whose unpacked size is not what the build recorded: refused, nothing written.
    const bad = bzImage(elf64([[pvhNote(0x2000)]]), "xz");
    bad.writeUInt32LE(bad.readUInt32LE(bad.length - 11) + 1, bad.length - 11);
    fs.writeFileSync(source, bad);
    await assert.rejects(
      p.create({ source, version: BOOT_KERNEL_VERSION }),
      /vmlinuz: the kernel unpacked to \d+ bytes, its header says \d+/,
    );
    assert.deepEqual(fs.readdirSync(dir), ["vmlinuz"]);
  });
});
