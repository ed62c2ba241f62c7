/**
 * Dynamic provider for a node's seed disk: a tiny ext4 image (label FAMESEED)
 * carrying the node's credentials, read by the image's fame-seed service at
 * boot. Its content is secret and never stored in state: only its hash is.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { absolutePath } from "../lib/checks";
import { run } from "../lib/host/exec";
import { makeExt4FromDir } from "../lib/host/ext4";
import * as preflight from "../lib/host/preflight";
import { SEED_LABEL } from "../lib/image";
import { defineProvider } from "./contract";

export interface SeedDiskInputs {
  path: string;
  /**
   * File name -> content (secret: authorized_keys, id_ed25519, ...). A
   * `password` entry is written as `password-hash` (SHA-512 crypt): the plain
   * password never reaches the disk.
   */
  files: Record<string, string>;
}

export interface SeedDiskOutputs {
  path: string;
  /** sha256 of the files, so a change shows without keeping the content. */
  contentHash: string;
}

const SEED_BYTES = 1024 * 1024;

export function seedHash(files: Record<string, string>): string {
  const h = crypto.createHash("sha256");
  for (const name of Object.keys(files).sort()) h.update(`${name}\0${files[name]}\0`);
  return h.digest("hex");
}

async function writeSeed(inputs: SeedDiskInputs): Promise<SeedDiskOutputs> {
  const staging = await fs.mkdtemp(path.join(os.tmpdir(), "fame-seed-"));
  // Made aside and renamed into place: a failure leaves the old seed (or none) and no part-made one.
  const next = `${inputs.path}.new`;
  try {
    const content = path.join(staging, "content");
    await fs.mkdir(content, { mode: 0o700 });
    for (const [name, text] of Object.entries(inputs.files)) {
      if (!/^[A-Za-z0-9._-]+$/.test(name))
        throw new Error(`seed file name ${JSON.stringify(name)} is not a plain file name`);
      if (name === "password") {
        const hash = await run("openssl", ["passwd", "-6", "-stdin"], { input: `${text}\n` });
        await fs.writeFile(path.join(content, "password-hash"), hash.trim(), { mode: 0o600 });
      } else {
        await fs.writeFile(path.join(content, name), text, { mode: 0o600 });
      }
    }
    await fs.mkdir(path.dirname(inputs.path), { recursive: true });
    await makeExt4FromDir(content, next, SEED_BYTES, SEED_LABEL, { journal: false });
    await fs.chmod(next, 0o600);
    await fs.rename(next, inputs.path);
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
    await fs.rm(next, { force: true }).catch(() => undefined);
  }
  return { path: inputs.path, contentHash: seedHash(inputs.files) };
}

export const seedDiskProvider = defineProvider<SeedDiskInputs, SeedDiskOutputs>({
  // The content is secret: diff compares its hash, never the files.
  keys: ["path", "contentHash"],
  replaceKeys: ["path"],
  uniqueKeys: ["path"],
  project: (news) => ({ path: news.path, contentHash: seedHash(news.files) }),
  async check(news) {
    const failures = absolutePath("path", news.path);
    // Unknown files (a key not yet made): openssl may be needed, so ask for it.
    const tools = news.files && !("password" in news.files) ? ["mke2fs"] : ["mke2fs", "openssl"];
    for (const reason of await preflight.missingTools(tools)) {
      failures.push({ property: "path", reason });
    }
    return failures;
  },
  async create(inputs: SeedDiskInputs) {
    const outs = await writeSeed(inputs);
    return { id: inputs.path, outs };
  },
  async read(id: string, props?: SeedDiskOutputs) {
    const present = await fs.stat(id).catch(() => undefined);
    // The content cannot be re-read without mounting: a present file keeps its recorded hash.
    return present && props ? { id, props } : {};
  },
  async update(_id: string, _olds: SeedDiskOutputs, news: SeedDiskInputs) {
    // Rewritten in place; a running node reads it at its next boot.
    return { outs: await writeSeed(news) };
  },
  async delete(id: string) {
    await fs.rm(id, { force: true });
  },
});

export type SeedDiskArgs = { [K in keyof SeedDiskInputs]: pulumi.Input<SeedDiskInputs[K]> };

export class SeedDisk extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly contentHash: pulumi.Output<string>;

  constructor(name: string, args: SeedDiskArgs, opts?: pulumi.CustomResourceOptions) {
    super(seedDiskProvider, name, { ...args, contentHash: undefined }, opts, "fame", "SeedDisk");
  }
}
