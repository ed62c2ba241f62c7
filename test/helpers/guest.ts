/** The small test guest (Debian kernel + busybox initramfs with hello_fabric), built once per run. */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROOT, RUN_DIR, scratchDir } from "./sandbox";

const KIT = path.join(RUN_DIR, "guest-kit");
let kit: { kernel: string; initrd: string } | undefined;

/**
 * Built (or found up to date) in .test-run/guest-kit, where .ci/run builds it
 * on the host network, then copied into this run's scratch: QEMU opens the
 * kernel and initrd, and it may not be able to enter the checkout.
 */
export function guestKit(): { kernel: string; initrd: string } {
  if (!kit) {
    fs.mkdirSync(KIT, { recursive: true });
    execFileSync("bash", [path.join(ROOT, "test", "harness", "guest-kit.sh"), KIT], {
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 300_000,
    });
    const dir = scratchDir("guest-kit");
    for (const f of ["vmlinuz", "initrd.img"]) {
      fs.copyFileSync(path.join(KIT, f), path.join(dir, f));
      fs.chmodSync(path.join(dir, f), 0o644);
    }
    kit = { kernel: path.join(dir, "vmlinuz"), initrd: path.join(dir, "initrd.img") };
  }
  return kit;
}

/** Waits until `file` contains a line matching `re`; returns the file's text. */
export async function waitForLog(file: string, re: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (re.test(text)) return text;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${re} in ${file}:\n${text.slice(-2000)}`,
      );
    await new Promise((r) => setTimeout(r, 1000));
  }
}
