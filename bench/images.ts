/**
 * The boot benches' golden image: the Debian e2e tests' recipe for `suite`,
 * built once or found in the test image cache through the serialized
 * GoldenImageBuild provider, before any timing starts.
 */
import { goldenImageRecipe } from "../components/goldenImage";
import type { Suite } from "../lib/config";
import {
  GoldenImageBuild,
  type GoldenImageInputs,
  type GoldenImageOutputs,
} from "../providers/goldenImage";
import { loadSerialized } from "../test/helpers/engine";
import { testImageCache } from "../test/helpers/sandbox";

export async function benchImage(
  suite: Suite,
  mirror: string,
  sizeGbytes: number,
  log: (m: string) => void,
): Promise<{ key: string; outs: GoldenImageOutputs }> {
  const r = goldenImageRecipe({ suite, mirror, sizeGbytes });
  const imgIn: GoldenImageInputs = {
    cacheDir: testImageCache(),
    key: r.key,
    recipe: r.recipe,
    hook: r.hook,
    l4fame: "",
    proxy: "",
  };
  const img = (
    await loadSerialized<GoldenImageInputs, GoldenImageOutputs>(
      () => new GoldenImageBuild("img", imgIn),
    )
  ).provider;
  const outs = (await img.create(imgIn)).outs as GoldenImageOutputs;
  log(`${suite} image ${r.key}: ${outs.reused ? "cached" : `built in ${outs.buildSeconds} s`}`);
  return { key: r.key, outs };
}
