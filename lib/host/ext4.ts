/** ext4 file systems made from a directory with `mke2fs -d`: no loop device, no mount. */
import { run } from "./exec";

export async function makeExt4FromDir(
  dir: string,
  image: string,
  sizeBytes: number,
  label: string,
): Promise<void> {
  const kib = Math.ceil(sizeBytes / 1024);
  await run("mke2fs", ["-q", "-F", "-t", "ext4", "-L", label, "-d", dir, image, `${kib}k`], {
    timeoutMs: 3_600_000,
  });
}
