/**
 * Cross-node atomics on FAM, both presentations: two real Debian nodes each
 * add 1 to one shared 64-bit counter COUNT times with the CPU's atomic add
 * (bench/fam_atomic.c, x86 `lock xadd`), released together by a barrier of
 * plain stores. Atomic across nodes means the counter ends at 2 x COUNT.
 *
 *   sudo npm run bench:atomics                              # 3 runs per mode, 20000 adds per node
 *   FAME_BENCH_RUNS=5 FAME_BENCH_ATOMIC_COUNT=100000 sudo npm run bench:atomics
 *   FAME_BENCH_MODES=ivshmem FAME_BENCH_ATOMIC_COUNT=2000000 sudo npm run bench:atomics
 *
 * A run counts only if the two nodes' adds really interleaved (the ranges of
 * values their first and last adds returned overlap); a lossless result from
 * adds that ran one after the other would prove nothing.
 *
 * IVSHMEM: the counter is mapped through BAR2 (/dev/fam -> resource2). CXL:
 * the raw namespace cannot be mapped, so each node replaces it by a devdax
 * namespace (`-M mem`: page structures in DRAM) and maps /dev/dax0.0; that
 * writes a 4 KiB info block at FAM offset 0x1000, harmless on this bench's
 * scratch FAM and the reason fame itself never does it. Runs in the test
 * sandbox (private libvirtd in its own network namespace); writes
 * bench/results/atomics.md.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { FamMode } from "../lib/config";
import { type DebianCluster, startDebianCluster } from "../test/helpers/debianCluster";
import { ROOT, sandboxUri, scratchDir, stopSandbox } from "../test/helpers/sandbox";

const RUNS = Number(process.env.FAME_BENCH_RUNS ?? 3);
const COUNT = Number(process.env.FAME_BENCH_ATOMIC_COUNT ?? 20000);
/** Presentations to measure; empty: only rebuild the table from the saved results. */
const MODES = (process.env.FAME_BENCH_MODES ?? "ivshmem,cxl")
  .split(",")
  .filter(Boolean) as FamMode[];
/** Counter offset in the mapped device (2 MiB aligned for devdax). */
const OFFSET = 64 * 2 ** 20;
/** devdax with `-M mem` starts its data at the 2 MiB alignment of the namespace. */
const DEVDAX_DATA_OFFSET = 2 * 2 ** 20;

interface RunResult {
  final: number;
  hostCounter: number;
  nsPerAdd: number[];
  /** The nodes' adds overlapped in time (their [first, last] ranges intersect). */
  interleaved: boolean;
}

/** Results of one mode, kept per mode so separate invocations build one table. */
interface ModeResult {
  mode: FamMode;
  /** Where the figures came from, when not from a plain run of this script. */
  note?: string;
  count: number;
  date: string;
  runs: RunResult[];
}

function hostCounter(fam: string, offset: number): number {
  const fd = fs.openSync(fam, "r");
  const b = Buffer.alloc(8);
  fs.readSync(fd, b, 0, 8, offset);
  fs.closeSync(fd);
  return Number(b.readBigUInt64LE(0));
}

function hostZero(fam: string, offset: number): void {
  const fd = fs.openSync(fam, "r+");
  fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, offset);
  fs.closeSync(fd);
}

async function prepare(
  c: DebianCluster,
  mode: FamMode,
): Promise<{ device: string; famOffset: number }> {
  const src = fs.readFileSync(path.join(ROOT, "bench", "fam_atomic.c"), "utf8");
  await Promise.all(
    c.plan.nodes.map((_, i) =>
      c.on(
        i,
        `cat > fam_atomic.c <<'FAME_EOF'\n${src}FAME_EOF\ngcc -O2 -o fam_atomic fam_atomic.c`,
      ),
    ),
  );
  if (mode === "ivshmem") {
    return { device: (await c.on(0, "readlink /dev/fam")).trim(), famOffset: OFFSET };
  }
  for (const [i] of c.plan.nodes.entries()) {
    const region = (await c.on(i, "cat /run/fame/fam.status")).match(/region=(region\d+)/)?.[1];
    if (!region) throw new Error(`node ${i}: no CXL region`);
    await c.on(
      i,
      `sudo ndctl destroy-namespace -f all -r ${region} && sudo ndctl create-namespace -r ${region} -m devdax -M mem >/dev/null`,
    );
  }
  const dax = (await c.on(0, "ls /dev/dax*")).trim().split(/\s+/)[0] ?? "";
  return { device: dax, famOffset: DEVDAX_DATA_OFFSET + OFFSET };
}

async function measure(mode: FamMode): Promise<RunResult[]> {
  const dir = scratchDir(`atomics-${mode}`);
  const c = await startDebianCluster({ uri: sandboxUri(), dir, owner: "fame/bench-atomics", mode });
  try {
    console.log(`${mode}: ${(await c.ready()).join(" | ")}`);
    const { device, famOffset } = await prepare(c, mode);
    const results: RunResult[] = [];
    for (let r = 0; r < RUNS; r++) {
      hostZero(c.famPath, famOffset);
      const out = await Promise.all(
        c.plan.nodes.map((_, i) =>
          c.on(i, `sudo ./fam_atomic ${device} ${OFFSET} ${i} ${c.plan.nodes.length} ${COUNT}`),
        ),
      );
      const parsed = out.map((o) => {
        const m = /ns=(\d+) counter=(\d+) first=(\d+) last=(\d+)/.exec(o);
        if (!m) throw new Error(`unexpected output: ${o}`);
        return { ns: Number(m[1]), counter: Number(m[2]), first: Number(m[3]), last: Number(m[4]) };
      });
      const [a, b] = parsed as [(typeof parsed)[0], (typeof parsed)[0]];
      const result = {
        final: Math.max(...parsed.map((p) => p.counter)),
        hostCounter: hostCounter(c.famPath, famOffset),
        nsPerAdd: parsed.map((p) => p.ns / COUNT),
        interleaved: a.first < b.last && b.first < a.last,
      };
      console.log(`${mode} run ${r + 1}: ${JSON.stringify(result)}`);
      results.push(result);
    }
    return results;
  } finally {
    await c.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const resultFile = (mode: FamMode) => path.join(ROOT, "bench", "results", `atomics-${mode}.json`);

function row(r: ModeResult): string {
  const expected = 2 * r.count;
  const finals = r.runs.map((x) => x.final);
  const lost = finals.map((f) => `${((100 * (expected - f)) / expected).toFixed(1)}%`);
  const ns = r.runs.flatMap((x) => x.nsPerAdd).sort((p, q) => p - q);
  const interleaved = r.runs.filter((x) => x.interleaved).length;
  const atomic = finals.every((f) => f === expected);
  return `| ${r.mode === "cxl" ? "CXL (devdax mapping)" : "IVSHMEM (BAR2 mapping)"} | 2 x ${r.count} = ${expected} | ${finals.join(", ")} | ${lost.join(", ")} | ${interleaved}/${r.runs.length} | ${atomic ? (interleaved > 0 ? "yes" : "not shown (no run interleaved)") : "**no**"} | ${ns[Math.floor(ns.length / 2)]?.toFixed(1)} ns | ${r.runs.every((x) => x.hostCounter === x.final) ? "yes" : "no"} | ${r.date} |`;
}

async function main(): Promise<void> {
  fs.mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
  for (const mode of MODES) {
    const runs = await measure(mode);
    const result: ModeResult = {
      mode,
      count: COUNT,
      date: new Date().toISOString().slice(0, 10),
      runs,
    };
    fs.writeFileSync(resultFile(mode), `${JSON.stringify(result, null, 1)}\n`);
  }
  const saved = (["ivshmem", "cxl"] as const)
    .filter((m) => fs.existsSync(resultFile(m)))
    .map((m) => JSON.parse(fs.readFileSync(resultFile(m), "utf8")) as ModeResult);
  const rows = saved.map(row);
  const notes = saved.filter((r) => r.note).map((r) => `- ${r.mode}: ${r.note}`);
  const table = [
    "# Cross-node atomics on FAM",
    "",
    `2 Debian nodes each add 1 to one shared 64-bit counter with \`__atomic_fetch_add\` (x86 \`lock xadd\`), released together by a barrier; ${RUNS} runs per presentation. "interleaved": runs in which the two nodes' adds overlapped in time.`,
    "",
    "| presentation | expected | final counter per run | increments lost | runs interleaved | atomic across nodes | time per add (median) | host file agrees | date |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    ...(notes.length > 0 ? [...notes, ""] : []),
    `Machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, guests under TCG (QEMU 7.2), shared with other jobs.`,
    "",
  ].join("\n");
  console.log(table);
  fs.writeFileSync(path.join(ROOT, "bench", "results", "atomics.md"), table);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopSandbox());
