/**
 * Where a node's boot time goes: boots 2 fresh nodes (new overlays and seeds
 * on the cached golden image) per variant, through the serialized providers,
 * inside the test sandbox, and prints for node01 `systemd-analyze`, its
 * critical chain, blame, the console's kernel timestamps and the journal's
 * first-login marks. Variants are interleaved, so a loaded host hits all alike.
 *
 *   sudo npx ts-node bench/bootProbe.ts 'bookworm|' 'bookworm|quiet'
 *
 * Each argument is `<suite>[@<cached image key>]|<extra kernel arguments>[|<initrd>[|<vcpus>[|<kernel>]]]` (a key
 * boots that image of the cache, e.g. one an older recipe made), the arguments added to the command line
 * fame booted before issue 19 (lib/image legacyImageCmdline); `<initrd>` is `image` for the image's own
 * initrd or a path (default: fame's boot initrd, as under TCG); `<vcpus>` per node (default 2, fame's
 * default); `<kernel>` a kernel file (default: what fame boots under TCG); FAME_PROBE_RUNS rounds (default 1).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { nodeCmdline } from "../components/fameNode";
import type { Suite } from "../lib/config";
import { legacyImageCmdline } from "../lib/image";
import { seedFiles } from "../lib/outputs";
import { clusterPlan } from "../lib/plan";
import { generateEd25519 } from "../lib/sshkey";
import { GiB } from "../lib/units";
import { Domain, type DomainInputs, type DomainOutputs } from "../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../providers/famFile";
import type { GoldenImageOutputs } from "../providers/goldenImage";
import { Network, type NetworkInputs, type NetworkOutputs } from "../providers/network";
import { provisionNode } from "../test/helpers/debianCluster";
import { loadSerialized } from "../test/helpers/engine";
import { famInputs, networkInputs } from "../test/helpers/fixtures";
import { sandboxUri, scratchDir, stopSandbox, testImageCache } from "../test/helpers/sandbox";
import { ssh } from "../test/helpers/ssh";
import { benchImage } from "./images";

const MIRROR = process.env.FAME_TEST_MIRROR ?? "http://deb.debian.org/debian";
const RUNS = Number(process.env.FAME_PROBE_RUNS ?? 1);
const STACK = { user: "fabric", hostbase: "pb", octets123: "10.213.70" } as const;

const log = (m: string) => console.error(`probe: ${m}`);
const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Polls `ssh true` every 0.5 s; seconds from `t0` to the first success. */
async function sshReady(keyFile: string, ip: string, t0: number): Promise<number> {
  for (;;) {
    const r = await ssh(keyFile, STACK.user, ip, "true", 20_000);
    if (r.code === 0) return (Date.now() - t0) / 1000;
    if (Date.now() - t0 > 600_000) throw new Error(`${ip}: no SSH in 600 s: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

/**
 * CPU seconds the node's QEMU has used (user + system): the emulation work,
 * which a loaded host stretches in wall time far less than the boot itself.
 */
function qemuCpuSeconds(name: string): number {
  const pid = execFileSync("pgrep", ["-f", `guest=${name},`], { encoding: "utf8" }).trim();
  const stat = fs.readFileSync(`/proc/${pid.split("\n")[0]}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Kernel timestamps of the console log's boot milestones. */
function consoleMarks(file: string): string {
  const text = fs.readFileSync(file, "utf8");
  const marks: [string, RegExp][] = [
    ["first printk", /^\[\s*([\d.]+)\]/m],
    ["Run /init", /\[\s*([\d.]+)\] Run \/init/],
    ["root mounted (EXT4-fs vda)", /\[\s*([\d.]+)\] EXT4-fs \(vda\): mounted/],
    ["systemd starts", /\[\s*([\d.]+)\] systemd\[1\]: systemd \d+/],
    ["last printk", /\[\s*([\d.]+)\][^\n]*\n(?![\s\S]*\[\s*[\d.]+\])/],
  ];
  const lines = marks.map(([n, re]) => `${n}: ${re.exec(text)?.[1] ?? "?"}`);
  return `${lines.join("; ")}; console bytes ${text.length}, lines ${text.split("\n").length}`;
}

async function main(): Promise<void> {
  const variants = process.argv.slice(2).map((a) => {
    const [name = "", extra = "", initrd = "", vcpus = "", kernel = ""] = a.split("|");
    const [suite, key] = name.split("@");
    if (vcpus && !(Number.isSafeInteger(Number(vcpus)) && Number(vcpus) > 0)) {
      throw new Error(`bootProbe: vcpus '${vcpus}' in '${a}' is not a positive integer`);
    }
    return {
      suite: suite as Suite,
      key,
      extra: extra.trim(),
      initrd,
      vcpus: vcpus ? Number(vcpus) : undefined,
      kernel,
      label: name,
    };
  });
  if (variants.length === 0) throw new Error("usage: bootProbe.ts '<suite>|<extra args>' ...");
  log(
    `QEMU: ${execFileSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" }).split("\n")[0]}`,
  );
  const uri = sandboxUri();
  const dir = scratchDir("bootprobe");
  const plan = clusterPlan({ nodes: 2, ...STACK });
  const images = new Map<string, Pick<GoldenImageOutputs, "qcow2" | "kernel" | "initrd">>();
  for (const v of variants.filter((x) => x.key)) {
    const d = path.join(testImageCache(), v.key as string);
    const file = (f: string) => path.join(d, f);
    images.set(v.label, {
      qcow2: file("golden.qcow2"),
      kernel: file("vmlinuz"),
      initrd: file("initrd.img"),
    });
  }
  for (const suite of new Set(variants.filter((v) => !v.key).map((v) => v.suite))) {
    const { outs } = await benchImage(suite, MIRROR, 4, log);
    images.set(suite, outs);
  }
  const pair = generateEd25519("fame-probe");
  const keyFile = path.join(dir, "id_ed25519");
  fs.writeFileSync(keyFile, pair.privateKey, { mode: 0o600 });
  const seeds = seedFiles(STACK, pair.publicKey, pair.privateKey);
  const famIn = famInputs(path.join(dir, "FAM"));
  const fam = (await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("f", famIn)))
    .provider;
  const famOuts = (await fam.create(famIn)).outs as FamFileOutputs;
  const netIn: NetworkInputs = networkInputs(plan, uri, "fame/bootprobe");
  const net = (await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("n", netIn)))
    .provider;
  await net.create(netIn);
  let dom: Awaited<ReturnType<typeof loadSerialized<DomainInputs, DomainOutputs>>> | undefined;
  try {
    for (let round = 0; round < RUNS; round++) {
      for (const v of variants) {
        const image = images.get(v.label) as GoldenImageOutputs;
        const runDir = path.join(dir, `run-${round}-${v.suite}`);
        fs.mkdirSync(runDir, { recursive: true, mode: 0o755 });
        const domains: DomainInputs[] = [];
        for (const node of plan.nodes) {
          const d = await provisionNode(node, {
            uri,
            plan,
            dir: runDir,
            owner: "fame/bootprobe",
            image,
            suite: v.suite,
            diskBytes: 4 * GiB,
            seeds,
            fam: { path: famIn.path, sizeBytes: famIn.sizeBytes },
          });
          const base = `${legacyImageCmdline(v.suite, "ivshmem")} ${v.extra}`.trim();
          domains.push({
            ...d,
            ...(v.initrd ? { initrd: v.initrd === "image" ? image.initrd : v.initrd } : {}),
            ...(v.vcpus ? { vcpus: v.vcpus } : {}),
            ...(v.kernel ? { kernel: v.kernel } : {}),
            cmdline: nodeCmdline(base, node),
            shutdownTimeoutMs: 60_000,
          });
        }
        dom ??= await loadSerialized<DomainInputs, DomainOutputs>(
          () => new Domain("dom", domains[0] as DomainInputs),
        );
        const provider = dom.provider;
        const load0 = loadavg();
        const t0 = Date.now();
        await Promise.all(domains.map((d) => provider.create(d)));
        const started = (Date.now() - t0) / 1000;
        const ready = await Promise.all(
          plan.nodes.map(async (n) => {
            const at = await sshReady(keyFile, n.ip, t0);
            return { at, cpu: qemuCpuSeconds(n.name) };
          }),
        );
        const n1 = plan.nodes[0]?.ip as string;
        const q = async (cmd: string) => (await ssh(keyFile, STACK.user, n1, cmd, 120_000)).stdout;
        // Before any other query adds its own work: what the boot itself cost, per cgroup.
        const cpuAtReady = await q(
          "cat /proc/uptime; head -1 /proc/stat; cd /sys/fs/cgroup && awk '/usage_usec/{print $2, FILENAME}' $(find . -name cpu.stat) | sort -rn | head -25; ps -eo cputime,comm --sort=-cputime | head -8",
        );
        // Wall time from create minus the guest's uptime: firmware and kernel loading.
        const up = Number((await q("cut -d' ' -f1 /proc/uptime")).trim());
        const preKernel = (Date.now() - t0) / 1000 - up;
        const lsmod = await q("lsmod | tail -n +2 | cut -d' ' -f1 | sort | tr '\\n' ' '");
        // systemd-analyze waits for the boot to finish; give it a moment.
        let analyze = "";
        for (let i = 0; i < 60 && !/graphical|multi-user/.test(analyze); i++) {
          analyze = await q("systemd-analyze 2>&1");
          if (!/graphical|multi-user/.test(analyze)) await new Promise((r) => setTimeout(r, 2000));
        }
        const chain = await q("systemd-analyze critical-chain --no-pager 2>&1 | tail -n +3");
        const sshChain = await q(
          "systemd-analyze critical-chain --no-pager ssh.service 2>&1 | tail -n +3",
        );
        const blame = await q("systemd-analyze blame --no-pager 2>&1 | head -15");
        const journal = await q(
          "sudo journalctl -b -o short-monotonic --no-pager 2>/dev/null | grep -E 'dhcpcd|dhclient|Started (ssh|ssh.service|systemd-logind|user@|networking)|Accepted publickey|New session|Server listening|fame-seed:|DHCPACK|leased|Finished (fame|ifupdown-pre|systemd-udev-settle|networking)' | head -45",
        );
        const hostkeys = await q(
          "sudo cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2 | sha256sum | cut -c1-12",
        );
        const status = await q("cat /run/fame/fam.status");
        if (process.env.FAME_PROBE_SHOW) console.log(await q(process.env.FAME_PROBE_SHOW));
        const marks = consoleMarks(domains[0]?.consoleLog as string);
        console.log(
          [
            `## ${v.label} | extra: '${v.extra}' | vcpus ${v.vcpus ?? domains[0]?.vcpus} | round ${round + 1} | loadavg at start ${load0}, now ${loadavg()}`,
            `domains started ${started.toFixed(1)} s; SSH ready ${ready.map((r) => r.at.toFixed(1)).join(" s, ")} s after create; QEMU CPU time by then ${ready.map((r) => r.cpu.toFixed(1)).join(" s, ")} s`,
            `console (node01): ${marks}; before the kernel's clock ${preKernel.toFixed(1)} s`,
            `modules: ${lsmod.trim()}`,
            `fam.status: ${status.trim()}; ed25519 host key ${hostkeys.trim()}`,
            "```",
            analyze.trim(),
            "--- CPU at SSH-ready (uptime, /proc/stat, cgroups' usage_usec, processes)",
            cpuAtReady.trim(),
            "--- critical-chain",
            chain.trim(),
            "--- critical-chain ssh.service",
            sshChain.trim(),
            "--- blame",
            blame.trim(),
            "--- journal",
            journal.trim(),
            "```",
            "",
          ].join("\n"),
        );
        await Promise.all(
          domains.map((d) => provider.delete(d.name, { ...d, shutdownTimeoutMs: 1000 })),
        );
        fs.copyFileSync(
          domains[0]?.consoleLog as string,
          `/tmp/probe-${v.suite}-${round}-${variants.indexOf(v)}.console.log`,
        );
        fs.rmSync(runDir, { recursive: true, force: true });
      }
    }
  } finally {
    await net.delete(netIn.name, { ...netIn, active: true }).catch(() => {});
    await fam.delete(famIn.path, famOuts).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => stopSandbox());
