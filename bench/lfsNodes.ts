/**
 * LFS throughput on TCG nodes (issue 18's target): two nodes from the LFS
 * golden image with the Librarian on torms, inside the test sandbox
 * (test/helpers/lfsCluster.ts, as the LFS end-to-end test boots them):
 * node01 mounts /lfs through libfuse 2 (fame:lfsFuse 2, the default), node02
 * through libfuse 3 (fame:lfsFuse 3). bench/lfs_workload.py runs on each, one
 * node after the other, and compares /lfs with BAR2 mapped at the same file's
 * books, on the same node in the same run. Prints markdown and writes
 * bench/results/lfs-nodes.md (every counter: .test-run/bench-lfs-nodes.json).
 *
 *   sudo npm run bench:lfs-nodes
 *   FAME_BENCH_RUNS=5 sudo npm run bench:lfs-nodes   # runs per node (default 3)
 *
 * Each figure is the median of the runs with min and max. Target: a 64 MiB
 * file's sequential write and read through /lfs at >= 0.25x BAR2's, and rm
 * freeing its books in under 10 s.
 */
import { LfsCluster } from "../test/helpers/lfsCluster";
import { removeOwnScratch, stopSandbox } from "../test/helpers/sandbox";
import {
  markdownTable,
  PHASE_HEADER,
  phaseRows,
  ratios,
  runRatios,
  summarize,
  type WorkloadResult,
} from "./lfsReport";
import { machineLine, writeResults } from "./results";

const RUNS = Number(process.env.FAME_BENCH_RUNS ?? 3);
/** The issue's target, for a new file's sequential write and read against BAR2's. */
const TARGET = 0.25;

function log(m: string): void {
  console.error(`bench:lfs-nodes: ${m}`);
}

async function main(): Promise<void> {
  const c = new LfsCluster("fame/bench-lfs-nodes", true, log);
  const results: { node: string; fuse: number; result: WorkloadResult }[] = [];
  const started = new Date().toISOString();
  try {
    await c.start();
    for (const [i, ip] of c.ips.entries()) {
      const node = `node0${i + 1}`;
      const fuse = i === 0 ? 2 : 3; // as LfsCluster boots them
      log(`${node} (libfuse ${fuse}): ${RUNS} run(s) of 64 MiB`);
      results.push({ node, fuse, result: await c.workload(ip, RUNS) });
    }
  } finally {
    await c.stop();
  }

  const sections = results.flatMap(({ node, fuse, result }) => {
    const s = summarize(result);
    const q = ratios(s);
    const each = runRatios(result);
    const met = each.filter((r) => r.write >= TARGET && r.read >= TARGET).length;
    return [
      `### ${node}: libfuse ${fuse} (fame:lfsFuse ${fuse}), fast paths ${result.features?.join(",")}`,
      "",
      markdownTable(PHASE_HEADER, phaseRows(s)),
      "",
      `/lfs against BAR2 at the same file's books (8 MiB blocks), medians: write ${q.write.toFixed(2)}x (rewrite in place ${q.rewrite.toFixed(2)}x), read ${q.read.toFixed(2)}x.`,
      `Each run (write, read): ${each.map((r) => `${r.write.toFixed(2)}x, ${r.read.toFixed(2)}x`).join("; ")}; both >= ${TARGET}x in ${met} of ${each.length} run(s).`,
      "",
    ];
  });
  const text = [
    `LFS throughput on two TCG nodes (bench/lfsNodes.ts): 64 MiB files, median (min-max) of ${RUNS} run(s) per node; started ${started}.`,
    "",
    ...sections,
    machineLine(" at the end."),
    "",
  ].join("\n");
  console.log(text);
  writeResults("lfs-nodes.md", text, "bench-lfs-nodes.json", results);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    stopSandbox();
    removeOwnScratch();
  });
