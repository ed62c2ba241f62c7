/**
 * Dynamic provider for fame's boot kernel (lib/bootkernel.ts): the golden
 * image's kernel, unpacked beside its vmlinuz for a PVH boot of TCG nodes.
 * Like the image it is shared by every stack on that image and outlives them:
 * delete keeps it (it is unpacked again from the image in a few seconds).
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { BOOT_KERNEL_FILE, BOOT_KERNEL_VERSION } from "../lib/bootkernel";
import { absolutePath } from "../lib/checks";
import { type BootKernel, ensureBootKernel, readBootKernel } from "../lib/host/bootkernel";
import * as preflight from "../lib/host/preflight";
import { type CheckFailure, defineProvider } from "./contract";

export interface BootKernelInputs {
  /** The golden image's vmlinuz (a bzImage) the kernel comes from. */
  source: string;
  /** lib/bootkernel BOOT_KERNEL_VERSION: a new one is a new file. */
  version: string;
}

export interface BootKernelOutputs extends BootKernelInputs, BootKernel {}

export const bootKernelProvider = defineProvider<BootKernelInputs, BootKernelOutputs>({
  keys: ["source", "version"],
  replaceKeys: ["source", "version"],
  async check(news) {
    const failures: CheckFailure[] = absolutePath("source", news.source, "image kernel");
    if (news.version !== undefined && news.version !== BOOT_KERNEL_VERSION) {
      failures.push({
        property: "version",
        reason: `this fame makes boot kernel version ${BOOT_KERNEL_VERSION}, not ${news.version} (internal error)`,
      });
    }
    // What unpacking needs, asked only when it is not made yet (a preview may not know the image).
    const made =
      news.source !== undefined &&
      failures.length === 0 &&
      (await readBootKernel(path.join(path.dirname(news.source), BOOT_KERNEL_FILE))) !== undefined;
    if (!made) {
      for (const reason of await preflight.missingTools(["zstd", "xz"])) {
        failures.push({ property: "source", reason });
      }
    }
    return failures;
  },
  async create(inputs: BootKernelInputs) {
    const made = await ensureBootKernel(inputs.source);
    // A kernel without a PVH entry is booted as the image has it: the id is then the target fame would write.
    const id = path.join(path.dirname(inputs.source), BOOT_KERNEL_FILE);
    return { id, outs: { ...inputs, ...made } };
  },
  async read(id: string, props?: BootKernelOutputs) {
    const found = await readBootKernel(id);
    const source = props?.source ?? path.join(path.dirname(id), "vmlinuz");
    const version = props?.version ?? BOOT_KERNEL_VERSION;
    if (found) return { id, props: { source, version, ...found } };
    // Never written (no PVH entry): still the image's own kernel, while that is there.
    if (
      props?.pvhEntry === 0 &&
      props.path === source &&
      (await fs.access(source).then(
        () => true,
        () => false,
      ))
    ) {
      return { id, props };
    }
    return {};
  },
  async delete() {
    // Shared by every stack on the image, like the image cache it sits in: kept.
  },
});

export type BootKernelArgs = {
  [K in keyof BootKernelInputs]: pulumi.Input<BootKernelInputs[K]>;
};

export class BootKernelFile extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly pvhEntry: pulumi.Output<number>;

  constructor(name: string, args: BootKernelArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      bootKernelProvider,
      name,
      { ...args, path: undefined, pvhEntry: undefined },
      opts,
      "fame",
      "BootKernel",
    );
  }
}
