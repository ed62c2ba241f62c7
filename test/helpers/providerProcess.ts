/**
 * A stand-in for the engine's Node.js dynamic-provider process, for the
 * engine watchdog tests (test/lib/exec.test.ts). Loaded from a script at
 * .../@pulumi/pulumi/cmd/dynamic-provider/index.js (where fame's providers
 * know they run under the engine), it handles uncaught errors as that
 * process does, starts a daemon detached (`sleep 301`, as the Librarian's
 * supervisor is started), calls a fame provider's create that runs `sleep
 * 300` while logging a line every 100 ms, and stays up as the real one's gRPC
 * server keeps it.
 */
import { spawn } from "node:child_process";
import { run } from "../../lib/host/exec";
import { defineProvider } from "../../providers/contract";

// As @pulumi/pulumi/cmd/dynamic-provider does it.
const uncaught = new Set<unknown>();
const onUncaught = (e: unknown) => {
  if (uncaught.has(e)) return;
  uncaught.add(e);
  console.error((e as Error).stack ?? String(e));
};
process.on("uncaughtException", onUncaught);
process.on("unhandledRejection", onUncaught);

const provider = defineProvider<Record<string, never>, Record<string, never>>({
  keys: [],
  replaceKeys: [],
  async create() {
    await run("sleep", ["300"], { timeoutMs: 600_000 });
    return { id: "build", outs: {} };
  },
  async read() {
    return {};
  },
  async delete() {},
});

spawn("sleep", ["301"], { detached: true, stdio: "ignore" }).unref();
setInterval(() => console.error("fame: mmdebstrap: still building"), 100);
void provider.create?.({});
setInterval(() => undefined, 60_000);
