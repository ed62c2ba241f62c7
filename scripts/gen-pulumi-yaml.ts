/**
 * Rewrites the `config:` block of Pulumi.yaml from lib/schema.ts, the single
 * source of keys, types and defaults (`npm run schema`). Defaults appear in
 * the descriptions only. test/lib/schema.test.ts
 * fails when the two disagree.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseDocument } from "yaml";
import { CONFIG_KEYS, type KeySpec, SCHEMA } from "../lib/schema";

const file = path.join(__dirname, "..", "Pulumi.yaml");
const doc = parseDocument(fs.readFileSync(file, "utf8"));
const config: Record<string, Record<string, unknown>> = {};
for (const key of CONFIG_KEYS) {
  const spec: KeySpec = SCHEMA[key];
  const env = spec.env?.length
    ? ` Env fallback (only when the stack does not set it): ${spec.env.join(", ")}.`
    : "";
  const def = spec.default === undefined ? "" : ` Default: ${JSON.stringify(spec.default)}.`;
  // No `default:` here: the CLI would inject it into every stack, and a value the
  // stack sets could not be told from an unset one. The program applies lib/schema.ts.
  config[`fame:${key}`] = {
    type: spec.type,
    ...(spec.secret ? { secret: true } : {}),
    description: `${spec.description}${def}${env}`,
  };
}
doc.set("config", config);
fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
