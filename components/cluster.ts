import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { DomainType } from "../lib/accel";
import type { FameConfig } from "../lib/config";
import { clusterPlan, type NodePlan } from "../lib/plan";
import { Directory } from "../providers/directory";
import { FabricMemory } from "./fabricMemory";
import { type BootSource, FameNode } from "./fameNode";
import { NodeNetwork } from "./nodeNetwork";

export interface FameClusterArgs {
  /** Validated stack configuration (lib/config validateConfig). */
  config: FameConfig;
  /** Domain type chosen from fame:accel and the host CPU (lib/accel domainTypeFor). */
  domainType: DomainType;
  /** Owner tag written into each domain, `<project>/<stack>`. */
  owner: string;
  /**
   * What the nodes boot. Default: fame:kernelPath / fame:initrdPath /
   * fame:cmdline from the config.
   */
  boot?: BootSource;
}

export interface NodeInfo {
  name: string;
  mac: string;
  ip: string;
}

/**
 * A whole FAME cluster: the FAM file, the node network and one IVSHMEM-enabled
 * domain per node, all mapping the same file.
 */
export class FameCluster extends pulumi.ComponentResource {
  readonly nodes: NodeInfo[];
  readonly famPath: pulumi.Output<string>;
  readonly famSizeBytes: pulumi.Output<number>;
  readonly networkName: pulumi.Output<string>;
  readonly libvirtUri: string;
  readonly nodeStates: pulumi.Output<Record<string, boolean>>;

  constructor(name: string, args: FameClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:cluster:FameCluster", name, {}, opts);
    const { config } = args;
    const boot = args.boot ?? bootFromConfig(config, this);
    const plan = clusterPlan(config);
    const uri = config.libvirtUri;

    const dir = new Directory(`${name}-dir`, { path: config.dir, mode: 0o755 }, { parent: this });
    const memory = new FabricMemory(
      `${name}-fam`,
      {
        path: config.famPath,
        sizeBytes: config.famSizeBytes,
        deleteOnDestroy: config.famDeleteOnDestroy,
      },
      { parent: this },
    );
    const network = new NodeNetwork(
      `${name}-network`,
      { uri, plan: plan.network, nodes: plan.nodes },
      { parent: this },
    );
    const nodes = plan.nodes.map(
      (node: NodePlan) =>
        new FameNode(
          `${name}-${node.name}`,
          {
            uri,
            node,
            network: network.networkName,
            fam: { path: memory.path, sizeBytes: memory.sizeBytes },
            boot,
            vcpus: config.vcpus,
            memoryKiB: config.vdramKiB,
            domainType: args.domainType,
            consoleLog: dir.path.apply((d) => path.posix.join(d, `${node.name}.console.log`)),
            famezSocket: config.famezSocket,
            owner: args.owner,
          },
          { parent: this },
        ),
    );

    this.nodes = plan.nodes.map(({ name: n, mac, ip }) => ({ name: n, mac, ip }));
    this.famPath = memory.path;
    this.famSizeBytes = memory.sizeBytes;
    this.networkName = network.networkName;
    this.libvirtUri = uri;
    this.nodeStates = pulumi
      .all(nodes.map((n) => n.running))
      .apply((states) => Object.fromEntries(nodes.map((n, i) => [n.nodeName, states[i] ?? false])));
    this.registerOutputs({
      nodes: this.nodes,
      famPath: this.famPath,
      famSizeBytes: this.famSizeBytes,
      networkName: this.networkName,
      libvirtUri: uri,
      nodeStates: this.nodeStates,
    });
  }
}

function bootFromConfig(config: FameConfig, parent: pulumi.Resource): BootSource {
  if (!config.kernelPath || !config.initrdPath) {
    throw new pulumi.ResourceError(
      "fame:kernelPath and fame:initrdPath are empty: the nodes need a kernel and initrd to boot (set both to absolute paths)",
      parent,
    );
  }
  return { kernel: config.kernelPath, initrd: config.initrdPath, cmdline: config.cmdline };
}
