/**
 * Dynamic provider for the golden image. The image is named by the content
 * hash of its recipe: create builds it (minutes) or reuses the cached build
 * (instantly). Any recipe change is a new image, so it is a replacement; the
 * node disks on the old image are replaced with it. Deleting keeps the cache
 * for other stacks and later runs.
 */
import * as pulumi from "@pulumi/pulumi";
import { absolutePath, redactUserinfo } from "../lib/checks";
import { type CachedImage, cachedImage, ensureImage } from "../lib/host/imagebuild";
import * as preflight from "../lib/host/preflight";
import { probeUrl, releaseUrl } from "../lib/host/probe";
import { GiB } from "../lib/units";
import { type CheckFailure, defineProvider } from "./contract";

/** Room a build needs: the root tree, the raw image's data and the qcow2 copy. */
const BUILD_FREE_BYTES = 5 * GiB;

import { type ImageRecipe, imageKey } from "../lib/image";

export interface GoldenImageInputs {
  cacheDir: string;
  key: string;
  recipe: ImageRecipe;
  /** Text of the customize hook run inside mmdebstrap. */
  hook: string;
  /** The L4FAME repository to probe before building ("" = none). */
  l4fame: string;
  /**
   * Proxy the build (and the L4FAME probe) reach the network through ("" = none); not in the
   * recipe. It may carry credentials: the component passes it as a secret, and it is not an output.
   */
  proxy: string;
}

/**
 * The inputs but the proxy, plus where the cached image's files are (lib/host/imagebuild
 * CachedImage). Nothing reads the proxy back, so the state keeps it only as a (secret) input.
 */
export interface GoldenImageOutputs
  extends Omit<GoldenImageInputs, "proxy">,
    Omit<CachedImage, "key"> {}

/** Outputs never hold the proxy (a state written before they did loses it on the next update). */
function withoutProxy<T extends object>(props: T): Omit<T, "proxy"> {
  const { proxy: _p, ...rest } = props as T & { proxy?: unknown };
  return rest;
}

function log(message: string): void {
  console.error(`fame: ${message}`);
}

export const goldenImageProvider = defineProvider<GoldenImageInputs, GoldenImageOutputs>({
  // The key names the image's content; another cache holds another copy.
  keys: ["cacheDir", "key"],
  replaceKeys: ["cacheDir", "key"],
  async check(news) {
    const failures: CheckFailure[] = absolutePath("cacheDir", news.cacheDir, "image cache");
    if (news.cacheDir === undefined || news.key === undefined) return failures;
    if (news.recipe && news.hook !== undefined && imageKey(news.recipe, news.hook) !== news.key) {
      failures.push({
        property: "key",
        reason: "the image key does not match the recipe (internal error)",
      });
    }
    const cached =
      failures.length === 0 && (await cachedImage(news.cacheDir, news.key)) !== undefined;
    if (failures.length === 0 && !cached) {
      for (const reason of await preflight.missingTools([
        "mmdebstrap",
        "mke2fs",
        "qemu-img",
        "dpkg-query",
      ])) {
        failures.push({ property: "recipe", reason });
      }
      const free = await preflight.freeBytes(news.cacheDir);
      if (free < BUILD_FREE_BYTES) {
        failures.push({
          property: "cacheDir",
          reason: `building the golden image needs about 5 GiB free in ${news.cacheDir}, but only ${Math.floor(free / 2 ** 20)} MiB are: free space or set fame:imageCache`,
        });
      }
    }
    // Probe only when the image must be built: a cached image needs no network.
    if (news.l4fame && !cached) {
      const url = releaseUrl(news.l4fame, "testing");
      const r = await probeUrl(url, news.proxy ?? "");
      if (!r.ok) {
        failures.push({
          property: "l4fame",
          reason: `the L4FAME repository fame:l4fame = ${JSON.stringify(news.l4fame)} is unreachable (${url}: ${r.detail}${news.proxy ? ` via proxy ${redactUserinfo(news.proxy)}` : ""}); fix the URL or proxy, or unset fame:l4fame to build without it`,
        });
      }
    }
    return failures;
  },

  async create(inputs: GoldenImageInputs) {
    const image = await ensureImage({
      cacheDir: inputs.cacheDir,
      key: inputs.key,
      recipe: inputs.recipe,
      hook: inputs.hook,
      proxy: inputs.proxy,
      log,
    });
    const { key: _k, ...built } = image;
    return {
      id: inputs.key,
      outs: { ...withoutProxy(inputs), ...built } satisfies GoldenImageOutputs,
    };
  },

  // A state written before outputs left the proxy out holds it in plain text: rewrite it.
  needsRepair: (olds) => "proxy" in olds,
  async update(_id: string, olds: GoldenImageOutputs, news: GoldenImageInputs) {
    // Same cache and key (anything else is a replacement): the image is the one built.
    return { outs: { ...withoutProxy(olds), ...withoutProxy(news) } };
  },

  async read(id: string, props?: GoldenImageOutputs) {
    if (!props) return {};
    const image = await cachedImage(props.cacheDir, id);
    if (!image) return {};
    const { key: _k, ...found } = image;
    return {
      id,
      props: {
        ...withoutProxy(props),
        ...found,
        buildSeconds: props.buildSeconds,
        reused: props.reused,
      },
    };
  },

  async delete() {
    // The cache is shared by stacks and runs: destroy keeps it (clear it by hand to reclaim space).
  },
});

export type GoldenImageArgs = {
  [K in keyof GoldenImageInputs]: pulumi.Input<GoldenImageInputs[K]>;
};

export class GoldenImageBuild extends pulumi.dynamic.Resource {
  declare readonly qcow2: pulumi.Output<string>;
  declare readonly kernel: pulumi.Output<string>;
  declare readonly initrd: pulumi.Output<string>;
  declare readonly packages: pulumi.Output<string[]>;
  declare readonly key: pulumi.Output<string>;
  declare readonly buildSeconds: pulumi.Output<number>;
  declare readonly reused: pulumi.Output<boolean>;

  constructor(name: string, args: GoldenImageArgs, opts?: pulumi.CustomResourceOptions) {
    const outs = {
      dir: undefined,
      qcow2: undefined,
      kernel: undefined,
      initrd: undefined,
      packages: undefined,
      buildSeconds: undefined,
      reused: undefined,
    };
    super(goldenImageProvider, name, { ...args, ...outs }, opts, "fame", "GoldenImage");
  }
}
