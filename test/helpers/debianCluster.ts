/**
 * Two (or more) real Debian nodes from the golden image, driven through the
 * serialized providers the way the engine does, inside the sandbox: shared by
 * the CXL end-to-end test and the cross-node atomics benchmark. The image
 * recipe is the Debian e2e test's own, so one cached image serves them all
 * (whatever user, names and subnet a stack has: those are on the seed disks).
 */

import * as fs from "node:fs";
import * as path from "node:path";
import { lsaFileName, nodeCmdline } from "../../components/fameNode";
import { BOOT_INITRD_VERSION } from "../../lib/bootinitrd";
import { BOOT_KERNEL_VERSION } from "../../lib/bootkernel";
import { type FamMode, SUITES, type Suite } from "../../lib/config";
import { imageCmdline } from "../../lib/image";
import { seedFiles } from "../../lib/outputs";
import { type ClusterPlan, clusterPlan, cxlSerial, type NodePlan } from "../../lib/plan";
import { GiB } from "../../lib/units";
import { CXL_LSA_BYTES } from "../../lib/xml";
import {
  BootInitrdFile,
  type BootInitrdInputs,
  type BootInitrdOutputs,
} from "../../providers/bootInitrd";
import {
  BootKernelFile,
  type BootKernelInputs,
  type BootKernelOutputs,
} from "../../providers/bootKernel";
import { Domain, type DomainInputs, type DomainOutputs } from "../../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import type { GoldenImageOutputs } from "../../providers/goldenImage";
import { Network, type NetworkInputs, type NetworkOutputs } from "../../providers/network";
import { NodeDisk, type NodeDiskInputs, type NodeDiskOutputs } from "../../providers/nodeDisk";
import { SeedDisk, type SeedDiskInputs, type SeedDiskOutputs } from "../../providers/seedDisk";
import { SshKey, type SshKeyInputs, type SshKeyOutputs } from "../../providers/sshKey";
import { type LoadedProvider, loadSerialized } from "./engine";
import { domainInputs, famInputs, networkInputs } from "./fixtures";
import { ssh, waitForSsh } from "./ssh";
import { ensureTestImage, testImageInputs } from "./testImage";

/** ssh's own failures before the command ran (a loaded host): safe to try again. */
const NOT_RUN =
  /banner exchange|Connection timed out|Connection refused|Connection reset|kex_exchange/;

async function sshRetry(keyFile: string, user: string, ip: string, command: string) {
  for (let attempt = 1; ; attempt++) {
    const r = await ssh(keyFile, user, ip, command, 300_000);
    if (r.code === 0) return r.stdout;
    if (r.code !== 255 || !NOT_RUN.test(r.stderr) || attempt >= 6) {
      throw new Error(`ssh ${user}@${ip} '${command}' exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    }
    await new Promise((res) => setTimeout(res, 5000));
  }
}

/** Shared across runs on one machine: the image is built once, then reused. */
export const IMAGE_MIRROR = process.env.FAME_TEST_MIRROR ?? "http://deb.debian.org/debian";

/**
 * The release the Debian e2e tests boot: bookworm, or FAME_TEST_SUITE (how
 * the README's tested matrix runs a whole e2e file on another release).
 */
export function testSuite(value = process.env.FAME_TEST_SUITE): Suite {
  if (value === undefined || value === "") return "bookworm";
  if (!SUITES.includes(value as Suite))
    throw new Error(`FAME_TEST_SUITE=${value}: must be one of ${SUITES.join(", ")}`);
  return value as Suite;
}

/** The Debian e2e test's recipe inputs: the same image for every test that boots Debian. */
export const DEBIAN_IMAGE = { suite: testSuite(), sizeGbytes: 4 } as const;
/** The cluster's own identity, set up on each node from its seed disk at boot. */
export const DEBIAN_STACK = {
  // Not the default (l4mdc): the user name must flow from config to seed and SSH.
  user: "fabric",
  hostbase: "dn",
  octets123: "10.213.60",
} as const;

export interface DebianCluster {
  plan: ClusterPlan;
  user: string;
  keyFile: string;
  famPath: string;
  dom: LoadedProvider<DomainInputs, DomainOutputs>;
  lsa: LoadedProvider<FamFileInputs, FamFileOutputs>;
  /** Current domain inputs per node (what libvirt has). */
  domains: DomainInputs[];
  /** LSA file inputs per node (CXL mode). */
  lsaInputs: FamFileInputs[];
  /** Runs `command` on node i (0-based) as the node user. */
  on(i: number, command: string): Promise<string>;
  /** Redefines every domain for `mode` (an in-place update that restarts the nodes). */
  switchMode(mode: FamMode): Promise<void>;
  /** Waits for SSH and for fame-fam's status on every node; returns the status lines. */
  ready(timeoutMs?: number): Promise<string[]>;
  /** Last console lines of every node, for failure messages. */
  consoles(): string;
  /** Node i's whole serial console log (every boot: the log is appended to). */
  consoleLog(i: number): string;
  destroy(): Promise<void>;
}

/**
 * A node's domain inputs for `mode`: CXL adds the node's LSA and serial, IVSHMEM has neither;
 * the kernel arguments are the mode's (as FameNode makes them).
 */
export function withMode(
  d: DomainInputs,
  mode: FamMode,
  lsaPath: string,
  node: NodePlan,
  suite: Suite,
) {
  const { cxl: _c, ...rest } = d;
  const ivshmem = { ...rest, cmdline: nodeCmdline(imageCmdline(suite, mode, "qemu"), node) };
  return mode === "cxl"
    ? { ...ivshmem, cxl: { lsaPath, lsaSizeBytes: CXL_LSA_BYTES, serial: cxlSerial(node.index) } }
    : ivshmem;
}

/**
 * One node as FameNode makes it, through the serialized providers: its overlay
 * on the golden image and its seed disk are created; returns its (IVSHMEM)
 * domain inputs, not yet defined.
 */
export async function provisionNode(
  node: NodePlan,
  o: {
    uri: string;
    plan: ClusterPlan;
    dir: string;
    owner: string;
    image: Pick<GoldenImageOutputs, "qcow2" | "kernel" | "initrd">;
    /** The image's release, for its kernel arguments (lib/image imageCmdline). */
    suite: Suite;
    diskBytes: number;
    seeds: ReturnType<typeof seedFiles>;
    fam: { path: string; sizeBytes: number };
  },
): Promise<DomainInputs> {
  const diskIn: NodeDiskInputs = {
    path: path.join(o.dir, `${node.name}.qcow2`),
    backingFile: o.image.qcow2,
    sizeBytes: o.diskBytes,
  };
  await (
    await loadSerialized<NodeDiskInputs, NodeDiskOutputs>(() => new NodeDisk("d", diskIn))
  ).provider.create(diskIn);
  const seedIn: SeedDiskInputs = {
    path: path.join(o.dir, `${node.name}.seed.img`),
    files: o.seeds,
  };
  await (
    await loadSerialized<SeedDiskInputs, SeedDiskOutputs>(() => new SeedDisk("s", seedIn))
  ).provider.create(seedIn);
  // Under TCG on the image's kernel FameCluster boots fame's boot initrd and kernel (lib/image bootsFameBoot).
  const initrdIn: BootInitrdInputs = { source: o.image.initrd, version: BOOT_INITRD_VERSION };
  const initrd = await (
    await loadSerialized<BootInitrdInputs, BootInitrdOutputs>(
      () => new BootInitrdFile("i", initrdIn),
    )
  ).provider.create(initrdIn);
  const kernelIn: BootKernelInputs = { source: o.image.kernel, version: BOOT_KERNEL_VERSION };
  const kernel = await (
    await loadSerialized<BootKernelInputs, BootKernelOutputs>(
      () => new BootKernelFile("k", kernelIn),
    )
  ).provider.create(kernelIn);
  return domainInputs(node, {
    uri: o.uri,
    plan: o.plan,
    kernel: (kernel.outs as BootKernelOutputs).path,
    initrd: initrd.id,
    cmdline: imageCmdline(o.suite, "ivshmem", "qemu"),
    dir: o.dir,
    fam: o.fam,
    owner: o.owner,
    disks: [
      { path: diskIn.path, format: "qcow2" },
      { path: seedIn.path, format: "raw" },
    ],
    memoryKiB: 786432,
    vcpus: 2,
    shutdownTimeoutMs: 120_000,
  });
}

type StartArgs = {
  uri: string;
  dir: string;
  owner: string;
  mode: FamMode;
  /** Debian release of the image. Default: DEBIAN_IMAGE.suite. */
  suite?: Suite;
  nodes?: number;
  famSizeBytes?: number;
  /** Called with the FAM path after it exists and before any node starts. */
  beforeBoot?: (famPath: string) => void;
};

/** Boots the cluster; on failure, removes whatever it had made before rethrowing. */
export async function startDebianCluster(args: StartArgs): Promise<DebianCluster> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    return await start(args, cleanups);
  } catch (e) {
    for (const c of cleanups.reverse()) await c().catch((err) => console.error(`cleanup: ${err}`));
    throw e;
  }
}

/** The stack's SSH key from the serialized SshKey provider; its private half written to `keyFile` (0600). */
export async function stackKey(comment: string, keyFile: string): Promise<SshKeyOutputs> {
  const keyIn: SshKeyInputs = { comment };
  const key = (
    await (
      await loadSerialized<SshKeyInputs, SshKeyOutputs>(() => new SshKey("k", keyIn))
    ).provider.create(keyIn)
  ).outs!;
  fs.writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
  return key;
}

async function start(args: StartArgs, cleanups: (() => Promise<void>)[]): Promise<DebianCluster> {
  const { uri, dir, owner } = args;
  const plan = clusterPlan({
    nodes: args.nodes ?? 2,
    hostbase: DEBIAN_STACK.hostbase,
    octets123: DEBIAN_STACK.octets123,
  });
  const user = DEBIAN_STACK.user;

  const imgIn = testImageInputs({
    mirror: IMAGE_MIRROR,
    ...DEBIAN_IMAGE,
    ...(args.suite ? { suite: args.suite } : {}),
  });
  const image = await ensureTestImage(imgIn, (m) => console.log(`      ${m}`));

  const keyFile = path.join(dir, "id_ed25519");
  const key = await stackKey("fame-e2e", keyFile);

  const famIn = famInputs(path.join(dir, "FAM"), { sizeBytes: args.famSizeBytes ?? GiB });
  const fam = (await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("fam", famIn)))
    .provider;
  // The real outputs: delete removes only a file they show this resource created and still holds.
  const famOuts = (await fam.create(famIn)).outs!;
  cleanups.push(() => fam.delete(famIn.path, famOuts));
  args.beforeBoot?.(famIn.path);

  const netIn: NetworkInputs = networkInputs(plan, uri, owner);
  const net = (await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("n", netIn)))
    .provider;
  await net.create(netIn);
  cleanups.push(() => net.delete(netIn.name, { ...netIn, active: true }));

  const seeds = seedFiles(DEBIAN_STACK, key.publicKey, key.privateKey);
  const lsaInputs = plan.nodes.map((node) =>
    famInputs(path.join(dir, lsaFileName(node)), { sizeBytes: CXL_LSA_BYTES }),
  );
  const lsa = (
    await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("lsa", lsaInputs[0]!))
  ).provider;
  const lsaOuts: (FamFileOutputs | undefined)[] = [];
  const createLsa = async (i: number) => {
    lsaOuts[i] = (await lsa.create(lsaInputs[i]!)).outs;
  };
  const deleteLsas = async () => {
    for (const [i, l] of lsaInputs.entries()) {
      const outs = lsaOuts[i];
      if (outs) await lsa.delete(l.path, outs);
      lsaOuts[i] = undefined;
    }
  };
  const domains: DomainInputs[] = [];
  for (const [i, node] of plan.nodes.entries()) {
    const base = await provisionNode(node, {
      uri,
      plan,
      dir,
      owner,
      image,
      suite: imgIn.recipe.suite,
      diskBytes: DEBIAN_IMAGE.sizeGbytes * GiB,
      seeds,
      fam: { path: famIn.path, sizeBytes: famIn.sizeBytes },
    });
    if (args.mode === "cxl") await createLsa(i);
    domains.push(withMode(base, args.mode, lsaInputs[i]!.path, node, imgIn.recipe.suite));
  }
  const dom = (
    await loadSerialized<DomainInputs, DomainOutputs>(() => new Domain("dom", domains[0]!))
  ).provider;
  for (const d of domains) {
    const failures = (await dom.check({}, d)).failures ?? [];
    if (failures.length > 0) throw new Error(`domain check: ${JSON.stringify(failures)}`);
  }
  cleanups.push(async () => {
    for (const d of domains) await dom.delete(d.name, { ...d, shutdownTimeoutMs: 1000 });
    await deleteLsas();
  });
  // One after the other: two first defines of q35 domains in parallel hung a fresh sandbox libvirtd.
  for (const d of domains) await dom.create(d);

  const cluster: DebianCluster = {
    plan,
    user,
    keyFile,
    famPath: famIn.path,
    dom,
    lsa,
    domains,
    lsaInputs,
    on: (i, command) => sshRetry(keyFile, user, plan.nodes[i]!.ip, command),
    async switchMode(mode) {
      for (const [i, node] of plan.nodes.entries()) {
        // As FameNode does: the LSA exists exactly while the node is in CXL mode.
        if (mode === "cxl") await createLsa(i);
        const olds = { ...domains[i]! } as DomainOutputs;
        const news = withMode(domains[i]!, mode, lsaInputs[i]!.path, node, imgIn.recipe.suite);
        const d = await dom.diff(node.name, olds, news);
        if (!d.changes || (d.replaces ?? []).length > 0) {
          throw new Error(
            `switching ${node.name} to ${mode} is not an in-place update: ${JSON.stringify(d)}`,
          );
        }
        await dom.update(node.name, olds, news);
        domains[i] = news;
      }
      if (mode === "ivshmem") await deleteLsas();
    },
    async ready(timeoutMs = 1_200_000) {
      const deadline = Date.now() + timeoutMs;
      try {
        await Promise.all(plan.nodes.map((n) => waitForSsh(keyFile, user, n.ip, timeoutMs)));
        const statuses: string[] = [];
        for (const [i] of plan.nodes.entries()) {
          for (;;) {
            const s = (await cluster.on(i, "cat /run/fame/fam.status 2>/dev/null || true")).trim();
            if (s !== "") {
              statuses.push(s);
              break;
            }
            if (Date.now() > deadline) throw new Error(`${plan.nodes[i]!.name}: no fam.status`);
            await new Promise((r) => setTimeout(r, 2000));
          }
        }
        return statuses;
      } catch (e) {
        throw new Error(`${e}\n${cluster.consoles()}`);
      }
    },
    consoles() {
      return domains
        .map(
          (d) =>
            `--- ${d.name}\n${fs.existsSync(d.consoleLog) ? fs.readFileSync(d.consoleLog, "utf8").slice(-4000) : "(no log)"}`,
        )
        .join("\n");
    },
    consoleLog(i) {
      return fs.readFileSync(domains[i]!.consoleLog, "utf8");
    },
    async destroy() {
      for (const c of cleanups.splice(0).reverse()) {
        await c().catch((e) => console.error(`cleanup: ${e}`));
      }
    },
  };
  return cluster;
}
