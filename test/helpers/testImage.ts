/**
 * Golden images of the e2e tests and the boot benches: a recipe's inputs in
 * the test image cache, and the image built once (or found there) through
 * the serialized GoldenImageBuild provider, as the engine would load it.
 */
import { type GoldenImageArgs, goldenImageRecipe } from "../../components/goldenImage";
import {
  GoldenImageBuild,
  type GoldenImageInputs,
  type GoldenImageOutputs,
} from "../../providers/goldenImage";
import { loadSerialized } from "./engine";
import { testImageCache } from "./sandbox";

/** The provider inputs of `args`' recipe, cached in testImageCache() (no L4FAME, no proxy). */
export function testImageInputs(args: GoldenImageArgs): GoldenImageInputs {
  const r = goldenImageRecipe(args);
  return {
    cacheDir: testImageCache(),
    key: r.key,
    recipe: r.recipe,
    hook: r.hook,
    l4fame: "",
    proxy: "",
  };
}

/** Builds or finds the image; `log` gets one line saying which, and how long it took. */
export async function ensureTestImage(
  inputs: GoldenImageInputs,
  log: (line: string) => void,
  label = "golden image",
): Promise<GoldenImageOutputs> {
  const provider = (
    await loadSerialized<GoldenImageInputs, GoldenImageOutputs>(
      () => new GoldenImageBuild("img", inputs),
    )
  ).provider;
  const t = Date.now();
  const outs = (await provider.create(inputs)).outs as GoldenImageOutputs;
  log(
    `${label} (${inputs.recipe.suite}) ${inputs.key}: ${outs.reused ? "cached" : `built in ${outs.buildSeconds} s`} (${Date.now() - t} ms)`,
  );
  return outs;
}
