/** ext4 file systems made from a directory with `mke2fs -d`: no loop device, no mount. */
import { run } from "./exec";

export async function makeExt4FromDir(
  dir: string,
  image: string,
  sizeBytes: number,
  label: string,
  opts: { journal?: boolean } = {},
): Promise<void> {
  const kib = Math.ceil(sizeBytes / 1024);
  // A small read-only disk (the seed) needs no journal, which would dwarf its content.
  const features = opts.journal === false ? ["-O", "^has_journal"] : [];
  await run(
    "mke2fs",
    ["-q", "-F", "-t", "ext4", ...features, "-L", label, "-d", dir, image, `${kib}k`],
    {
      timeoutMs: 3_600_000,
    },
  );
}
