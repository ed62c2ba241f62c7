/**
 * Dynamic provider for the artifact directory (console logs, INI, env.sh).
 * It holds the stack's owner record (`.fame-owner`, lib/ownership.ts), written
 * on create and update and refused when another stack's is there. Deleting
 * removes the directory only when nothing but that record is left: it may
 * hold the FAM file, the Librarian database or logs the user still wants, and
 * then the record stays with them.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { absolutePath } from "../lib/checks";
import { claim, release } from "../lib/host/ownership";
import { DIR_OWNER_FILE, parseOwnerRecord } from "../lib/ownership";
import { defineProvider, type Undo } from "./contract";

export interface DirectoryInputs {
  path: string;
  mode: number;
  /** The stack that owns it, `<project>/<stack>` (absent in states older than owner records). */
  owner?: string;
}
export type DirectoryOutputs = DirectoryInputs;

export const directoryProvider = defineProvider<DirectoryInputs, DirectoryOutputs>({
  keys: ["path", "mode", "owner"],
  replaceKeys: ["path"],
  uniqueKeys: ["path"],
  async check(news) {
    const failures = absolutePath("path", news.path);
    if (failures.length === 0 && news.path !== undefined) {
      const st = await fs.stat(news.path).catch(() => undefined);
      if (st && !st.isDirectory()) {
        failures.push({ property: "path", reason: `${news.path} exists and is not a directory` });
      } else if (st && news.owner !== undefined) {
        const text = await fs
          .readFile(path.join(news.path, DIR_OWNER_FILE), "utf8")
          .catch(() => undefined);
        const rec = text === undefined ? undefined : parseOwnerRecord(text);
        if (rec && !("problem" in rec) && rec.owner !== news.owner) {
          failures.push({
            property: "path",
            reason: `${news.path} belongs to fame stack ${rec.owner} (${DIR_OWNER_FILE}), not ${news.owner}: choose another fame:dir`,
          });
        }
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
    // Last: a refused claim leaves nothing of its own for the undo above.
    if (inputs.owner !== undefined) {
      await claim(path.join(inputs.path, DIR_OWNER_FILE), inputs.owner, "dir");
    }
    return { id: inputs.path, outs: { ...inputs } satisfies DirectoryOutputs };
  },
  async read(id: string, props?: DirectoryOutputs) {
    const st = await fs.stat(id).catch(() => undefined);
    if (!st?.isDirectory()) return {};
    return {
      id,
      props: {
        path: id,
        mode: props?.mode ?? st.mode & 0o7777,
        ...(props?.owner !== undefined ? { owner: props.owner } : {}),
      } satisfies DirectoryOutputs,
    };
  },
  async update(_id: string, _olds: DirectoryOutputs, news: DirectoryInputs) {
    await makeOwned(news);
    return { outs: { ...news } satisfies DirectoryOutputs };
  },
  async delete(id: string, props: DirectoryOutputs) {
    // The record goes only with the directory: whatever else is left keeps its owner.
    const left = await fs.readdir(id).catch(() => [] as string[]);
    if (props.owner !== undefined && left.length === 1 && left[0] === DIR_OWNER_FILE) {
      await release(path.join(id, DIR_OWNER_FILE), props.owner);
    }
    await fs.rmdir(id).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT" && e.code !== "ENOTEMPTY" && e.code !== "EEXIST") throw e;
    });
  },
});

/** Makes the directory (mode as asked) and writes, or confirms, its owner record. */
async function makeOwned(d: DirectoryInputs): Promise<void> {
  await fs.mkdir(d.path, { recursive: true, mode: d.mode });
  await fs.chmod(d.path, d.mode);
  if (d.owner !== undefined) await claim(path.join(d.path, DIR_OWNER_FILE), d.owner, "dir");
}

export type DirectoryArgs = { [K in keyof DirectoryInputs]: pulumi.Input<DirectoryInputs[K]> };

export class Directory extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  constructor(name: string, args: DirectoryArgs, opts?: pulumi.CustomResourceOptions) {
    super(directoryProvider, name, { ...args }, opts, "fame", "Directory");
  }
}
