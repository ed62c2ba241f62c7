/**
 * The program under mocks in preview mode, the way `pulumi preview` runs it
 * for a fresh stack: every output of another resource is unknown. Each
 * dynamic resource's real provider (loaded from its serialized `__provider`)
 * then gets its inputs the way the engine sends them, unknowns as the
 * sentinel string, and must neither throw nor fail because of an unknown.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import requireFromString from "require-from-string";
import { UNKNOWN } from "../../providers/contract";
import type { LoadedProvider } from "../helpers/engine";
import { TM_LIBRARIAN } from "../helpers/lfs";
import { type Registered, runProgram, withCleanEnv } from "../helpers/mocks";

const INDEX = path.join(__dirname, "..", "..", "index.ts");

/** Registrations of the program run in preview mode (outputs of other resources unknown). */
async function previewProgram(config: Record<string, string>): Promise<Registered[]> {
  const resources: Registered[] = [];
  let pending = 0;
  const mocks: pulumi.runtime.Mocks = {
    newResource(args) {
      resources.push({ type: args.type, name: args.name, inputs: args.inputs });
      pending = Date.now();
      // A resource not yet created: nothing of its state is known.
      return { id: undefined as unknown as string, state: {} };
    },
    call: (args) => args.inputs,
  };
  await pulumi.runtime.setMocks(mocks, "fame", "test", true);
  pulumi.runtime.setAllConfig(
    Object.fromEntries(Object.entries(config).map(([k, v]) => [`fame:${k}`, v])),
  );
  const restore = withCleanEnv();
  try {
    delete require.cache[require.resolve(INDEX)];
    require(INDEX);
    // Registrations continue as outputs resolve; wait until they stop.
    pending = Date.now();
    while (Date.now() - pending < 500) await new Promise((r) => setTimeout(r, 100));
  } finally {
    restore();
  }
  return resources;
}

/** Mocks mark unknowns as {__pulumiUnknown: true}; the engine sends the sentinel string. */
function asEngineSends(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(asEngineSends);
  if (v !== null && typeof v === "object") {
    if ((v as Record<string, unknown>).__pulumiUnknown === true) return UNKNOWN;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asEngineSends(x)]));
  }
  return v;
}

function loadProvider(r: Registered): LoadedProvider<object, object> {
  const text = r.inputs.__provider;
  assert.equal(typeof text, "string", `${r.name} has no serialized provider`);
  return (
    requireFromString(text as string) as { handler: () => LoadedProvider<object, object> }
  ).handler();
}

function withoutProvider(inputs: Record<string, unknown>): Record<string, unknown> {
  const { __provider: _p, ...rest } = inputs;
  return rest;
}

// A socket that does not exist: host checks fail the same way with and without unknowns.
const BASE = {
  nodes: "3",
  dir: "/var/tmp/fame-preview-test",
  libvirtUri: "qemu:///system?socket=/nonexistent/fame-preview.sock",
};
const CONFIGS: [string, Record<string, string>][] = [
  ["default", BASE],
  ["Librarian on", { ...BASE, librarian: "true", librarianSource: TM_LIBRARIAN }],
];

for (const [label, config] of CONFIGS)
  describe(`program in preview mode (engine-style unknown inputs), ${label}`, function () {
    this.timeout(120_000);
    let preview: Registered[];
    let known: Map<string, Registered>;

    before(async () => {
      preview = (await previewProgram(config)).filter((r) =>
        r.type.startsWith("pulumi-nodejs:dynamic/"),
      );
      const update = await runProgram(config);
      known = new Map(update.resources.map((r) => [r.name, r]));
    });

    it("registers every dynamic resource, many with unknown inputs, as a fresh preview does", () => {
      assert.ok(preview.length >= 15, `only ${preview.length} dynamic resources`);
      const withUnknown = preview.filter((r) =>
        JSON.stringify(asEngineSends(withoutProvider(r.inputs))).includes(UNKNOWN),
      );
      // Disks, seeds, domains and the INI depend on other resources' outputs.
      assert.ok(withUnknown.length >= 9, `only ${withUnknown.length} resources had unknown inputs`);
    });

    it("check never throws and unknowns add no failure to what the known inputs give", async () => {
      const problems: string[] = [];
      for (const r of preview) {
        const p = loadProvider(r);
        const news = asEngineSends(withoutProvider(r.inputs)) as object;
        const full = known.get(r.name);
        assert.ok(full, `${r.name} was not registered in update mode`);
        const base = await p.check({}, withoutProvider(full.inputs));
        const baseReasons = new Set((base.failures ?? []).map((f) => f.reason));
        try {
          const res = await p.check({}, news);
          for (const f of res.failures ?? []) {
            if (!baseReasons.has(f.reason)) problems.push(`${r.name}: ${f.property}: ${f.reason}`);
          }
          assert.deepEqual(res.inputs, news, `${r.name}: check must pass the inputs through`);
        } catch (e) {
          problems.push(`${r.name}: check threw ${(e as Error).message}`);
        }
      }
      assert.deepEqual(problems, []);
    });

    it("diff of recorded state against unknown inputs never throws and reports a change", async () => {
      const problems: string[] = [];
      for (const r of preview) {
        const news = asEngineSends(withoutProvider(r.inputs));
        if (!JSON.stringify(news).includes(UNKNOWN)) continue;
        const full = known.get(r.name);
        assert.ok(full);
        try {
          const d = await loadProvider(r).diff(
            r.name,
            withoutProvider(full.inputs),
            news as object,
          );
          if (d.changes !== true) problems.push(`${r.name}: unknown inputs reported as no change`);
          if (!Array.isArray(d.replaces)) problems.push(`${r.name}: diff gave no replaces list`);
        } catch (e) {
          problems.push(`${r.name}: diff threw ${(e as Error).message}`);
        }
      }
      assert.deepEqual(problems, []);
    });
  });
