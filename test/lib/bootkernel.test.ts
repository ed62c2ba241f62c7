/** fame's boot kernel, pure part: the bzImage payload and the PVH entry note (lib/bootkernel). */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { bzImagePayload, pvhEntry, splitPayload } from "../../lib/bootkernel";
import { bzImage, elf64, pvhNote } from "../helpers/kernelFiles";

describe("boot kernel (lib/bootkernel)", () => {
  const other = { name: "Xen", type: 6, desc: Buffer.from("linux\0") };
  const gnu = { name: "GNU", type: 3, desc: Buffer.alloc(20, 7) };

  it("finds the PVH entry among other notes and segments", () => {
    assert.equal(pvhEntry(elf64([[gnu, other, pvhNote(0x1000850)]])), 0x1000850);
    assert.equal(pvhEntry(elf64([[gnu], [other, pvhNote(0x2000)]])), 0x2000);
  });

  it("has none for a kernel without the note, or for what is no ELF64 file", () => {
    assert.equal(pvhEntry(elf64([[gnu, other]])), undefined);
    assert.equal(pvhEntry(elf64([])), undefined);
    // The same type under another note name is not Xen's.
    assert.equal(pvhEntry(elf64([[{ ...pvhNote(0x2000), name: "Linux" }]])), undefined);
    assert.equal(
      pvhEntry(Buffer.from("MZ not an ELF file at all, but long enough: 64 bytes....")),
      undefined,
    );
    const elf32 = elf64([[pvhNote(0x2000)]]);
    elf32[4] = 1;
    assert.equal(pvhEntry(elf32), undefined);
    // A truncated program header table is no entry, not an exception.
    assert.equal(pvhEntry(elf64([[pvhNote(0x2000)]]).subarray(0, 80)), undefined);
  });

  it("takes the payload out of a bzImage by its setup header, with the appended size", () => {
    const kernel = elf64([[pvhNote(0x1000)]], Buffer.alloc(5000, 1));
    for (const [tool, magic] of [
      ["xz", "fd377a585a00"],
      ["zstd", "28b52ffd"],
    ] as const) {
      for (const sects of [0, 3, 30]) {
        const { stream, size } = splitPayload(bzImagePayload(bzImage(kernel, tool, sects)));
        assert.ok(stream.toString("hex").startsWith(magic), `${tool}, setup_sects ${sects}`);
        assert.equal(size, kernel.length);
        const args = tool === "xz" ? ["-d", "-c", "--single-stream"] : ["-d", "-c"];
        assert.deepEqual(execFileSync(tool, args, { input: stream }), kernel);
      }
    }
  });

  it("refuses what is no bzImage it can read, saying why", () => {
    const good = bzImage(elf64([]), "gzip");
    assert.throws(() => bzImagePayload(Buffer.alloc(1024)), /not a bzImage \(no HdrS/);
    const old = Buffer.from(good);
    old.writeUInt16LE(0x207, 0x206);
    assert.throws(() => bzImagePayload(old), /boot protocol 2\.7 has no payload fields/);
    const long = Buffer.from(good);
    long.writeUInt32LE(good.length, 0x24c);
    assert.throws(() => bzImagePayload(long), /lies outside the file/);
    assert.throws(() => splitPayload(Buffer.alloc(3)), /too short/);
  });
});
