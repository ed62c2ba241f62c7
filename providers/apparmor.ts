/**
 * Dynamic provider for fame's AppArmor block in the libvirt-qemu abstraction's
 * local include. Written whenever AppArmor's configuration directory exists;
 * `enforced` reports whether the kernel actually has AppArmor enabled.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { type AppArmorRule, rulesIn, withBlock } from "../lib/apparmor";
import { pidAlive } from "../lib/host/exec";
import { type CheckFailure, defineProvider } from "./contract";

export interface AppArmorInputs {
  /** The local include file (lib/apparmor APPARMOR_LOCAL_FILE). */
  file: string;
  /** The stack, `<project>/<stack>`, naming its block. */
  owner: string;
  rules: AppArmorRule[];
}

export interface AppArmorOutputs extends AppArmorInputs {
  /** The block is in place (AppArmor's configuration exists on this host). */
  written: boolean;
  /** The kernel enforces AppArmor. */
  enforced: boolean;
}

async function enforced(): Promise<boolean> {
  const v = await fs.readFile("/sys/module/apparmor/parameters/enabled", "utf8").catch(() => "N");
  return v.trim() === "Y";
}

/**
 * Runs `fn` holding `<file>.fame-lock` (created with O_EXCL, holding the
 * owner's pid; a lock whose process is gone is broken). Other stacks (other
 * processes) and other resources of this one edit the same file: each
 * read-modify-write happens alone.
 */
async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.fame-lock`;
  const token = `${process.pid} ${Date.now()} ${Math.random()}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await fs.writeFile(lock, token, { flag: "wx", mode: 0o644 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const held = await fs.readFile(lock, "utf8").catch(() => "");
    const holder = Number(held.split(" ")[0]);
    if (held !== "" && (!Number.isSafeInteger(holder) || holder <= 0 || !pidAlive(holder))) {
      // Stale (its writer was killed): remove it only if it is still that same lock.
      if ((await fs.readFile(lock, "utf8").catch(() => "")) === held)
        await fs.rm(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${lock} (held by process ${holder})`);
    }
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
  }
  try {
    return await fn();
  } finally {
    if ((await fs.readFile(lock, "utf8").catch(() => "")) === token)
      await fs.rm(lock, { force: true });
  }
}

async function apply(inputs: AppArmorInputs, rules: AppArmorRule[]): Promise<boolean> {
  // No AppArmor configuration: no confinement to open up, nothing to write.
  const root = await fs
    .stat(path.dirname(path.dirname(path.dirname(inputs.file))))
    .catch(() => undefined);
  if (!root?.isDirectory()) return false;
  await fs.mkdir(path.dirname(inputs.file), { recursive: true });
  await withFileLock(inputs.file, async () => {
    const text = await fs.readFile(inputs.file, "utf8").catch(() => "");
    const next = withBlock(text, inputs.owner, rules);
    if (next === text) return;
    // A unique temp file beside the target, renamed over it: readers see the old or the new file.
    const tmp = `${inputs.file}.fame-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    try {
      await fs.writeFile(tmp, next, { mode: 0o644, flag: "wx" });
      await fs.rename(tmp, inputs.file);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  });
  return true;
}

export const appArmorProvider = defineProvider<AppArmorInputs, AppArmorOutputs>({
  keys: ["file", "owner", "rules"],
  replaceKeys: ["file", "owner"],
  check(news) {
    const failures: CheckFailure[] = [];
    for (const r of news.rules ?? []) {
      if (!r.path.startsWith("/") || /[\0\n]/.test(r.path))
        failures.push({
          property: "rules",
          reason: `AppArmor rule path ${JSON.stringify(r.path)} must be absolute and one line`,
        });
      if (!/^[rwkl]+$/.test(r.perms))
        failures.push({
          property: "rules",
          reason: `AppArmor permissions ${JSON.stringify(r.perms)} must be letters of r, w, k, l`,
        });
    }
    return failures;
  },
  async create(inputs: AppArmorInputs) {
    const written = await apply(inputs, inputs.rules);
    const outs = { ...inputs, written, enforced: await enforced() } satisfies AppArmorOutputs;
    return { id: `${inputs.file}#${inputs.owner}`, outs };
  },
  async read(id: string, props?: AppArmorOutputs) {
    if (!props) return {};
    const text = await fs.readFile(props.file, "utf8").catch(() => undefined);
    if (text === undefined) return { id, props: { ...props, rules: [], written: false } };
    return {
      id,
      props: { ...props, rules: rulesIn(text, props.owner), enforced: await enforced() },
    };
  },
  async update(_id: string, _olds: AppArmorOutputs, news: AppArmorInputs) {
    const written = await apply(news, news.rules);
    return { outs: { ...news, written, enforced: await enforced() } satisfies AppArmorOutputs };
  },
  async delete(_id: string, props: AppArmorOutputs) {
    await apply(props, []);
  },
});

export type AppArmorArgs = { [K in keyof AppArmorInputs]: pulumi.Input<AppArmorInputs[K]> };

export class AppArmorAccess extends pulumi.dynamic.Resource {
  declare readonly written: pulumi.Output<boolean>;
  declare readonly enforced: pulumi.Output<boolean>;
  constructor(name: string, args: AppArmorArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      appArmorProvider,
      name,
      { ...args, written: undefined, enforced: undefined },
      opts,
      "fame",
      "AppArmorAccess",
    );
  }
}
