/**
 * LFS throughput without a VM: the real librarian.py and fame's adapter with
 * the unmodified lfs_fuse.py on a plain FAM file under stock FUSE, in a
 * private network + mount namespace (test/helpers/lfs.ts), running
 * bench/lfs_workload.py once per step of fame's fast paths (lfs_fast.py
 * features, cumulative, from upstream's behaviour to all of them). Prints
 * markdown and writes bench/results/lfs.md (every counter: .test-run/bench-lfs.json).
 *
 *   sudo npm run bench:lfs
 *   FAME_BENCH_RUNS=5 sudo npm run bench:lfs          # runs per step (default 3)
 *   FAME_BENCH_LFS_STEPS=none,all sudo npm run bench:lfs
 *   FAME_BENCH_LFS_STEPS=all,fuse3:all sudo npm run bench:lfs   # fuse3:<features>: fame_lfs.py --fuse 3
 *
 * Each figure is the median of the runs with min and max.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { LfsLab, PYTHON } from "../test/helpers/lfs";
import { ROOT, scratchDir } from "../test/helpers/sandbox";
import {
  fmtStat,
  markdownTable,
  PHASE_HEADER,
  type Phase,
  phaseRows,
  ratios,
  summarize,
  type WorkloadResult,
} from "./lfsReport";
import { machineLine, writeResults } from "./results";

const RUNS = Number(process.env.FAME_BENCH_RUNS ?? 3);
const MIB = Number(process.env.FAME_BENCH_LFS_MIB ?? 64);
/** Cumulative steps: what each fast path of templates/lfs/lfs_fast.py adds. */
const STEPS = (
  process.env.FAME_BENCH_LFS_STEPS ??
  "none,handle,handle+copy,handle+copy+size,handle+copy+size+xattr,all"
)
  .split(",")
  .map((s) => s.replace(/\+/g, ","));
const WORKLOAD = path.join(ROOT, "bench", "lfs_workload.py");

function log(m: string): void {
  console.error(`bench:lfs: ${m}`);
}

async function runStep(fast: string, floor: boolean): Promise<WorkloadResult> {
  // 2 nodes x 64 books of 8M; the FAM file is 1G.
  const lab = new LfsLab(
    scratchDir("bench-lfs"),
    "[global]\nnode_count = 2\nbook_size_bytes = 8M\nnvm_size_per_node = 64B\n",
    2 ** 30,
  );
  try {
    await lab.startLibrarian();
    // "fuse<version>:<features>": the same features on another binding (fame_lfs.py --fuse <version>).
    const [, version, features] = /^fuse(\w+):(.*)$/.exec(fast) ?? [];
    const m1 = await lab.startNode(1, [
      ...(version ? ["--fuse", version] : []),
      "--fast",
      features ?? fast,
    ]);
    const offsets = lab.offsetsCommand(m1, 1).join(" ");
    const r = spawnSync(
      "nsenter",
      [
        "-t",
        String(lab.holder.pid),
        "-n",
        "-m",
        "--",
        PYTHON,
        WORKLOAD,
        "--mount",
        m1,
        "--shadow",
        lab.fam,
        "--offsets",
        offsets,
        "--mib",
        String(MIB),
        "--runs",
        String(RUNS),
        ...(floor ? ["--floor", path.join(lab.dir, "floor")] : []),
      ],
      { encoding: "utf8", timeout: 3_600_000, maxBuffer: 64 * 2 ** 20 },
    );
    if (r.status !== 0) throw new Error(`workload (--fast ${fast}) failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as WorkloadResult;
  } finally {
    await lab.close();
    fs.rmSync(lab.dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const results: { fast: string; result: WorkloadResult }[] = [];
  for (const [i, fast] of STEPS.entries()) {
    log(`--fast ${fast}: ${RUNS} run(s) of ${MIB} MiB`);
    // The floor (FUSE and fusepy alone) once, with the last step.
    results.push({ fast, result: await runStep(fast, i === STEPS.length - 1) });
  }

  const ladderHeader = [
    "`--fast`",
    "seq write 8M",
    "seq read 8M",
    "seq write 1M",
    "seq read 1M",
    "rand 4K write",
    "rand 4K read",
    "round trips/MiB (write, read)",
    "daemon ms/request (write, read)",
    "rm (s)",
  ];
  const ladder = results.map(({ fast, result }) => {
    const s = summarize(result);
    const speed = (p: Phase, d = 1) => {
      const x = s[p];
      return x ? fmtStat(x.mibPerSecond, d) : "";
    };
    const two = (a?: { median: number }, b?: { median: number }, d = 2) =>
      a && b ? `${a.median.toFixed(d)}, ${b.median.toFixed(d)}` : "";
    return [
      `\`${fast}\``,
      speed("seq8_write"),
      speed("seq8_read"),
      speed("seq1_write"),
      speed("seq1_read"),
      speed("rand4k_write", 2),
      speed("rand4k_read", 2),
      two(s.seq8_write?.roundTripsPerMiB, s.seq8_read?.roundTripsPerMiB),
      two(s.seq8_write?.daemonMsPerRequest, s.seq8_read?.daemonMsPerRequest, 3),
      s.rm ? fmtStat(s.rm.seconds, 2) : "",
    ];
  });

  const last = results.at(-1);
  if (!last) throw new Error("FAME_BENCH_LFS_STEPS names no step");
  const s = summarize(last.result);
  const q = ratios(s);
  const text = [
    `LFS throughput without a VM (bench/lfs.ts): ${MIB} MiB files, MiB/s, median (min-max) of ${RUNS} run(s) per step.`,
    "",
    markdownTable(ladderHeader, ladder),
    "",
    `Details for \`--fast ${last.fast}\`:`,
    "",
    markdownTable(PHASE_HEADER, phaseRows(s)),
    "",
    `/lfs against FAM mapped at the same file's books (8 MiB blocks, medians): write ${q.write.toFixed(2)}x (rewrite in place ${q.rewrite.toFixed(2)}x), read ${q.read.toFixed(2)}x.`,
    "",
    machineLine(`; ${new Date().toISOString().slice(0, 10)}.`),
    "",
  ].join("\n");
  console.log(text);
  writeResults("lfs.md", text, "bench-lfs.json", results);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
