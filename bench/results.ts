/**
 * Where a benchmark's results go: its markdown in bench/results/<file> (kept
 * in the repository) and every counter as JSON in .test-run/ (a CI artifact).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ROOT, RUN_DIR } from "../test/helpers/sandbox";

/** "Machine: 2 x <CPU>, 24 GiB RAM, Linux <release>, load 1.0 0.5 0.2" + `suffix`. */
export function machineLine(suffix: string): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const load = os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
  return `Machine: ${os.cpus().length} x ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, load ${load}${suffix}`;
}

/** Writes bench/results/<markdown> and .test-run/<json> (the raw results). */
export function writeResults(markdown: string, text: string, json: string, raw: unknown): void {
  const out = path.join(ROOT, "bench", "results");
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, markdown), text);
  fs.mkdirSync(RUN_DIR, { recursive: true });
  fs.writeFileSync(path.join(RUN_DIR, json), `${JSON.stringify(raw)}\n`);
}
