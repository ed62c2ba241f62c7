/**
 * Dynamic provider for fame's boot initrd (lib/bootinitrd.ts): the small
 * initramfs TCG nodes boot, made beside the golden image's initrd.img. Like
 * the image it is shared by every stack on that image and outlives them:
 * delete keeps it (it is rebuilt from the image in under a second).
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { BOOT_INITRD_FILE, BOOT_INITRD_VERSION } from "../lib/bootinitrd";
import { absolutePath } from "../lib/checks";
import {
  type BootInitrd,
  bootInitrdProblem,
  ensureBootInitrd,
  readBootInitrd,
} from "../lib/host/bootinitrd";
import * as preflight from "../lib/host/preflight";
import { type CheckFailure, defineProvider } from "./contract";

export interface BootInitrdInputs {
  /** The golden image's initrd.img the modules come from. */
  source: string;
  /** lib/bootinitrd BOOT_INITRD_VERSION: a new one is a new file. */
  version: string;
}

export interface BootInitrdOutputs extends BootInitrdInputs, BootInitrd {}

export const bootInitrdProvider = defineProvider<BootInitrdInputs, BootInitrdOutputs>({
  keys: ["source", "version"],
  replaceKeys: ["source", "version"],
  async check(news) {
    const failures: CheckFailure[] = absolutePath("source", news.source, "image initrd");
    if (news.version !== undefined && news.version !== BOOT_INITRD_VERSION) {
      failures.push({
        property: "version",
        reason: `this fame makes boot initrd version ${BOOT_INITRD_VERSION}, not ${news.version} (internal error)`,
      });
    }
    // What making it needs, asked only when it is not made yet (a preview may not know the image).
    const made =
      news.source !== undefined &&
      failures.length === 0 &&
      (await readBootInitrd(path.join(path.dirname(news.source), BOOT_INITRD_FILE))) !== undefined;
    if (!made) {
      for (const reason of await preflight.missingTools(["zstd", "xz"])) {
        failures.push({ property: "source", reason });
      }
      const busybox = await bootInitrdProblem();
      if (busybox) failures.push({ property: "source", reason: busybox });
    }
    return failures;
  },
  async create(inputs: BootInitrdInputs) {
    const made = await ensureBootInitrd(inputs.source);
    return { id: made.path, outs: { ...inputs, ...made } };
  },
  async read(id: string, props?: BootInitrdOutputs) {
    const found = await readBootInitrd(id);
    if (!found) return {};
    return {
      id,
      props: {
        source: props?.source ?? path.join(path.dirname(id), "initrd.img"),
        version: props?.version ?? BOOT_INITRD_VERSION,
        ...found,
      },
    };
  },
  async delete() {
    // Shared by every stack on the image, like the image cache it sits in: kept.
  },
});

export type BootInitrdArgs = {
  [K in keyof BootInitrdInputs]: pulumi.Input<BootInitrdInputs[K]>;
};

export class BootInitrdFile extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly kernelRelease: pulumi.Output<string>;
  declare readonly modules: pulumi.Output<string[]>;

  constructor(name: string, args: BootInitrdArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      bootInitrdProvider,
      name,
      { ...args, path: undefined, kernelRelease: undefined, modules: undefined },
      opts,
      "fame",
      "BootInitrd",
    );
  }
}
