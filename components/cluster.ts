import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { DomainType } from "../lib/accel";
import { APPARMOR_LOCAL_FILE } from "../lib/apparmor";
import { appliedConfig } from "../lib/changes";
import type { FameConfig } from "../lib/config";
import { tmLibrarianDir } from "../lib/host/tmlibrarian";
import { bootsFameBoot } from "../lib/image";
import { fameBootArgs, tmLibrarianSource } from "../lib/lfs";
import { librarianIni, librarianWarnings } from "../lib/librarian";
import {
  envSh,
  keyFileFor,
  type SeedIdentity,
  seedFiles,
  seedSerial,
  sshCommand,
  sshConfig,
} from "../lib/outputs";
import { clusterPlan, type NodePlan, nodeName, nodeSlot } from "../lib/plan";
import { GiB } from "../lib/units";
import { AppArmorAccess } from "../providers/apparmor";
import { ArtifactFile } from "../providers/artifactFile";
import { Directory } from "../providers/directory";
import { SshKey } from "../providers/sshKey";
import { FabricMemory } from "./fabricMemory";
import { FameNode, lsaFileName } from "./fameNode";
import { GoldenImage, type GoldenImageArgs } from "./goldenImage";
import { Librarian } from "./librarian";
import { NodeNetwork } from "./nodeNetwork";

/** Artifact recording the last applied config, read by the next run's change report. */
export const APPLIED_FILE = "applied.json";

export interface FameClusterArgs {
  /** Validated stack configuration (lib/config validateConfig). */
  config: FameConfig;
  /** Domain type chosen from fame:accel and the host CPU (lib/accel domainTypeFor). */
  domainType: DomainType;
  /** Owner tag written into each domain, `<project>/<stack>`. */
  owner: string;
  /** Stack name, for the suggested private key file name. Default: the owner's stack part. */
  stack?: string;
  /** Optional node user password (secret). Default: none, key-only SSH. */
  password?: pulumi.Input<string>;
  /** The golden image's args, when the caller has computed them already. Default: imageArgs(config). */
  image?: GoldenImageArgs;
  /**
   * fame:hostbase of the last applied record (applied.json), when this run
   * renames the nodes: their resources are found under that name too.
   * Default: none.
   */
  previousHostbase?: string;
}

/**
 * The names a node's resources may have in the stack's state: fame named
 * them `<cluster>-<hostbase><NN>` before it named them by slot, so a stack
 * last applied by that fame has them under the current hostbase, or under the
 * last applied one when it is renamed in the same run. With these aliases the
 * engine keeps those resources (disk and all) instead of deleting them and
 * making them anew.
 */
export function formerNames(
  cluster: string,
  index: number,
  hostbase: string,
  previousHostbase?: string,
): pulumi.Alias[] {
  const slot = nodeSlot(index);
  const former = new Set([hostbase, previousHostbase ?? hostbase].map((h) => nodeName(h, index)));
  former.delete(slot);
  return [...former].map((n) => ({ name: `${cluster}-${n}` }));
}

/**
 * The golden image the config asks for. With the Librarian on, this reads
 * (and for a git source fetches once into the image cache) tm-librarian;
 * a relative directory source is taken from `projectDir`.
 */
export function imageArgs(config: FameConfig, projectDir = process.cwd()): GoldenImageArgs {
  const lfs = config.librarian
    ? {
        tmLibrarianDir: tmLibrarianDir(
          tmLibrarianSource(config.librarianSource, config.librarianCommit, projectDir),
          config.imageCache,
        ),
        port: config.librarianPort,
      }
    : undefined;
  return {
    ...(lfs ? { lfs } : {}),
    suite: config.suite,
    mirror: config.mirror,
    proxy: config.proxy,
    l4fame: config.l4fame,
    kernel: config.kernel,
    sizeGbytes: config.vfsGbytes,
    cacheDir: config.imageCache,
  };
}

export interface NodeInfo {
  name: string;
  mac: string;
  ip: string;
}

/**
 * A whole FAME cluster: the FAM file, the node network, the golden image, the
 * stack's SSH key and one IVSHMEM-enabled node per plan entry, all mapping the
 * same file.
 */
export class FameCluster extends pulumi.ComponentResource {
  readonly nodes: NodeInfo[];
  readonly famPath: pulumi.Output<string>;
  readonly famSizeBytes: pulumi.Output<number>;
  readonly networkName: pulumi.Output<string>;
  readonly libvirtUri: string;
  readonly nodeStates: pulumi.Output<Record<string, boolean>>;
  readonly publicKey: pulumi.Output<string>;
  readonly privateKey: pulumi.Output<string>;
  readonly sshConfig: string;
  readonly sshCommands: Record<string, string>;
  readonly imageKey: string;
  readonly imagePackages: pulumi.Output<string[]>;
  readonly envFile: pulumi.Output<string>;
  readonly librarianIni: string;
  readonly librarianIniPath: pulumi.Output<string>;
  /** The Librarian database on torms (fame:librarian on), else undefined. */
  readonly librarianDb: pulumi.Output<string> | undefined;
  /** The systemd unit (or supervisor name) serving it, else undefined. */
  readonly librarianUnit: pulumi.Output<string> | undefined;
  /** The Librarian monitor's start page (fame:librarianMonitor on), else undefined. */
  readonly librarianMonitorUrl: pulumi.Output<string> | undefined;

  constructor(name: string, args: FameClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:cluster:FameCluster", name, {}, opts);
    const { config } = args;
    const plan = clusterPlan(config);
    const uri = config.libvirtUri;
    const stack = args.stack ?? args.owner.split("/").pop() ?? "fame";
    const keyFile = keyFileFor(stack);
    const shutdownTimeoutMs = config.shutdownTimeoutSeconds * 1000;

    const imgArgs = args.image ?? imageArgs(config);
    const dir = new Directory(
      `${name}-dir`,
      { path: config.dir, mode: 0o755, owner: args.owner },
      { parent: this },
    );
    const memory = new FabricMemory(
      `${name}-fam`,
      {
        path: config.famPath,
        sizeBytes: config.famSizeBytes,
        deleteOnDestroy: config.famDeleteOnDestroy,
        allowShrink: config.famAllowShrink,
        owner: args.owner,
        users: { uri, domains: plan.nodes.map((n) => n.name), shutdownTimeoutMs },
      },
      // The default famPath is in fame:dir: its directory (and owner record) comes first.
      { parent: this, dependsOn: [dir] },
    );
    const network = new NodeNetwork(
      `${name}-network`,
      { uri, plan: plan.network, nodes: plan.nodes, owner: args.owner },
      { parent: this },
    );
    const key = new SshKey(
      `${name}-ssh`,
      { comment: args.owner.replaceAll("/", "-") },
      { parent: this },
    );
    const fameBoot = bootsFameBoot(args.domainType, config);
    const image = new GoldenImage(`${name}-image`, { ...imgArgs, fameBoot }, { parent: this });

    // libvirt cannot see paths passed through qemu:commandline: open exactly these for its QEMU profiles.
    const apparmor = new AppArmorAccess(
      `${name}-apparmor`,
      {
        file: APPARMOR_LOCAL_FILE,
        owner: args.owner,
        rules: [
          { path: config.famPath, perms: "rw" },
          ...(config.famezSocket ? [{ path: config.famezSocket, perms: "rw" }] : []),
          // CXL: each node's own label storage area, also passed through qemu:commandline.
          ...(config.famMode === "cxl"
            ? plan.nodes.map((n) => ({
                path: path.posix.join(config.dir, lsaFileName(n)),
                perms: "rw",
              }))
            : []),
        ],
      },
      { parent: this },
    );
    // The stack's own user and names reach the nodes on their seed disks, never through the image.
    const identity: SeedIdentity = {
      user: config.user,
      hostbase: config.hostbase,
      octets123: config.octets123,
    };
    const seeds = pulumi
      .all([key.publicKey, key.privateKey, args.password ?? ""])
      .apply(([pub, priv, password]) => seedFiles(identity, pub, priv, password, config.proxy));
    const bootArgs = fameBootArgs(config, args.domainType);
    const boot = {
      kernel: config.kernelPath || (image.bootKernel ?? image.kernel),
      initrd: config.initrdPath || (image.bootInitrd ?? image.initrd),
      cmdline: `${bootArgs} ${config.cmdline}`.trim(),
    };
    const nodes = plan.nodes.map(
      (node: NodePlan) =>
        new FameNode(
          `${name}-${nodeSlot(node.index)}`,
          {
            uri,
            node,
            network: network.networkName,
            fam: { path: memory.path, sizeBytes: memory.sizeBytes, prealloc: config.famPrealloc },
            famMode: config.famMode,
            boot,
            image: { qcow2: image.qcow2, key: image.key },
            diskSizeBytes: config.vfsGbytes * GiB,
            dir: dir.path,
            seedFiles: pulumi.secret(seeds),
            seedSerial: seedSerial(identity),
            vcpus: config.vcpus,
            memoryKiB: config.vdramKiB,
            domainType: args.domainType,
            famezSocket: config.famezSocket,
            owner: args.owner,
            running: config.running.includes(node.index),
            shutdownTimeoutMs,
            domainDependsOn: [apparmor],
          },
          {
            parent: this,
            aliases: formerNames(name, node.index, config.hostbase, args.previousHostbase),
          },
        ),
    );
    const inDir = (file: string) => dir.path.apply((d) => path.posix.join(d, file));
    const ini = librarianIni(config.famSizeBytes, config.nodes);
    const imageLfs = imgArgs.lfs;
    const lfs =
      config.librarian && imageLfs
        ? new Librarian(
            `${name}-librarian`,
            {
              owner: args.owner,
              dir: dir.path,
              ini,
              tmLibrarian: imageLfs.tmLibrarianDir,
              port: config.librarianPort,
              reset: config.librarianReset,
              subnet: `${config.octets123}.0/24`,
              bridge: network.bridge,
              // A confined systemd unit, or (fame:librarianNetns) fame's supervisor inside that namespace.
              ...(config.librarianNetns
                ? { mode: "netns" as const, netns: config.librarianNetns }
                : { mode: "systemd" as const }),
              dependsOn: [network],
              ...(config.librarianMonitor
                ? { monitor: { host: plan.network.tormsIp, port: config.librarianMonitorPort } }
                : {}),
            },
            { parent: this },
          )
        : undefined;
    const env = new ArtifactFile(
      `${name}-env`,
      { path: inDir("env.sh"), content: envSh(config, args.owner), mode: 0o644 },
      { parent: this },
    );
    // Said in preview: what the Librarian (book_register, lfs_fuse) cannot do with this layout.
    for (const w of librarianWarnings(config.famSizeBytes, config.nodes)) {
      pulumi.log.warn(`fame: ${w}`, this);
    }
    const librarian = new ArtifactFile(
      `${name}-librarian`,
      { path: inDir("librarian.ini"), content: ini, mode: 0o644 },
      { parent: this },
    );
    // Written last: the next run compares its config with what was really applied.
    new ArtifactFile(
      `${name}-applied`,
      {
        path: inDir(APPLIED_FILE),
        content: `${JSON.stringify(appliedConfig(config, image.key, args.owner, bootArgs, fameBoot), null, 2)}\n`,
        mode: 0o644,
      },
      { parent: this, dependsOn: [memory, network, ...nodes, ...(lfs ? [lfs] : [])] },
    );

    this.nodes = plan.nodes.map(({ name: n, mac, ip }) => ({ name: n, mac, ip }));
    this.famPath = memory.path;
    this.famSizeBytes = memory.sizeBytes;
    this.networkName = network.networkName;
    this.libvirtUri = uri;
    this.nodeStates = pulumi
      .all(nodes.map((n) => n.running))
      .apply((states) => Object.fromEntries(nodes.map((n, i) => [n.nodeName, states[i] ?? false])));
    this.publicKey = key.publicKey;
    this.privateKey = pulumi.secret(key.privateKey);
    this.sshConfig = sshConfig(plan.nodes, config.user, keyFile);
    this.sshCommands = Object.fromEntries(
      plan.nodes.map((n) => [n.name, sshCommand(n, config.user, keyFile)]),
    );
    this.imageKey = image.key;
    this.imagePackages = image.packages;
    this.envFile = env.path;
    this.librarianIni = ini;
    this.librarianIniPath = librarian.path;
    this.librarianDb = lfs?.dbPath;
    this.librarianUnit = lfs?.unit;
    this.librarianMonitorUrl = lfs?.monitorUrl;
    this.registerOutputs({
      nodes: this.nodes,
      famPath: this.famPath,
      famSizeBytes: this.famSizeBytes,
      networkName: this.networkName,
      libvirtUri: uri,
      nodeStates: this.nodeStates,
      publicKey: this.publicKey,
      privateKey: this.privateKey,
      sshConfig: this.sshConfig,
      sshCommands: this.sshCommands,
      imageKey: this.imageKey,
      imagePackages: this.imagePackages,
      envFile: this.envFile,
      librarianIni: this.librarianIni,
      librarianIniPath: this.librarianIniPath,
      librarianDb: this.librarianDb,
      librarianUnit: this.librarianUnit,
      librarianMonitorUrl: this.librarianMonitorUrl,
    });
  }
}
