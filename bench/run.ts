/**
 * fame benchmarks, side by side with the original approach, inside a private
 * libvirtd in its own network namespace (the test sandbox). Prints a markdown
 * table and writes it to bench/results/latest.md.
 *
 *   sudo npm run bench                     # everything (about 30 minutes on 2 cores)
 *   FAME_BENCH_RUNS=5 sudo npm run bench   # more runs per figure (default 3)
 *   FAME_BENCH_COLD=0 sudo npm run bench   # skip the cold image build
 *
 * Each figure is the median of the runs, with min and max. Providers are
 * loaded from their serialized form, as the Pulumi engine loads them.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { goldenImageRecipe } from "../components/goldenImage";
import { imageCmdline } from "../lib/image";
import { seedFiles } from "../lib/outputs";
import { clusterPlan, type NodePlan } from "../lib/plan";
import { generateEd25519 } from "../lib/sshkey";
import { GiB } from "../lib/units";
import { Domain, type DomainInputs, type DomainOutputs } from "../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../providers/famFile";
import {
  GoldenImageBuild,
  type GoldenImageInputs,
  type GoldenImageOutputs,
} from "../providers/goldenImage";
import { Network, type NetworkInputs, type NetworkOutputs } from "../providers/network";
import { NodeDisk, type NodeDiskInputs, type NodeDiskOutputs } from "../providers/nodeDisk";
import { SeedDisk, type SeedDiskInputs, type SeedDiskOutputs } from "../providers/seedDisk";
import { loadSerialized } from "../test/helpers/engine";
import { domainInputs, famInputs, networkInputs } from "../test/helpers/fixtures";
import { projectStack, pulumiEnv, removeProjectStack, usePulumiCli } from "../test/helpers/pulumi";
import { ROOT, sandboxUri, scratchDir, stopSandbox, testImageCache } from "../test/helpers/sandbox";
import { waitForSsh } from "../test/helpers/ssh";
import { type Stat, sizeRatio, speedRatio, stat } from "./report";

const RUNS = Number(process.env.FAME_BENCH_RUNS ?? 3);
const COLD = process.env.FAME_BENCH_COLD !== "0";
const MIRROR = process.env.FAME_TEST_MIRROR ?? "http://deb.debian.org/debian";
const IMAGE_GB = 3;
const COUNTS = [1, 8, 32];
/** Above this many nodes, domains are defined but not started (24 GiB of RAM). */
const START_LIMIT = 8;

const fmt = (s: Stat, unit: string, digits = 2) =>
  `${s.median.toFixed(digits)} ${unit} (min ${s.min.toFixed(digits)}, max ${s.max.toFixed(digits)}, n=${s.n})`;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

function duBytes(file: string): number {
  return fs.statSync(file).blocks * 512;
}

function log(m: string): void {
  console.error(`bench: ${m}`);
}

/** A domain with no disk and no NIC: its define makes a fresh libvirtd probe QEMU's capabilities. */
const PROBE_XML = `<domain type="qemu"><name>benchprobe</name><memory unit="KiB">65536</memory><vcpu>1</vcpu><os><type arch="x86_64" machine="pc">hvm</type></os></domain>`;

async function main(): Promise<void> {
  const uri = sandboxUri();
  const CACHE = testImageCache();
  const dir = scratchDir("bench");
  const rows: [string, string, string, string][] = [];
  const notes: string[] = [];

  // ---------------------------------------------------------------- fresh libvirtd
  // The sandbox was just started: this define pays for the QEMU capability probe.
  const probeXml = path.join(dir, "probe.xml");
  fs.writeFileSync(probeXml, PROBE_XML);
  const firstDefine = await timed(async () =>
    execFileSync("virsh", ["-q", "-c", uri, "define", probeXml], {
      stdio: "pipe",
      timeout: 300_000,
    }),
  );
  execFileSync("virsh", ["-q", "-c", uri, "undefine", "benchprobe"], { stdio: "pipe" });
  rows.push([
    "first define on a fresh libvirtd (QEMU capability probe, libvirtd under tini -s)",
    `${firstDefine.toFixed(2)} s (n=1)`,
    "",
    "",
  ]);

  // ---------------------------------------------------------------- golden image
  const { recipe, hook, key } = goldenImageRecipe({
    // The release of the published figures (bench/results); trixie is a new row, not a silent change.
    suite: "bookworm",
    mirror: MIRROR,
    sizeGbytes: IMAGE_GB,
  });
  const imageIn = (cacheDir: string): GoldenImageInputs => ({
    cacheDir,
    key,
    recipe,
    hook,
    l4fame: "",
    proxy: "",
  });
  const img = (
    await loadSerialized<GoldenImageInputs, GoldenImageOutputs>(
      () => new GoldenImageBuild("img", imageIn(CACHE)),
    )
  ).provider;

  let coldText = "skipped (FAME_BENCH_COLD=0)";
  if (COLD) {
    const coldCache = path.join(dir, "cold-cache");
    log("cold golden image build (fresh cache)");
    const s = await timed(() => img.create(imageIn(coldCache)));
    coldText = `${s.toFixed(1)} s (n=1)`;
    // The same recipe: keep this build for the rest of the run instead of building it twice.
    try {
      if (!fs.existsSync(path.join(CACHE, key))) {
        fs.mkdirSync(CACHE, { recursive: true });
        fs.renameSync(path.join(coldCache, key), path.join(CACHE, key));
      }
    } catch {
      // Another file system (EXDEV) or a concurrent build: the cached path builds or reuses it.
    }
    fs.rmSync(coldCache, { recursive: true, force: true });
  }
  log("golden image (cached, for the rest of the run)");
  const image = (await img.create(imageIn(CACHE))).outs as GoldenImageOutputs;
  if (!COLD && !image.reused)
    coldText = `${image.buildSeconds.toFixed(1)} s (n=1, first build of this recipe)`;
  const warm: number[] = [];
  for (let i = 0; i < Math.max(RUNS, 5); i++)
    warm.push(await timed(() => img.create(imageIn(CACHE))));
  rows.push([
    "golden image build, cold",
    coldText,
    "original: about six minutes (vmdebootstrap)",
    "",
  ]);
  rows.push([
    "golden image build, warm (cached)",
    fmt(stat(warm.map((s) => s * 1000)), "ms"),
    "",
    "",
  ]);

  // ---------------------------------------------------------------- shared objects
  const plan = clusterPlan({ nodes: 32, hostbase: "bn", octets123: "10.213.90" });
  const famIn = famInputs(path.join(dir, "FAM"));
  const fam = (await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("fam", famIn)))
    .provider;
  await fam.create(famIn);
  const netIn = networkInputs(plan, uri, "fame/bench");
  const net = (await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("net", netIn)))
    .provider;
  await net.create(netIn);

  const pair = generateEd25519("fame-bench");
  const seeds = seedFiles(
    { user: "l4mdc", hostbase: "bn", octets123: "10.213.90" },
    pair.publicKey,
    pair.privateKey,
  );
  const disk = (
    await loadSerialized<NodeDiskInputs, NodeDiskOutputs>(
      () => new NodeDisk("d", { path: "/x", backingFile: "/y", sizeBytes: 1 }),
    )
  ).provider;
  const seed = (
    await loadSerialized<SeedDiskInputs, SeedDiskOutputs>(
      () => new SeedDisk("s", { path: "/x", files: {} }),
    )
  ).provider;
  const nodeDir = path.join(dir, "nodes");
  const diskIn = (n: NodePlan): NodeDiskInputs => ({
    path: path.join(nodeDir, `${n.name}.qcow2`),
    backingFile: image.qcow2,
    sizeBytes: IMAGE_GB * GiB,
  });
  const seedIn = (n: NodePlan): SeedDiskInputs => ({
    path: path.join(nodeDir, `${n.name}.seed.img`),
    files: seeds,
  });
  const domIn = (n: NodePlan, running: boolean): DomainInputs =>
    domainInputs(n, {
      uri,
      plan,
      kernel: image.kernel,
      initrd: image.initrd,
      cmdline: imageCmdline(recipe.suite, "ivshmem", "qemu"),
      dir: nodeDir,
      fam: { path: famIn.path, sizeBytes: famIn.sizeBytes },
      owner: "fame/bench",
      disks: [
        { path: diskIn(n).path, format: "qcow2" },
        { path: seedIn(n).path, format: "raw" },
      ],
      memoryKiB: 786432,
      vcpus: 2,
      running,
      shutdownTimeoutMs: 0,
    });
  const dom = (
    await loadSerialized<DomainInputs, DomainOutputs>(
      () => new Domain("dom", domIn(plan.nodes[0] as NodePlan, false)),
    )
  ).provider;

  async function provision(nodes: NodePlan[], running: boolean): Promise<void> {
    fs.mkdirSync(nodeDir, { recursive: true });
    await Promise.all(
      nodes.map(async (n) => {
        await Promise.all([disk.create(diskIn(n)), seed.create(seedIn(n))]);
        await dom.create(domIn(n, running));
      }),
    );
  }
  async function teardown(nodes: NodePlan[]): Promise<void> {
    await Promise.all(nodes.map((n) => dom.delete(n.name, domIn(n, false))));
    fs.rmSync(nodeDir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- provisioning, ours vs original
  const raw = path.join(dir, "golden.raw");
  execFileSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", image.qcow2, raw]);
  const baseDir = path.join(dir, "baseline");
  let perNodeOurs = 0;
  let perNodeBase = 0;
  for (const count of COUNTS) {
    const nodes = plan.nodes.slice(0, count);
    const running = count <= START_LIMIT;
    const ours: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      log(`provision ${count} node(s), run ${r + 1}`);
      ours.push(await timed(() => provision(nodes, running)));
      if (r === 0 && count === 1) {
        const n = nodes[0] as NodePlan;
        perNodeOurs = duBytes(diskIn(n).path) + duBytes(seedIn(n).path);
      }
      await teardown(nodes);
    }
    const base: number[] = [];
    const baseRuns = count >= 32 ? 1 : RUNS;
    for (let r = 0; r < baseRuns; r++) {
      log(`original approach for ${count} node(s), run ${r + 1}`);
      fs.mkdirSync(baseDir, { recursive: true });
      base.push(
        await timed(async () => {
          for (const n of nodes) {
            const copy = path.join(baseDir, `${n.name}.img`);
            execFileSync("cp", ["--sparse=auto", raw, copy]);
            execFileSync("qemu-img", [
              "convert",
              "-f",
              "raw",
              "-O",
              "qcow2",
              copy,
              path.join(baseDir, `${n.name}.qcow2`),
            ]);
            fs.rmSync(copy);
          }
        }),
      );
      if (r === 0 && count === 1)
        perNodeBase = duBytes(path.join(baseDir, `${nodes[0]?.name}.qcow2`));
      fs.rmSync(baseDir, { recursive: true, force: true });
    }
    const o = stat(ours);
    const b = stat(base);
    rows.push([
      `provision ${count} node(s) (disk + seed + define${running ? " + start" : ""}), parallel`,
      `${fmt(o, "s")}; ${(o.median / count).toFixed(3)} s per node`,
      `${fmt(b, "s")}; ${(b.median / count).toFixed(3)} s per node (full copy + qcow2 convert, sequential)`,
      speedRatio(o.median, b.median),
    ]);
  }
  rows.push([
    "disk used per node at creation",
    `${(perNodeOurs / 1024).toFixed(0)} KiB (overlay + seed)`,
    `${(perNodeBase / 2 ** 20).toFixed(0)} MiB (qcow2 copy of the image)`,
    sizeRatio(perNodeOurs, perNodeBase),
  ]);

  // ---------------------------------------------------------------- no-change pass over 32 nodes
  log("no-change read + diff pass over 32 nodes");
  await provision(plan.nodes, false);
  const passes: number[] = [];
  for (let r = 0; r < Math.max(RUNS, 5); r++) {
    passes.push(
      await timed(async () => {
        const checks: Promise<boolean>[] = [
          fam
            .read(famIn.path, { ...famIn, createdByFame: true })
            .then(
              async (x) =>
                (await fam.diff(famIn.path, x.props as FamFileOutputs, famIn)).changes === false,
            ),
          net
            .read(netIn.name, { ...netIn, active: true })
            .then(
              async (x) =>
                (await net.diff(netIn.name, x.props as NetworkOutputs, netIn)).changes === false,
            ),
        ];
        for (const n of plan.nodes) {
          const d = domIn(n, false);
          checks.push(
            dom
              .read(n.name, d)
              .then(
                async (x) =>
                  (await dom.diff(n.name, x.props as DomainOutputs, d)).changes === false,
              ),
          );
          checks.push(
            disk
              .read(diskIn(n).path, { ...diskIn(n), allocatedBytes: 0, serial: "" })
              .then(
                async (x) =>
                  (await disk.diff(diskIn(n).path, x.props as NodeDiskOutputs, diskIn(n)))
                    .changes === false,
              ),
          );
        }
        const ok = await Promise.all(checks);
        if (!ok.every(Boolean)) throw new Error("a resource reported a change on a no-change pass");
      }),
    );
  }
  await teardown(plan.nodes);
  rows.push(["no-change read + diff of 32 nodes (66 resources)", fmt(stat(passes), "s"), "", ""]);

  // ---------------------------------------------------------------- SSH-ready
  const keyFile = path.join(dir, "id_ed25519");
  fs.writeFileSync(keyFile, pair.privateKey, { mode: 0o600 });
  const two = plan.nodes.slice(0, 2);
  const ready: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    log(`2 nodes to SSH-ready, run ${r + 1}`);
    ready.push(
      await timed(async () => {
        await provision(two, true);
        await Promise.all(two.map((n) => waitForSsh(keyFile, "l4mdc", n.ip, 600_000)));
      }),
    );
    await teardown(two);
  }
  rows.push([
    "2 nodes from create to SSH-ready (TCG, cached image)",
    fmt(stat(ready), "s", 1),
    "",
    "",
  ]);

  await net.delete(netIn.name, { ...netIn, active: true });
  await fam.delete(famIn.path, { ...famIn, createdByFame: true });

  // ---------------------------------------------------------------- the real CLI
  // The same measures through `pulumi` itself (same image recipe, so cached).
  usePulumiCli();
  const engineWork = path.join(dir, "engine");
  const stack = await projectStack(`bench-${process.pid}`, {
    ...pulumiEnv(engineWork),
    FAME_LIBVIRT_URI: uri,
    FAME_DIR: path.join(engineWork, "fame"),
    FAME_HOSTBASE: "bn",
    FAME_OCTETS123: "10.213.90",
    FAME_VFS_GBYTES: String(IMAGE_GB),
    FAME_IMAGE_CACHE: CACHE,
    FAME_USER: "l4mdc",
  });
  try {
    const quiet = { onOutput: () => {} };
    await stack.setAllConfig({
      "fame:nodes": { value: "32" },
      "fame:running": { value: "none" },
      "fame:famSize": { value: "1G" },
    });
    log("pulumi up: 32 nodes defined, not started");
    await stack.up(quiet);
    const previews: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      log(`pulumi preview, no change, 32 nodes, run ${r + 1}`);
      previews.push(await timed(() => stack.preview({ ...quiet, expectNoChanges: true })));
    }
    const p = stat(previews);
    rows.push([
      "no-change `pulumi preview` of 32 nodes (real CLI)",
      fmt(p, "s"),
      "",
      `engine overhead ${(p.median / stat(passes).median).toFixed(1)}x the provider-level pass`,
    ]);
    await stack.destroy(quiet);

    await stack.setAllConfig({ "fame:nodes": { value: "2" }, "fame:running": { value: "all" } });
    const engineKey = path.join(engineWork, "id_ed25519");
    const ups: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      log(`pulumi up of 2 nodes to SSH-ready, run ${r + 1}`);
      ups.push(
        await timed(async () => {
          const { outputs } = await stack.up(quiet);
          // Each fresh stack makes its own key.
          fs.writeFileSync(engineKey, String(outputs.privateKey?.value), { mode: 0o600 });
          await Promise.all(two.map((n) => waitForSsh(engineKey, "l4mdc", n.ip, 600_000)));
        }),
      );
      await stack.destroy(quiet);
    }
    const u = stat(ups);
    rows.push([
      "`pulumi up` of 2 nodes to SSH-ready (real CLI, cached image)",
      fmt(u, "s", 1),
      "",
      `engine overhead ${(u.median / stat(ready).median).toFixed(2)}x the provider-level figure`,
    ]);
  } finally {
    await stack.destroy({ onOutput: () => {} }).catch(() => {});
    await removeProjectStack(stack);
  }
  fs.rmSync(dir, { recursive: true, force: true });

  const cpu = (os.cpus()[0]?.model ?? "unknown CPU").trim();
  notes.push(
    `Machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, guests under TCG; ${new Date().toISOString().slice(0, 10)}.`,
    `Image: Debian ${recipe.suite} golden image of ${IMAGE_GB} GiB (${image.packages.length} packages). Runs per figure: ${RUNS}.`,
  );
  const table = [
    "| measure | fame | original approach | ratio |",
    "|---|---|---|---|",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
    ...notes,
    "",
  ].join("\n");
  fs.mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
  fs.writeFileSync(path.join(ROOT, "bench", "results", "latest.md"), table);
  console.log(table);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopSandbox());
