/**
 * Where a new /lfs file's sequential write spends its time, without a VM
 * (issue 18): the real librarian.py and fame's adapter (`--fast all` unless
 * FAME_BENCH_LFS_FAST says otherwise) on a sparse FAM file, as bench/lfs.ts
 * runs them; bench/lfs_newfile.py writes a new file, rewrites it in place
 * and removes it, first on the fresh FAM file, then in a second lab whose
 * FAM file has every page written once before. Prints markdown: MiB/s, the
 * daemon's ms in write requests with the part spent in grow (the Librarian's
 * resize and book list) and the round trips, median (min-max) of the rounds.
 *
 *   FAME_BENCH_RUNS=5 FAME_BENCH_LFS_MIB=64 sudo npx ts-node bench/lfsNewFile.ts
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LfsLab, PYTHON } from "../test/helpers/lfs";
import { ROOT, scratchDir } from "../test/helpers/sandbox";
import { fmtStat, markdownTable, stat } from "./lfsReport";

const RUNS = Number(process.env.FAME_BENCH_RUNS ?? 3);
const MIB = Number(process.env.FAME_BENCH_LFS_MIB ?? 64);
const FAST = process.env.FAME_BENCH_LFS_FAST ?? "all";

interface PhaseResult {
  mib_per_s: number;
  ops: Record<string, { count: number; ms: number }>;
  round_trips: Record<string, number>;
}
interface Result {
  prefault_seconds: number | null;
  rounds: Record<"new" | "rewrite" | "rm", PhaseResult>[];
}

async function runLab(prefault: boolean): Promise<Result> {
  const lab = new LfsLab(
    scratchDir("bench-lfs-newfile"),
    "[global]\nnode_count = 2\nbook_size_bytes = 8M\nnvm_size_per_node = 64B\n",
    2 ** 30,
  );
  try {
    await lab.startLibrarian();
    const m1 = await lab.startNode(1, ["--fast", FAST]);
    const argv = [PYTHON, path.join(ROOT, "bench", "lfs_newfile.py"), "--mount", m1];
    argv.push("--mib", String(MIB), "--rounds", String(RUNS));
    if (prefault) argv.push("--prefault", lab.fam);
    return JSON.parse(lab.sh(argv)) as Result;
  } finally {
    await lab.close();
    fs.rmSync(lab.dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const rows: string[][] = [];
  for (const prefault of [false, true]) {
    const r = await runLab(prefault);
    for (const phase of ["new", "rewrite"] as const) {
      const ps = r.rounds.map((x) => x[phase]);
      const ms = (op: string) => fmtStat(stat(ps.map((p) => p.ops[op]?.ms ?? 0)), 1);
      const trips = stat(ps.map((p) => Object.values(p.round_trips).reduce((a, b) => a + b, 0)));
      rows.push([
        prefault ? "every page written before" : "sparse (fresh)",
        phase === "new" ? "new file" : "rewrite in place",
        fmtStat(stat(ps.map((p) => p.mib_per_s)), 1),
        ms("write"),
        ms("grow"),
        fmtStat(trips, 0),
      ]);
    }
  }
  const header = [
    "FAM file",
    `${MIB} MiB sequential write (8 MiB blocks)`,
    "MiB/s",
    "daemon ms in write",
    "of which grow",
    "round trips",
  ];
  console.log(
    `\`--fast ${FAST}\`, median (min-max) of ${RUNS} round(s):\n\n${markdownTable(header, rows)}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
