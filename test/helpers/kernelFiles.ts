/**
 * Synthetic kernel files for the boot kernel's tests (lib/bootkernel): a
 * minimal ELF64 with PT_NOTE segments, and a bzImage around a compressed one,
 * laid out as the x86 boot protocol and the kernel's build make them.
 */
import { execFileSync } from "node:child_process";

/** One ELF note: name, type and descriptor bytes. */
export interface Note {
  name: string;
  type: number;
  desc: Buffer;
}

const align4 = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);

/** An ELF64 file with one PT_NOTE segment per entry of `segments`, then `body`. */
export function elf64(segments: Note[][], body = Buffer.from("kernel text")): Buffer {
  const notes = segments.map((seg) =>
    Buffer.concat(
      seg.map((n) => {
        const head = Buffer.alloc(12);
        head.writeUInt32LE(n.name.length + 1, 0);
        head.writeUInt32LE(n.desc.length, 4);
        head.writeUInt32LE(n.type, 8);
        return Buffer.concat([head, align4(Buffer.from(`${n.name}\0`)), align4(n.desc)]);
      }),
    ),
  );
  const phnum = notes.length;
  const header = Buffer.alloc(64);
  header.write("\x7fELF", 0, "latin1");
  header[4] = 2; // ELFCLASS64
  header[5] = 1; // little-endian
  header[6] = 1;
  header.writeUInt16LE(2, 16); // ET_EXEC
  header.writeUInt16LE(62, 18); // x86-64
  header.writeBigUInt64LE(64n, 32); // e_phoff
  header.writeUInt16LE(64, 52);
  header.writeUInt16LE(56, 54);
  header.writeUInt16LE(phnum, 56);
  let at = 64 + 56 * phnum;
  const phdrs = notes.map((n) => {
    const ph = Buffer.alloc(56);
    ph.writeUInt32LE(4, 0); // PT_NOTE
    ph.writeBigUInt64LE(BigInt(at), 8);
    ph.writeBigUInt64LE(BigInt(n.length), 32);
    at += n.length;
    return ph;
  });
  return Buffer.concat([header, ...phdrs, ...notes, body]);
}

/** The PVH entry note (Xen's PHYS32_ENTRY) for `entry`. */
export function pvhNote(entry: number): Note {
  const desc = Buffer.alloc(4);
  desc.writeUInt32LE(entry);
  return { name: "Xen", type: 18, desc };
}

/**
 * A bzImage around `kernel`: boot sector and `setupSects` setup sectors with
 * the header (protocol 2.15), then the decompressor stub and the payload,
 * compressed with `tool` and followed by its unpacked size as the build does.
 */
export function bzImage(kernel: Buffer, tool: "xz" | "zstd" | "gzip", setupSects = 3): Buffer {
  const packed = execFileSync(tool, ["-c", "-q"], { input: kernel });
  const size = Buffer.alloc(4);
  size.writeUInt32LE(kernel.length);
  const payload = Buffer.concat([packed, size]);
  // setup_sects 0 means 4 (the boot protocol's oldest rule).
  const setup = Buffer.alloc(((setupSects || 4) + 1) * 512);
  setup[0x1f1] = setupSects;
  setup.write("HdrS", 0x202, "latin1");
  setup.writeUInt16LE(0x20f, 0x206);
  const stub = Buffer.from("decompressor stub");
  setup.writeUInt32LE(stub.length, 0x248);
  setup.writeUInt32LE(payload.length, 0x24c);
  return Buffer.concat([setup, stub, payload, Buffer.from("trailer")]);
}
