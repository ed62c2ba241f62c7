import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { CONFIG_KEYS, type KeySpec, SCHEMA } from "../../lib/schema";

const root = path.join(__dirname, "..", "..");

describe("Pulumi.yaml config schema", () => {
  const project = parse(fs.readFileSync(path.join(root, "Pulumi.yaml"), "utf8"));
  const declared = project.config as Record<string, { type: string; default?: unknown }>;

  it("declares exactly the keys of lib/schema.ts (run `npm run schema` to regenerate)", () => {
    assert.deepEqual(Object.keys(declared).sort(), CONFIG_KEYS.map((k) => `fame:${k}`).sort());
  });

  it("declares the same type and default for every key", () => {
    for (const key of CONFIG_KEYS) {
      const spec: KeySpec = SCHEMA[key];
      const d = declared[`fame:${key}`];
      assert.equal(d?.type, spec.type, `type of fame:${key}`);
      assert.deepEqual(d?.default, spec.default, `default of fame:${key}`);
    }
  });

  it("dev stack sets only declared keys", () => {
    const dev = parse(fs.readFileSync(path.join(root, "Pulumi.dev.yaml"), "utf8"));
    for (const key of Object.keys(dev.config)) assert.ok(key in declared, key);
  });

  it("README's config table lists every key with its default", () => {
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
    for (const key of CONFIG_KEYS) {
      const spec: KeySpec = SCHEMA[key];
      const row = readme
        .split("\n")
        .find((l) => new RegExp(`^\\|\\s*\`fame:${key}\`\\s*\\|`).test(l));
      assert.ok(row, `README lacks a row for fame:${key}`);
      if (spec.default !== undefined && spec.default !== "") {
        assert.ok(row.includes(`\`${spec.default}\``), `README default of fame:${key}: ${row}`);
      }
    }
  });
});
