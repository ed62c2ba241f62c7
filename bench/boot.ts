/**
 * Nodes you can use in seconds (issue 19): from the start of `pulumi up`
 * (the real CLI, cached golden image) to every node answering `ssh <node>
 * true` with the stack's key, inside the test sandbox. Trixie (a new stack's
 * release) and bookworm (an existing stack's) alternate run by run, so a
 * loaded host weighs on both alike. Writes bench/results/boot.md.
 *
 *   sudo npm run bench:boot                     # 2 nodes, 3 runs per release
 *   FAME_BENCH_RUNS=5 sudo npm run bench:boot   # more runs
 *   FAME_BOOT_EIGHT=1 sudo npm run bench:boot   # also 8 nodes (one run per release)
 *   FAME_BOOT_BASELINE=0 sudo npm run bench:boot  # without the baseline
 *
 * The baseline, in every round beside fame's own boot: the same 2 nodes on
 * the image's own kernel and initrd (`fame:kernelPath`, `fame:initrdPath`),
 * i.e. without fame's boot kernel and boot initrd (README "Boot time").
 *
 * Each figure is the median of the runs, with min and max. The SSH probe is
 * tried every 0.5 s; "domains started" is when the engine reported the last
 * Domain created (libvirt started it), "up returned" when `pulumi up` ended.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { Suite } from "../lib/config";
import { imageCmdline } from "../lib/image";
import { clusterPlan } from "../lib/plan";
import { GiB } from "../lib/units";
import { projectStack, pulumiEnv, removeProjectStack, usePulumiCli } from "../test/helpers/pulumi";
import { ROOT, sandboxUri, scratchDir, stopSandbox, testImageCache } from "../test/helpers/sandbox";
import { ssh } from "../test/helpers/ssh";
import { benchImage } from "./images";
import { type Stat, stat } from "./report";

const RUNS = Number(process.env.FAME_BENCH_RUNS ?? 3);
const EIGHT = process.env.FAME_BOOT_EIGHT === "1";
const BASELINE = process.env.FAME_BOOT_BASELINE !== "0";
const MIRROR = process.env.FAME_TEST_MIRROR ?? "http://deb.debian.org/debian";
/** The Debian e2e tests' image size: their cached images serve this benchmark too. */
const IMAGE_GB = 4;
const USER = "l4mdc";
const SUITES: Suite[] = ["trixie", "bookworm"];
/** Each release its own names and subnet, so a run never meets the other's leftovers. */
const STACKS: Record<Suite, { hostbase: string; octets123: string }> = {
  trixie: { hostbase: "bt", octets123: "10.213.91" },
  bookworm: { hostbase: "bb", octets123: "10.213.92" },
};

const fmt = (s: Stat) =>
  `${s.median.toFixed(1)} s (min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)}, n=${s.n})`;
const log = (m: string) => console.error(`bench:boot: ${m}`);
const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Polls `ssh true` every 0.5 s until it succeeds; returns the time it did (ms since the epoch). */
async function sshReadyAt(keyFile: string, ip: string, deadline: number): Promise<number> {
  for (;;) {
    const r = await ssh(keyFile, USER, ip, "true", 20_000);
    if (r.code === 0) return Date.now();
    if (Date.now() > deadline) throw new Error(`${ip}: no SSH before the deadline: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

interface Run {
  /** Seconds from the start of `pulumi up`. */
  domains: number;
  up: number;
  ready: number;
  load: string;
}

async function main(): Promise<void> {
  const qemu = execFileSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" }).split(
    "\n",
  )[0];
  const uri = sandboxUri();
  usePulumiCli();
  const dir = scratchDir("bench-boot");
  const keys: Record<string, string> = {};
  for (const suite of SUITES) keys[suite] = (await benchImage(suite, MIRROR, IMAGE_GB, log)).key;

  const stacks = new Map<Suite, Awaited<ReturnType<typeof projectStack>>>();
  const work = (suite: Suite) => path.join(dir, suite);
  for (const suite of SUITES) {
    const s = STACKS[suite];
    const stack = await projectStack(`bench-boot-${suite}-${process.pid}`, {
      ...pulumiEnv(work(suite)),
      FAME_LIBVIRT_URI: uri,
      FAME_DIR: path.join(work(suite), "fame"),
      FAME_HOSTBASE: s.hostbase,
      FAME_OCTETS123: s.octets123,
      FAME_VFS_GBYTES: String(IMAGE_GB),
      FAME_IMAGE_CACHE: testImageCache(),
      FAME_USER: USER,
    });
    stacks.set(suite, stack);
  }
  const quiet = { onOutput: () => {} };

  /** The image's own boot files, for the baseline. */
  const imageBoot = (suite: Suite) => {
    const d = path.join(testImageCache(), keys[suite] as string);
    return { kernel: path.join(d, "vmlinuz"), initrd: path.join(d, "initrd.img") };
  };

  /** One `pulumi up` of `count` nodes to SSH-ready, then a destroy. */
  async function once(suite: Suite, count: number, baseline = false): Promise<Run> {
    const stack = stacks.get(suite) as Awaited<ReturnType<typeof projectStack>>;
    const boot = imageBoot(suite);
    await stack.setAllConfig({
      "fame:suite": { value: suite },
      "fame:nodes": { value: String(count) },
      "fame:running": { value: "all" },
      "fame:famSize": { value: "1G" },
      "fame:kernelPath": { value: baseline ? boot.kernel : "" },
      "fame:initrdPath": { value: baseline ? boot.initrd : "" },
    });
    const plan = clusterPlan({ nodes: count, ...STACKS[suite] });
    const load = loadavg();
    let lastDomain = 0;
    const onEvent = (e: EngineEvent) => {
      const o = e.resOutputsEvent?.metadata;
      if (o?.type.endsWith(":Domain") && o.op === "create") lastDomain = Date.now();
    };
    const t0 = Date.now();
    const { outputs } = await stack.up({ ...quiet, onEvent });
    const upAt = Date.now();
    const keyFile = path.join(work(suite), "id_ed25519");
    fs.writeFileSync(keyFile, String(outputs.privateKey?.value), { mode: 0o600 });
    const deadline = t0 + 900_000;
    const at = await Promise.all(plan.nodes.map((n) => sshReadyAt(keyFile, n.ip, deadline)));
    const run: Run = {
      domains: (lastDomain - t0) / 1000,
      up: (upAt - t0) / 1000,
      ready: (Math.max(...at) - t0) / 1000,
      load,
    };
    log(
      `${suite}, ${count} nodes${baseline ? " (the image's kernel and initrd)" : ""}: domains started ${run.domains.toFixed(1)} s, up returned ${run.up.toFixed(1)} s, all SSH-ready ${run.ready.toFixed(1)} s (load ${load})`,
    );
    await stack.destroy(quiet);
    return run;
  }

  const runs: Record<string, Run[]> = {};
  const add = (k: string, r: Run) => {
    runs[k] = runs[k] ?? [];
    runs[k].push(r);
  };
  try {
    for (let r = 0; r < RUNS; r++) {
      for (const suite of SUITES) {
        add(`${suite}/2`, await once(suite, 2));
        if (BASELINE) add(`${suite}/2/image`, await once(suite, 2, true));
      }
    }
    if (EIGHT) for (const suite of SUITES) add(`${suite}/8`, await once(suite, 8));
  } finally {
    for (const stack of stacks.values()) {
      await stack.destroy(quiet).catch(() => {});
      await removeProjectStack(stack);
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });

  const rows: string[] = [];
  for (const key of Object.keys(runs)) {
    const [suite, count, variant] = key.split("/") as [Suite, string, string | undefined];
    const rs = runs[key] as Run[];
    const nodes = variant ? `${count}, the image's kernel and initrd (baseline)` : count;
    rows.push(
      `| ${suite} | ${nodes} | ${fmt(stat(rs.map((x) => x.ready)))} | ${fmt(stat(rs.map((x) => x.domains)))} | ${fmt(stat(rs.map((x) => x.up)))} | ${rs.map((x) => x.load).join("; ")} |`,
    );
  }
  for (const suite of SUITES) {
    const two = runs[`${suite}/2`];
    const eight = runs[`${suite}/8`];
    if (two && eight) {
      const per =
        (stat(eight.map((x) => x.ready)).median - stat(two.map((x) => x.ready)).median) / 6;
      rows.push(`| ${suite} | growth per node, 2 to 8 | ${per.toFixed(1)} s | | | |`);
    }
  }
  const cpu = (os.cpus()[0]?.model ?? "unknown CPU").trim();
  const table = [
    "From the start of `pulumi up` (real CLI, cached image) to every node answering `ssh <node> true` with the stack's key (target: 2 nodes in 30 s).",
    "",
    "| release | nodes | SSH-ready | domains started | `up` returned | loadavg at each start |",
    "|---|---|---|---|---|---|",
    ...rows,
    "",
    `Machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, guests under TCG; ${qemu}; ${new Date().toISOString().slice(0, 16)}Z.`,
    `Images: ${SUITES.map((s) => `${s} ${keys[s]}`).join(", ")} (${IMAGE_GB} GiB). Kernel arguments: ${SUITES.map((s) => `${s} \`${imageCmdline(s, "ivshmem", "qemu")}\``).join(", ")}.`,
    "",
  ].join("\n");
  fs.mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
  fs.writeFileSync(path.join(ROOT, "bench", "results", "boot.md"), table);
  console.log(table);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopSandbox());
