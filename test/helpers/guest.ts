/** The small test guest (Debian kernel + busybox initramfs with hello_fabric), built once per run. */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROOT, RUN_DIR } from "./sandbox";

const KIT = path.join(RUN_DIR, "guest-kit");
let built = false;

export function guestKit(): { kernel: string; initrd: string } {
  const kernel = path.join(KIT, "vmlinuz");
  const initrd = path.join(KIT, "initrd.img");
  if (!built) {
    fs.mkdirSync(KIT, { recursive: true });
    fs.chmodSync(RUN_DIR, 0o755);
    execFileSync("bash", [path.join(ROOT, "test", "harness", "guest-kit.sh"), KIT], {
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 300_000,
    });
    built = true;
  }
  return { kernel, initrd };
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
