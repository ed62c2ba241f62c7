/**
 * fame's boot kernel for TCG nodes (issue 19, README "Boot time"): the golden
 * image's own kernel, taken out of its bzImage and stored uncompressed beside
 * it, booted through its PVH entry. A bzImage makes the emulated CPU unpack
 * the kernel (bookworm: 8 MB of xz, 66 MB unpacked) before the kernel's first
 * instruction; QEMU loads an ELF kernel with a PVH entry note straight into
 * guest memory instead. Same kernel, same modules, same command line; not part
 * of the image recipe.
 *
 * Pure: the bzImage setup header and the ELF note. The host side is
 * lib/host/bootkernel.ts.
 */
import { elf64ProgramHeaders } from "./bootinitrd";

/** Part of the file name: a change to how it is made is a new file. */
export const BOOT_KERNEL_VERSION = "1";

/** The file fame writes beside the image's vmlinuz. */
export const BOOT_KERNEL_FILE = `fame-vmlinux-v${BOOT_KERNEL_VERSION}`;

/** Xen's ELF note type for a 32-bit physical entry point: what QEMU's PVH boot looks for. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/**
 * The compressed kernel inside a bzImage (the x86 boot protocol's setup
 * header: "HdrS" at 0x202, version 2.08 or later for payload_offset and
 * payload_length). Throws, naming what is wrong, for anything else.
 */
export function bzImagePayload(buf: Buffer): Buffer {
  if (buf.length < 0x250 || buf.toString("latin1", 0x202, 0x206) !== "HdrS") {
    throw new Error("not a bzImage (no HdrS setup header at 0x202)");
  }
  const version = buf.readUInt16LE(0x206);
  if (version < 0x208) {
    throw new Error(
      `boot protocol ${version >> 8}.${version & 0xff} has no payload fields (2.08 or later needed)`,
    );
  }
  // setup_sects 0 means 4 (the boot protocol's oldest rule); the real-mode part is that many sectors plus the boot sector.
  const setupSects = buf[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + buf.readUInt32LE(0x248);
  const length = buf.readUInt32LE(0x24c);
  if (length === 0 || start + length > buf.length) {
    throw new Error(`the payload (${length} bytes at ${start}) lies outside the file`);
  }
  return buf.subarray(start, start + length);
}

/** The compressed stream of a payload and the unpacked size the build appended to it. */
export function splitPayload(payload: Buffer): { stream: Buffer; size: number } {
  if (payload.length < 8) throw new Error(`a payload of ${payload.length} bytes is too short`);
  return {
    stream: payload.subarray(0, payload.length - 4),
    size: payload.readUInt32LE(payload.length - 4),
  };
}

/**
 * The PVH entry address of an ELF64 kernel (its Xen PHYS32_ENTRY note), or
 * undefined when it has none (a kernel built without CONFIG_PVH) or is no
 * ELF64 file.
 */
export function pvhEntry(elf: Buffer): number | undefined {
  const table = elf64ProgramHeaders(elf);
  if (!table) return undefined;
  const { phoff, phentsize, phnum } = table;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length) return undefined;
    if (elf.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    const offset = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(offset + Number(elf.readBigUInt64LE(ph + 32)), elf.length);
    const align = (n: number) => (n + 3) & ~3;
    for (let at = offset; at + 12 <= end; ) {
      const nameSize = elf.readUInt32LE(at);
      const descSize = elf.readUInt32LE(at + 4);
      const type = elf.readUInt32LE(at + 8);
      const name = elf.toString("latin1", at + 12, at + 12 + Math.max(nameSize - 1, 0));
      const desc = at + 12 + align(nameSize);
      if (name === "Xen" && type === XEN_ELFNOTE_PHYS32_ENTRY && desc + 4 <= end) {
        return elf.readUInt32LE(desc);
      }
      at = desc + align(descSize);
    }
  }
  return undefined;
}
