/** qemu-img operations on node disks (argument arrays, JSON output). */
import { run } from "./exec";

/** A copy-on-write qcow2 overlay on `backing` (which is never written). */
export async function createOverlay(
  file: string,
  backing: string,
  sizeBytes: number,
): Promise<void> {
  await run("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-F",
    "qcow2",
    "-b",
    backing,
    file,
    String(sizeBytes),
  ]);
}

export async function convertToQcow2(raw: string, qcow2: string): Promise<void> {
  await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2], {
    timeoutMs: 3_600_000,
  });
}
