/**
 * The boot benches' golden image: the Debian e2e tests' recipe for `suite`,
 * built once or found in the test image cache (test/helpers/testImage.ts)
 * before any timing starts.
 */
import type { Suite } from "../lib/config";
import type { GoldenImageOutputs } from "../providers/goldenImage";
import { ensureTestImage, testImageInputs } from "../test/helpers/testImage";

export async function benchImage(
  suite: Suite,
  mirror: string,
  sizeGbytes: number,
  log: (m: string) => void,
): Promise<{ key: string; outs: GoldenImageOutputs }> {
  const inputs = testImageInputs({ suite, mirror, sizeGbytes });
  return { key: inputs.key, outs: await ensureTestImage(inputs, log, "bench image") };
}
