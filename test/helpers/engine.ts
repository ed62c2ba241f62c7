/**
 * Loads dynamic providers exactly as Pulumi's dynamic-provider host does: the
 * resource's serialized `__provider` text, evaluated with require-from-string,
 * then `.handler()`. Nothing of the test's module graph is shared with it.
 */
import * as pulumi from "@pulumi/pulumi";
import requireFromString from "require-from-string";
import { mockRun, settle } from "./mocks";

export interface LoadedProvider<I, O> {
  check(
    olds: Partial<O>,
    news: I,
  ): Promise<{ inputs?: I; failures?: { property: string; reason: string }[] }>;
  diff(
    id: string,
    olds: O,
    news: I,
  ): Promise<{ changes?: boolean; replaces?: string[]; deleteBeforeReplace?: boolean }>;
  create(inputs: I): Promise<{ id: string; outs?: O }>;
  read(id: string, props?: O): Promise<{ id?: string; props?: O }>;
  update(id: string, olds: O, news: I): Promise<{ outs?: O }>;
  delete(id: string, props: O): Promise<void>;
}

/**
 * Constructs the resource under mocks, takes the `__provider` string the engine
 * would receive, and loads it in isolation.
 */
export async function loadSerialized<I, O>(
  construct: () => pulumi.Resource,
): Promise<{ text: string; provider: LoadedProvider<I, O> }> {
  const run = mockRun();
  await pulumi.runtime.setMocks(run.mocks, "fame", "engine-test", false);
  const resource = construct();
  await settle(resource.urn);
  const text = run.resources.at(-1)?.inputs.__provider;
  if (typeof text !== "string") throw new Error("no __provider was serialized");
  const mod = requireFromString(text) as { handler: () => LoadedProvider<I, O> };
  return { text, provider: mod.handler() };
}
