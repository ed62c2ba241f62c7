import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { CONFIG_KEYS, type KeySpec, SCHEMA } from "../../lib/schema";

const root = path.join(__dirname, "..", "..");

describe("config schema", () => {
  const project = parse(fs.readFileSync(path.join(root, "Pulumi.yaml"), "utf8"));

  it("Pulumi.yaml declares no config key: a fresh stack needs none, and unset stays unset", () => {
    // A declared key without a default is required by the CLI; one with a
    // default reaches the program as if set, hiding FAME_* fallbacks.
    assert.equal(project.config, undefined);
  });

  it("the CLI runs the program transpile-only, which lint's type check keeps safe", () => {
    // The SDK reads noCheck from the runtime's tsconfig itself (no `extends`): it must be there.
    const opts = project.runtime?.options ?? {};
    const tsconfig = JSON.parse(fs.readFileSync(path.join(root, opts.tsconfig), "utf8"));
    assert.equal(tsconfig.compilerOptions.noCheck, true);
    assert.equal(tsconfig.extends, "./tsconfig.json");
    // Transpiling file by file is only right for code that isolatedModules accepts.
    const base = JSON.parse(fs.readFileSync(path.join(root, "tsconfig.json"), "utf8"));
    assert.equal(base.compilerOptions.isolatedModules, true);
    assert.equal(base.compilerOptions.noCheck, undefined, "lint must still type-check");
  });

  it("keeps defaults in lib/schema.ts only: no other program source repeats one", () => {
    const sources: string[] = ["index.ts"];
    for (const dir of ["lib", "lib/host", "components", "providers"]) {
      for (const f of fs.readdirSync(path.join(root, dir))) {
        if (f.endsWith(".ts") && `${dir}/${f}` !== "lib/schema.ts") sources.push(`${dir}/${f}`);
      }
    }
    const strings = (
      ["user", "kernel", "octets123", "imageCache", "mirror", "libvirtUri"] as const
    ).map((k) => String(SCHEMA[k].default));
    const numbers = [SCHEMA.vdram.default, SCHEMA.shutdownTimeout.default * 1000];
    const found: string[] = [];
    for (const file of sources) {
      const lines = fs.readFileSync(path.join(root, file), "utf8").split("\n");
      for (const [i, line] of lines.entries()) {
        const code = line.replace(/\/\/.*$/, "");
        if (/^\s*(\*|\/\*)/.test(code)) continue; // doc comments may name a default
        for (const v of strings)
          if (code.includes(`"${v}"`)) found.push(`${file}:${i + 1}: "${v}"`);
        for (const n of numbers) {
          const literal = new RegExp(`\\b(${n}|${n.toLocaleString("en").replaceAll(",", "_")})\\b`);
          // The original's minimum DRAM rule happens to equal the default; it is a rule, not a default.
          if (literal.test(code) && !/MIN_VDRAM_KIB = /.test(code))
            found.push(`${file}:${i + 1}: ${n}`);
        }
      }
    }
    assert.deepEqual(found, []);
  });

  it("dev stack sets only keys of lib/schema.ts", () => {
    const dev = parse(fs.readFileSync(path.join(root, "Pulumi.dev.yaml"), "utf8"));
    const known = new Set(CONFIG_KEYS.map((k) => `fame:${k}`));
    for (const key of Object.keys(dev.config)) assert.ok(known.has(key), key);
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
