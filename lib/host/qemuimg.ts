/** qemu-img operations on node disks (argument arrays, JSON output). */
import { run } from "./exec";

export interface DiskInfo {
  format: string;
  virtualSizeBytes: number;
  /** Bytes allocated on the host. */
  actualSizeBytes: number;
  /** Absolute backing file, "" when none. */
  backingFile: string;
}

export async function diskInfo(file: string): Promise<DiskInfo> {
  // -U: read the header even while QEMU holds the image open.
  const out = await run("qemu-img", ["info", "-U", "--output=json", file]);
  const j = JSON.parse(out) as Record<string, unknown>;
  return {
    format: String(j.format ?? ""),
    virtualSizeBytes: Number(j["virtual-size"] ?? 0),
    actualSizeBytes: Number(j["actual-size"] ?? 0),
    backingFile: String(j["full-backing-filename"] ?? j["backing-filename"] ?? ""),
  };
}

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
