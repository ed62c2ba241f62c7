import * as pulumi from "@pulumi/pulumi";
import { type NetworkPlan, type NodePlan, TORMS_NAME } from "../lib/plan";
import { Network } from "../providers/network";

export interface NodeNetworkArgs {
  /** libvirt connection URI. Default (from the cluster): `fame:libvirtUri`, qemu:///system. */
  uri: pulumi.Input<string>;
  /** Network name, bridge and torms address (see lib/plan networkPlan). */
  plan: NetworkPlan;
  /** Nodes that get a static DHCP lease and a DNS name. */
  nodes: NodePlan[];
  /** Start the network when libvirtd starts. Default: true. */
  autostart?: boolean;
  /** The owning stack, `<project>/<stack>`: fame never adopts another stack's network. */
  owner: string;
}

/**
 * The libvirt NAT network joining the nodes; the host is "torms" at .254.
 * Node entries change live, so resizing the cluster never restarts it.
 */
export class NodeNetwork extends pulumi.ComponentResource {
  readonly networkName: pulumi.Output<string>;
  readonly bridge: pulumi.Output<string>;
  readonly tormsIp: pulumi.Output<string>;
  readonly network: Network;

  constructor(name: string, args: NodeNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:network:NodeNetwork", name, {}, opts);
    if (args.plan.bridge.length > 15) {
      throw new pulumi.ResourceError(
        `NodeNetwork ${name}: bridge name ${args.plan.bridge} is longer than Linux's 15 characters`,
        this,
      );
    }
    this.network = new Network(
      `${name}-net`,
      {
        uri: args.uri,
        name: args.plan.name,
        bridge: args.plan.bridge,
        ip: args.plan.tormsIp,
        netmask: args.plan.netmask,
        hostNames: [TORMS_NAME],
        hosts: args.nodes.map((n) => ({ mac: n.mac, name: n.name, ip: n.ip })),
        autostart: args.autostart ?? true,
        owner: args.owner,
      },
      { parent: this },
    );
    this.networkName = this.network.name;
    this.bridge = this.network.bridge;
    this.tormsIp = this.network.ip;
    this.registerOutputs({
      networkName: this.networkName,
      bridge: this.bridge,
      tormsIp: this.tormsIp,
    });
  }
}
