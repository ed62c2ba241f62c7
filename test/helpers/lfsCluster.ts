/**
 * Two Debian nodes from the LFS golden image with the Librarian on torms,
 * driven through the serialized providers the way the engine does, inside the
 * sandbox: the FAM file, the node network, the database (the real
 * book_register), librarian.py in the sandbox namespace (where the node
 * network is the only network) and the domains, node01 mounting /lfs through
 * libfuse 2 and node02 through libfuse 3 (fame.lfs_fuse=3 on its command
 * line, as a stack with fame:lfsFuse 3 boots it). Shared by the LFS
 * end-to-end test and the node benchmark (bench/lfsNodes.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { WorkloadResult } from "../../bench/lfsReport";
import { lfsBootArgs } from "../../lib/lfs";
import { librarianIni } from "../../lib/librarian";
import { seedFiles } from "../../lib/outputs";
import { type ClusterPlan, clusterPlan } from "../../lib/plan";
import { GiB } from "../../lib/units";
import { Domain, type DomainInputs, type DomainOutputs } from "../../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import type { GoldenImageInputs, GoldenImageOutputs } from "../../providers/goldenImage";
import {
  LibrarianDb,
  type LibrarianDbInputs,
  type LibrarianDbOutputs,
} from "../../providers/librarianDb";
import {
  LibrarianService,
  type LibrarianServiceInputs,
  type LibrarianServiceOutputs,
} from "../../providers/librarianService";
import { Network, type NetworkInputs, type NetworkOutputs } from "../../providers/network";
import { provisionNode, stackKey } from "./debianCluster";
import { type LoadedProvider, loadSerialized } from "./engine";
import { famInputs, networkInputs } from "./fixtures";
import { TM_LIBRARIAN } from "./lfs";
import { LFS_HOSTBASE, LFS_OCTETS, LFS_PORT, LFS_STACK, lfsImageInputs } from "./lfsImage";
import { ROOT, sandboxNetns, sandboxUri, scratchDir } from "./sandbox";
import { ssh, sshOk, waitForSsh } from "./ssh";
import { ensureTestImage } from "./testImage";

/** The FAM of the cluster: 1 GiB, 2 nodes, so 128 books of 8 MiB. */
export const LFS_FAM_BYTES = GiB;

/**
 * The cluster, its providers and their inputs (the e2e test changes some of
 * them: the domains' vCPUs, the service's outputs across destroy + up).
 */
export class LfsCluster {
  readonly plan: ClusterPlan = clusterPlan({
    nodes: 2,
    hostbase: LFS_HOSTBASE,
    octets123: LFS_OCTETS,
  });
  readonly user = LFS_STACK.user;
  readonly owner: string;
  readonly ips: [string, string];
  readonly dir: string;
  readonly keyFile: string;
  readonly imgIn: GoldenImageInputs = lfsImageInputs();
  image!: GoldenImageOutputs;
  famIn!: FamFileInputs;
  netIn!: NetworkInputs;
  dbIn!: LibrarianDbInputs;
  svcIn!: LibrarianServiceInputs;
  svcOut: LibrarianServiceOutputs | undefined;
  readonly domIns: DomainInputs[] = [];
  dom!: LoadedProvider<DomainInputs, DomainOutputs>;
  net!: LoadedProvider<NetworkInputs, NetworkOutputs>;
  dbP!: LoadedProvider<LibrarianDbInputs, LibrarianDbOutputs>;
  svcP!: LoadedProvider<LibrarianServiceInputs, LibrarianServiceOutputs>;
  private readonly cleanups: (() => Promise<void>)[] = [];

  /**
   * @param owner the stack the resources claim (`<project>/<stack>`)
   * @param prealloc fame:famPrealloc for the nodes' FAM mapping
   * @param log where progress goes (the image build's, the boot's)
   */
  constructor(
    owner: string,
    private readonly prealloc: boolean,
    private readonly log: (m: string) => void,
  ) {
    this.owner = owner;
    this.ips = this.plan.nodes.map((n) => n.ip) as [string, string];
    this.dir = scratchDir("lfs-cluster");
    this.keyFile = path.join(this.dir, "id_ed25519");
  }

  /** A command on a node as the node user; its stdout, or an error naming its exit. */
  on(ip: string, cmd: string): Promise<string> {
    return sshOk(this.keyFile, this.user, ip, cmd);
  }

  /** The last 3000 characters of each node's console log, for a failure's message. */
  consoleTails(): string {
    return this.domIns
      .map(
        (d) =>
          `--- ${d.name}\n${fs.existsSync(d.consoleLog) ? fs.readFileSync(d.consoleLog, "utf8").slice(-3000) : "(no log)"}`,
      )
      .join("\n");
  }

  /** Waits until /lfs is mounted and answers on the node; the unit's status and journal if not. */
  async waitLfs(ip: string, ms = 600_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      const r = await ssh(
        this.keyFile,
        this.user,
        ip,
        "mountpoint -q /lfs && ls /lfs/lost+found >/dev/null && echo up",
      );
      if (r.stdout.includes("up")) return;
      if (Date.now() > end) {
        const st = await ssh(
          this.keyFile,
          this.user,
          ip,
          "sudo systemctl status fame-lfs --no-pager; sudo journalctl -u fame-lfs --no-pager | tail -40",
        );
        throw new Error(`/lfs not mounted on ${ip}:\n${st.stdout}${st.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 3000));
    }
  }

  /** Creates (starts) every domain and waits for SSH on both nodes. */
  async bootAll(): Promise<void> {
    await Promise.all(this.domIns.map((d) => this.dom.create(d)));
    await Promise.all(this.ips.map((ip) => waitForSsh(this.keyFile, this.user, ip, 900_000))).catch(
      (e) => {
        throw new Error(`${e}\n${this.consoleTails()}`);
      },
    );
  }

  /**
   * Everything up to /lfs mounted on both nodes: the image (built or from the
   * test image cache), key, FAM file, network, database, Librarian, domains.
   * Each piece is registered for stop() as soon as it exists.
   */
  async start(): Promise<void> {
    const uri = sandboxUri();
    this.image = await ensureTestImage(this.imgIn, this.log, "LFS golden image");

    const key = await stackKey("fame-e2e-lfs", this.keyFile);

    const famIn = famInputs(path.join(this.dir, "FAM"), { sizeBytes: LFS_FAM_BYTES });
    this.famIn = famIn;
    const fam = (
      await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("fam", famIn))
    ).provider;
    await fam.create(famIn);
    this.cleanups.push(() => fam.delete(famIn.path, { ...famIn, createdByFame: true }));

    const netIn = networkInputs(this.plan, uri, this.owner);
    this.netIn = netIn;
    const net = (
      await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("net", netIn))
    ).provider;
    this.net = net;
    await net.create(netIn);
    this.cleanups.push(() => net.delete(netIn.name, { ...netIn, active: true }));

    // torms: the database (real book_register) and librarian.py in the sandbox namespace.
    this.dbIn = {
      path: path.join(this.dir, "librarian.db"),
      ini: librarianIni(LFS_FAM_BYTES, 2),
      tmLibrarian: TM_LIBRARIAN,
      reset: false,
    };
    const dbIn = this.dbIn;
    this.dbP = (
      await loadSerialized<LibrarianDbInputs, LibrarianDbOutputs>(() => new LibrarianDb("db", dbIn))
    ).provider;
    const failures = (await this.dbP.check!({}, dbIn)).failures ?? [];
    if (failures.length > 0) throw new Error(`librarian.db check: ${JSON.stringify(failures)}`);
    const dbOut = (await this.dbP.create!(dbIn)).outs as LibrarianDbOutputs;
    if (dbOut.info.nodes !== 2)
      throw new Error(`librarian.db has ${dbOut.info.nodes} nodes, not 2`);
    this.svcIn = {
      owner: this.owner,
      mode: "netns",
      netns: sandboxNetns(),
      stateDir: this.dir,
      tmLibrarian: TM_LIBRARIAN,
      db: dbIn.path,
      dbGeneration: dbOut.generation,
      port: LFS_PORT,
      subnet: `${LFS_OCTETS}.0/24`,
      bridge: this.plan.network.bridge,
    };
    const svcIn = this.svcIn;
    this.svcP = (
      await loadSerialized<LibrarianServiceInputs, LibrarianServiceOutputs>(
        () => new LibrarianService("svc", svcIn),
      )
    ).provider;
    this.svcOut = (await this.svcP.create!(svcIn)).outs as LibrarianServiceOutputs;
    this.cleanups.push(async () => {
      if (this.svcOut) await this.svcP.delete!(this.svcOut.unit, this.svcOut);
    });

    // The nodes.
    const seeds = seedFiles(LFS_STACK, key.publicKey, key.privateKey);
    for (const node of this.plan.nodes) {
      const d = await provisionNode(node, {
        uri,
        plan: this.plan,
        dir: this.dir,
        owner: this.owner,
        image: this.image,
        suite: this.imgIn.recipe.suite,
        diskBytes: 4 * GiB,
        seeds,
        fam: {
          path: famIn.path,
          sizeBytes: famIn.sizeBytes,
          ...(this.prealloc ? { prealloc: true } : {}),
        },
      });
      // node02 as a stack with fame:lfsFuse 3 makes it (FameNode's command line + lfsBootArgs).
      const lfs = lfsBootArgs({ librarian: true, lfsFuse: node.index === 2 ? 3 : 2 });
      this.domIns.push({ ...d, cmdline: [d.cmdline, ...lfs].join(" ") });
    }
    const first = this.domIns[0]!;
    this.dom = (
      await loadSerialized<DomainInputs, DomainOutputs>(() => new Domain("dom", first))
    ).provider;
    for (const d of this.domIns)
      this.cleanups.push(() => this.dom.delete(d.name, { ...d, shutdownTimeoutMs: 1000 }));

    const t = Date.now();
    await this.bootAll();
    await Promise.all(this.ips.map((ip) => this.waitLfs(ip)));
    this.log(`/lfs mounted on both nodes ${Math.round((Date.now() - t) / 1000)} s after start`);
  }

  /** Undoes start() in reverse, whatever of it happened; removes the scratch directory. */
  async stop(): Promise<void> {
    for (const c of this.cleanups.reverse()) await c().catch((e) => console.error(`cleanup: ${e}`));
    this.cleanups.length = 0;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * bench/lfs_workload.py on one node, as bench/lfs.ts runs it without a VM:
   * through /lfs (FUSE -> lfs_fuse.py with fame's fast paths -> its mapping
   * of BAR2), then the same file's books through direct BAR2 mappings at the
   * offsets lfs_offsets gives, and the floor: the same I/O on a copy-only
   * fusepy file system (FUSE alone). `runs` runs of 64 MiB.
   */
  async workload(ip: string, runs: number): Promise<WorkloadResult> {
    const workload = fs.readFileSync(path.join(ROOT, "bench", "lfs_workload.py"), "utf8");
    await this.on(ip, `cat > /tmp/lfs_workload.py <<'EOF'\n${workload}\nEOF`);
    const bar =
      '$(for d in /sys/bus/pci/devices/*; do [ "$(cat $d/vendor)" = 0x1af4 ] && [ "$(cat $d/device)" = 0x1110 ] && echo $d/resource2 && break; done)';
    // Minutes under TCG: longer than on()'s 2-minute limit.
    const r = await ssh(
      this.keyFile,
      this.user,
      ip,
      `sudo python3 /tmp/lfs_workload.py --mount /lfs --shadow ${bar} --offsets lfs_offsets --mib 64 --runs ${runs} --floor /tmp/fame-floor`,
      runs * 10 * 60_000,
    );
    if (r.code !== 0) {
      // Leave no benchmark file behind for the tests that count files.
      await ssh(
        this.keyFile,
        this.user,
        ip,
        "sudo rm -f /lfs/bench-seq8 /lfs/bench-seq1 /lfs/bench-seqd",
      );
      throw new Error(`workload exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    }
    return JSON.parse(r.stdout) as WorkloadResult;
  }
}
