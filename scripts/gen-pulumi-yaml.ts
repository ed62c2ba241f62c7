/**
 * Rewrites the `config:` block of Pulumi.yaml from lib/schema.ts, the single
 * source of keys, types and defaults (`npm run schema`). test/lib/schema.test.ts
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
  const env = spec.env?.length ? ` Env fallback: ${spec.env.join(", ")}.` : "";
  config[`fame:${key}`] = {
    type: spec.type,
    ...(spec.default === undefined ? {} : { default: spec.default }),
    ...(spec.secret ? { secret: true } : {}),
    description: `${spec.description}${env}`,
  };
}
doc.set("config", config);
fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
