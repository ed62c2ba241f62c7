import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { BOOT_INITRD_VERSION } from "../lib/bootinitrd";
import { BOOT_KERNEL_VERSION } from "../lib/bootkernel";
import type { Suite } from "../lib/config";
import { tmLibrarianFiles } from "../lib/host/tmlibrarian";
import { type ImageInputs, type ImageRecipe, imageKey, imageRecipe } from "../lib/image";
import { ADAPTER_FILES, lfsImageExtras } from "../lib/lfs";
import { SCHEMA } from "../lib/schema";
import { BootInitrdFile } from "../providers/bootInitrd";
import { BootKernelFile } from "../providers/bootKernel";
import { GoldenImageBuild } from "../providers/goldenImage";

const TEMPLATES = path.join(__dirname, "..", "templates");

export interface GoldenImageArgs {
  /**
   * Debian release (`fame:suite`). No default here: the program decides it per
   * stack (a new stack trixie, one applied before the key existed bookworm).
   */
  suite: Suite;
  /** Debian mirror. Default (from the cluster): `fame:mirror`. */
  mirror: string;
  /** Proxy the build reaches the mirror through, kept secret; not part of the image (nodes get it from their seed disk). Default: none. */
  proxy?: string;
  /** Optional L4FAME repository; adds the FAME kernel and l4fame-node. Default: none. */
  l4fame?: string;
  /** Kernel package from L4FAME (held). Default: linux-image-4.14.0-l4fame. */
  kernel?: string;
  /** Image (and node disk) size in GB. Default: 6. */
  sizeGbytes?: number;
  /** Absolute cache directory. Default: /var/cache/fame/images. */
  cacheDir?: string;
  /** Customize hook text. Default: templates/image/customize.sh. */
  hook?: string;
  /** hello_fabric source installed in the image. Default: templates/hello_fabric.c. */
  helloFabric?: string;
  /** Boot script bringing FAM up as /dev/fam. Default: templates/image/fame-fam.sh. */
  famScript?: string;
  /**
   * The Librarian File System on the nodes: tm-librarian's tree (a local
   * directory, already fetched), fame's adapter (templates/lfs) and the /lfs
   * unit talking to torms on `port`. Default: none (the image is unchanged).
   */
  lfs?: { tmLibrarianDir: string; port: number };
  /**
   * Also make fame's boot files beside the image's: its boot initrd
   * (lib/bootinitrd) and the kernel unpacked for a PVH boot (lib/bootkernel).
   * What TCG nodes boot; not part of the recipe. Default: false.
   */
  fameBoot?: boolean;
}

/** The image additions for the Librarian File System (reads templates/lfs and the tm-librarian tree). */
export function lfsExtras(lfs: { tmLibrarianDir: string; port: number }) {
  const adapter = Object.fromEntries(
    ADAPTER_FILES.map((f) => [f, fs.readFileSync(path.join(TEMPLATES, "lfs", f), "utf8")]),
  ) as Record<(typeof ADAPTER_FILES)[number], string>;
  return lfsImageExtras({
    port: lfs.port,
    adapter,
    tmLibrarian: tmLibrarianFiles(lfs.tmLibrarianDir),
  });
}

/** The recipe, hook and cache key for these args (pure apart from reading the templates). */
export function goldenImageRecipe(args: GoldenImageArgs): {
  inputs: ImageInputs;
  recipe: ImageRecipe;
  hook: string;
  key: string;
} {
  const inputs: ImageInputs = {
    suite: args.suite,
    mirror: args.mirror,
    l4fame: args.l4fame ?? "",
    kernel: args.kernel ?? SCHEMA.kernel.default,
    sizeGbytes: args.sizeGbytes ?? SCHEMA.vfsGbytes.default,
    helloFabric:
      args.helloFabric ?? fs.readFileSync(path.join(TEMPLATES, "hello_fabric.c"), "utf8"),
    famScript:
      args.famScript ?? fs.readFileSync(path.join(TEMPLATES, "image", "fame-fam.sh"), "utf8"),
    ...(args.lfs ? { extras: lfsExtras(args.lfs) } : {}),
  };
  const hook = args.hook ?? fs.readFileSync(path.join(TEMPLATES, "image", "customize.sh"), "utf8");
  const recipe = imageRecipe(inputs);
  return { inputs, recipe, hook, key: imageKey(recipe, hook) };
}

/**
 * The golden image every node boots: Debian from the mirror via mmdebstrap,
 * turned into qcow2 without loop devices or mounts, cached by recipe hash.
 * Nothing of a stack is in it (user, names and subnet come from each node's
 * seed disk), so every stack with the same recipe shares one cached image.
 */
export class GoldenImage extends pulumi.ComponentResource {
  readonly key: string;
  readonly qcow2: pulumi.Output<string>;
  readonly kernel: pulumi.Output<string>;
  readonly initrd: pulumi.Output<string>;
  readonly packages: pulumi.Output<string[]>;
  /** fame's boot initrd, when `fameBoot` asked for it. */
  readonly bootInitrd?: pulumi.Output<string>;
  /** The kernel for a PVH boot (the image's own if it has no PVH entry), when `fameBoot` asked for it. */
  readonly bootKernel?: pulumi.Output<string>;
  readonly build: GoldenImageBuild;

  constructor(name: string, args: GoldenImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:image:GoldenImage", name, {}, opts);
    const { inputs, recipe, hook, key } = goldenImageRecipe(args);
    this.key = key;
    this.build = new GoldenImageBuild(
      `${name}-build`,
      {
        cacheDir: args.cacheDir ?? SCHEMA.imageCache.default,
        key: this.key,
        recipe,
        hook,
        l4fame: inputs.l4fame,
        // It may carry credentials: a secret, so the engine keeps it encrypted in the state.
        proxy: pulumi.secret(args.proxy ?? ""),
      },
      { parent: this },
    );
    this.qcow2 = this.build.qcow2;
    this.kernel = this.build.kernel;
    this.initrd = this.build.initrd;
    this.packages = this.build.packages;
    if (args.fameBoot) {
      this.bootInitrd = new BootInitrdFile(
        `${name}-boot-initrd`,
        { source: this.initrd, version: BOOT_INITRD_VERSION },
        { parent: this },
      ).path;
      this.bootKernel = new BootKernelFile(
        `${name}-boot-kernel`,
        { source: this.kernel, version: BOOT_KERNEL_VERSION },
        { parent: this },
      ).path;
    }
    this.registerOutputs({
      key: this.key,
      qcow2: this.qcow2,
      kernel: this.kernel,
      initrd: this.initrd,
      packages: this.packages,
      bootInitrd: this.bootInitrd,
      bootKernel: this.bootKernel,
    });
  }
}
