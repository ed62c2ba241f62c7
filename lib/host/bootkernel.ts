/**
 * Makes fame's boot kernel (lib/bootkernel.ts) beside the golden image's
 * vmlinuz: unpacks the bzImage's payload (xz, zstd or gzip) and keeps it when
 * it is an ELF kernel with a PVH entry. The result depends only on the image's
 * kernel, so stacks sharing an image share the file; it is written aside and
 * renamed, so a booting node never reads half of it.
 */
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { compressionOf } from "../bootinitrd";
import { BOOT_KERNEL_FILE, bzImagePayload, pvhEntry, splitPayload } from "../bootkernel";
import { decompress, writeBeside } from "./bootinitrd";

export interface BootKernel {
  /** The kernel fame boots TCG nodes with: the unpacked one, or the image's own when it has no PVH entry. */
  path: string;
  /** Its PVH entry address, or 0 when `path` is the image's own bzImage. */
  pvhEntry: number;
}

/** The unpacked kernel of the bzImage `source` (reads it, and runs zstd/xz in a temporary directory). */
export async function unpackKernel(source: string): Promise<Buffer> {
  const { stream, size } = splitPayload(bzImagePayload(await fs.readFile(source)));
  const kind = compressionOf(stream);
  if (!kind || kind === "none") {
    throw new Error(`${source}: the kernel is compressed in a format fame does not unpack`);
  }
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "fame-kernel-"));
  try {
    const elf = await decompress(stream, kind, tmp);
    if (elf.length !== size) {
      throw new Error(
        `${source}: the kernel unpacked to ${elf.length} bytes, its header says ${size}`,
      );
    }
    return elf;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The boot kernel beside `source`, made when missing; an existing one is read
 * back, not rewritten. A kernel without a PVH entry (built without CONFIG_PVH)
 * is booted as it is: the result then names `source` itself.
 */
export async function ensureBootKernel(source: string): Promise<BootKernel> {
  const target = path.join(path.dirname(source), BOOT_KERNEL_FILE);
  const existing = await readBootKernel(target);
  if (existing) return existing;
  const elf = await unpackKernel(source);
  const entry = pvhEntry(elf);
  if (entry === undefined) return { path: source, pvhEntry: 0 };
  await writeBeside(target, elf, source);
  return { path: target, pvhEntry: entry };
}

/** What a boot kernel file is, or undefined when there is none (any other error is thrown). */
export async function readBootKernel(file: string): Promise<BootKernel | undefined> {
  const data = await fs.readFile(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
  if (!data) return undefined;
  const entry = pvhEntry(data);
  if (entry === undefined) throw new Error(`${file}: not an ELF kernel with a PVH entry`);
  return { path: file, pvhEntry: entry };
}
