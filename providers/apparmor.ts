/**
 * Dynamic provider for fame's AppArmor block in the libvirt-qemu abstraction's
 * local include. Written whenever AppArmor's configuration directory exists;
 * `enforced` reports whether the kernel actually has AppArmor enabled.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { type AppArmorRule, rulesIn, withBlock } from "../lib/apparmor";
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

async function apply(inputs: AppArmorInputs, rules: AppArmorRule[]): Promise<boolean> {
  // No AppArmor configuration: no confinement to open up, nothing to write.
  const root = await fs
    .stat(path.dirname(path.dirname(path.dirname(inputs.file))))
    .catch(() => undefined);
  if (!root?.isDirectory()) return false;
  await fs.mkdir(path.dirname(inputs.file), { recursive: true });
  const text = await fs.readFile(inputs.file, "utf8").catch(() => "");
  const next = withBlock(text, inputs.owner, rules);
  if (next !== text) {
    const tmp = `${inputs.file}.fame-new`;
    await fs.writeFile(tmp, next, { mode: 0o644 });
    await fs.rename(tmp, inputs.file);
  }
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
