/**
 * Reads a qcow2 image's header directly (virtual size, backing file): the same
 * facts `qemu-img info` reports, without a process per disk, which makes a
 * no-change refresh of many nodes cheap.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";

export interface Qcow2Header {
  version: number;
  virtualSizeBytes: number;
  /** Backing file as written in the image, resolved against the image's directory; "" when none. */
  backingFile: string;
}

const MAGIC = 0x514649fb; // "QFI\xfb"

export async function readQcow2Header(file: string): Promise<Qcow2Header> {
  const handle = await fs.open(file, "r");
  try {
    const head = Buffer.alloc(32);
    await handle.read(head, 0, 32, 0);
    if (head.readUInt32BE(0) !== MAGIC) throw new Error(`${file} is not a qcow2 image`);
    const backingOffset = Number(head.readBigUInt64BE(8));
    const backingLength = head.readUInt32BE(16);
    let backingFile = "";
    if (backingOffset > 0 && backingLength > 0) {
      const name = Buffer.alloc(backingLength);
      await handle.read(name, 0, backingLength, backingOffset);
      backingFile = path.resolve(path.dirname(file), name.toString("utf8"));
    }
    return {
      version: head.readUInt32BE(4),
      virtualSizeBytes: Number(head.readBigUInt64BE(24)),
      backingFile,
    };
  } finally {
    await handle.close();
  }
}
