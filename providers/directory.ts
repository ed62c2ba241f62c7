/**
 * Dynamic provider for the artifact directory (console logs, INI, env.sh).
 * Deleting removes the directory only when it is empty: it may hold the FAM
 * file or logs the user still wants.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { absolutePath } from "../lib/checks";
import { defineProvider, type Undo } from "./contract";

export interface DirectoryInputs {
  path: string;
  mode: number;
}
export type DirectoryOutputs = DirectoryInputs;

export const directoryProvider = defineProvider<DirectoryInputs, DirectoryOutputs>({
  keys: ["path", "mode"],
  replaceKeys: ["path"],
  uniqueKeys: ["path"],
  async check(news) {
    const failures = absolutePath("path", news.path);
    if (failures.length === 0 && news.path !== undefined) {
      const st = await fs.stat(news.path).catch(() => undefined);
      if (st && !st.isDirectory()) {
        failures.push({ property: "path", reason: `${news.path} exists and is not a directory` });
      } else if (!st) {
        // The nearest existing ancestor must be a directory we can write into.
        let parent = path.dirname(news.path);
        let pst = await fs.stat(parent).catch(() => undefined);
        while (!pst && parent !== "/") {
          parent = path.dirname(parent);
          pst = await fs.stat(parent).catch(() => undefined);
        }
        const writable =
          pst?.isDirectory() &&
          (await fs.access(parent, fs.constants.W_OK).then(
            () => true,
            () => false,
          ));
        if (!writable) {
          failures.push({
            property: "path",
            reason: `cannot create ${news.path}: ${parent} is ${pst?.isDirectory() ? "not writable" : "not a directory"}; choose another fame:dir`,
          });
        }
      }
    }
    return failures;
  },
  async create(inputs: DirectoryInputs, undo: Undo) {
    const first = await fs.mkdir(inputs.path, { recursive: true, mode: inputs.mode });
    if (first !== undefined) {
      // Only the directories made here, deepest first, and only while empty.
      undo.push(`remove new directory ${first}`, async () => {
        const top = path.resolve(first);
        for (let d = path.resolve(inputs.path); ; d = path.dirname(d)) {
          const kept = await fs.rmdir(d).then(
            () => false,
            (e: NodeJS.ErrnoException) => {
              // Something else now holds files there: it stays.
              if (e.code === "ENOTEMPTY" || e.code === "EEXIST") return true;
              throw e;
            },
          );
          if (kept || d === top || d === path.dirname(d)) break;
        }
      });
    }
    await fs.chmod(inputs.path, inputs.mode);
    return { id: inputs.path, outs: { ...inputs } satisfies DirectoryOutputs };
  },
  async read(id: string, props?: DirectoryOutputs) {
    const st = await fs.stat(id).catch(() => undefined);
    if (!st?.isDirectory()) return {};
    return {
      id,
      props: { path: id, mode: props?.mode ?? st.mode & 0o7777 } satisfies DirectoryOutputs,
    };
  },
  async update(_id: string, _olds: DirectoryOutputs, news: DirectoryInputs) {
    await fs.mkdir(news.path, { recursive: true, mode: news.mode });
    await fs.chmod(news.path, news.mode);
    return { outs: { ...news } satisfies DirectoryOutputs };
  },
  async delete(id: string) {
    await fs.rmdir(id).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT" && e.code !== "ENOTEMPTY" && e.code !== "EEXIST") throw e;
    });
  },
});

export type DirectoryArgs = { [K in keyof DirectoryInputs]: pulumi.Input<DirectoryInputs[K]> };

export class Directory extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  constructor(name: string, args: DirectoryArgs, opts?: pulumi.CustomResourceOptions) {
    super(directoryProvider, name, { ...args }, opts, "fame", "Directory");
  }
}
