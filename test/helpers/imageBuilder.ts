/**
 * Another run's image build in a process of its own, for the build lock tests
 * (test/providers/imagecache.test.ts): `node -r ts-node/register imageBuilder.ts
 * <cacheDir> <key> <mode> [seconds]` runs ensureImage with a stand-in build
 * that is stuck (a silent `sleep 300`), talking (a line every 200 ms) or
 * quiet (short commands, no output) for `seconds`. It prints "building" once
 * it holds the lock.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "../../lib/host/exec";
import { ensureImage, IMAGE_FILES } from "../../lib/host/imagebuild";
import { imageRecipe } from "../../lib/image";
import { imageInputs } from "./fixtures";

const [cacheDir, key, mode, seconds = "6"] = process.argv.slice(2);
if (!cacheDir || !key || !["stuck", "talking", "quiet"].includes(mode ?? "")) {
  console.error("usage: imageBuilder.ts <cacheDir> <key> stuck|talking|quiet [seconds]");
  process.exit(2);
}
const steps = String(Math.ceil(Number(seconds) / 0.2));
const commands: Record<string, [string, string[]]> = {
  stuck: ["sleep", ["300"]],
  talking: ["sh", ["-c", `for i in $(seq ${steps}); do echo step $i; sleep 0.2; done`]],
  quiet: [
    "sh",
    ["-c", `for i in $(seq ${steps}); do head -c 100000 /dev/zero >/dev/null; sleep 0.2; done`],
  ],
};

ensureImage({
  cacheDir,
  key,
  recipe: imageRecipe(imageInputs()),
  hook: "",
  log: (m) => console.error(m),
  build: async (work, _recipe, _hook, log) => {
    process.stdout.write("building\n");
    const [cmd, args] = commands[mode as string] ?? ["false", []];
    await run(cmd, args, { timeoutMs: 600_000, onLine: log });
    for (const f of IMAGE_FILES) fs.writeFileSync(path.join(work, f), f);
  },
}).then(
  () => process.exit(0),
  (e: Error) => {
    console.error(e.message);
    process.exit(1);
  },
);
