/**
 * Dynamic provider for a small text file in the artifact directory (env.sh,
 * the Librarian INI). Not for secrets: its content is kept in state.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { absolutePath } from "../lib/checks";
import { defineProvider } from "./contract";

export interface ArtifactFileInputs {
  path: string;
  content: string;
  mode: number;
}
export type ArtifactFileOutputs = ArtifactFileInputs;

async function write(inputs: ArtifactFileInputs): Promise<ArtifactFileOutputs> {
  await fs.mkdir(path.dirname(inputs.path), { recursive: true });
  // Written aside and renamed, so a reader never sees half a file.
  const next = `${inputs.path}.fame-new`;
  try {
    await fs.writeFile(next, inputs.content, { mode: inputs.mode });
    await fs.chmod(next, inputs.mode);
    await fs.rename(next, inputs.path);
  } finally {
    // A failed write leaves no half-made file beside the real one.
    await fs.rm(next, { force: true }).catch(() => undefined);
  }
  return { ...inputs };
}

export const artifactFileProvider = defineProvider<ArtifactFileInputs, ArtifactFileOutputs>({
  keys: ["path", "content", "mode"],
  replaceKeys: ["path"],
  uniqueKeys: ["path"],
  check: (news) => absolutePath("path", news.path),
  async create(inputs: ArtifactFileInputs) {
    return { id: inputs.path, outs: await write(inputs) };
  },
  async read(id: string, props?: ArtifactFileOutputs) {
    const content = await fs.readFile(id, "utf8").catch(() => undefined);
    if (content === undefined) return {};
    const st = await fs.stat(id);
    return { id, props: { path: id, content, mode: props ? st.mode & 0o777 : 0o644 } };
  },
  async update(_id: string, _olds: ArtifactFileOutputs, news: ArtifactFileInputs) {
    return { outs: await write(news) };
  },
  async delete(id: string) {
    await fs.rm(id, { force: true });
  },
});

export type ArtifactFileArgs = {
  [K in keyof ArtifactFileInputs]: pulumi.Input<ArtifactFileInputs[K]>;
};

export class ArtifactFile extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly content: pulumi.Output<string>;

  constructor(name: string, args: ArtifactFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(artifactFileProvider, name, { ...args }, opts, "fame", "ArtifactFile");
  }
}
