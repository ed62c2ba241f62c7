/** Byte-level reads of host files (the FAM file) for assertions. */
import * as fs from "node:fs";

/** `len` bytes of `file` at `offset`. */
export function readAt(file: string, offset: number, len: number): Buffer {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}
