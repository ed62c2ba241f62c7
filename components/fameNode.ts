import * as pulumi from "@pulumi/pulumi";
import type { DomainType } from "../lib/accel";
import type { NodePlan } from "../lib/plan";
import type { DiskSpec } from "../lib/xml";
import { Domain } from "../providers/domain";

export interface BootSource {
  /** Absolute path of the kernel for direct kernel boot. */
  kernel: pulumi.Input<string>;
  /** Absolute path of the matching initrd. */
  initrd: pulumi.Input<string>;
  /** Base kernel command line; the node appends its identity. Default: "console=ttyS0". */
  cmdline?: pulumi.Input<string>;
  /** Boot and data disks, in order (vda, vdb, ...). Default: none. */
  disks?: pulumi.Input<pulumi.Input<DiskSpec>[]>;
}

export interface FameNodeArgs {
  /** libvirt connection URI. */
  uri: pulumi.Input<string>;
  /** This node's number, name, MAC and IP (lib/plan). */
  node: NodePlan;
  /** Network the NIC joins (NodeNetwork.networkName, so the node waits for it). */
  network: pulumi.Input<string>;
  /** FAM backing file and its size (FabricMemory outputs). */
  fam: { path: pulumi.Input<string>; sizeBytes: pulumi.Input<number> };
  boot: BootSource;
  /** Virtual CPUs. Default: 2. */
  vcpus?: pulumi.Input<number>;
  /** DRAM in KiB. Default: 786432. */
  memoryKiB?: pulumi.Input<number>;
  /** "kvm" or "qemu" (TCG). Default: "qemu". */
  domainType?: DomainType;
  /** Absolute path the serial console is logged to. */
  consoleLog: pulumi.Input<string>;
  /** FAME-Z server socket for an ivshmem-doorbell device. Default: none. */
  famezSocket?: pulumi.Input<string>;
  /** Marks the domain as this stack's (`<project>/<stack>`), so fame never adopts a stranger's. */
  owner: pulumi.Input<string>;
  /** Desired power state. Default: true (running). */
  running?: pulumi.Input<boolean>;
  /** Graceful shutdown budget before a forced power-off, ms. Default: 60000. */
  shutdownTimeoutMs?: pulumi.Input<number>;
}

/** Kernel command line with the node's identity appended (hostname without touching images). */
export function nodeCmdline(base: string, node: NodePlan): string {
  return [base.trim(), `systemd.hostname=${node.name}`, `fame.node=${node.index}`]
    .filter(Boolean)
    .join(" ");
}

/** One emulated node of The Machine: a libvirt domain mapping the shared FAM. */
export class FameNode extends pulumi.ComponentResource {
  readonly nodeName: string;
  readonly mac: string;
  readonly ip: string;
  readonly running: pulumi.Output<boolean>;
  readonly domain: Domain;

  constructor(name: string, args: FameNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:node:FameNode", name, {}, opts);
    const { node } = args;
    this.nodeName = node.name;
    this.mac = node.mac;
    this.ip = node.ip;
    this.domain = new Domain(
      `${name}-domain`,
      {
        uri: args.uri,
        name: node.name,
        type: args.domainType ?? "qemu",
        memoryKiB: args.memoryKiB ?? 786432,
        vcpus: args.vcpus ?? 2,
        kernel: args.boot.kernel,
        initrd: args.boot.initrd,
        cmdline: pulumi
          .output(args.boot.cmdline ?? "console=ttyS0")
          .apply((c) => nodeCmdline(c, node)),
        disks: pulumi.output(args.boot.disks ?? []),
        network: args.network,
        mac: node.mac,
        consoleLog: args.consoleLog,
        fam: pulumi
          .all([args.fam.path, args.fam.sizeBytes])
          .apply(([path, sizeBytes]) => ({ path, sizeBytes })),
        famezSocket: args.famezSocket ?? "",
        owner: args.owner,
        running: args.running ?? true,
        shutdownTimeoutMs: args.shutdownTimeoutMs ?? 60_000,
      },
      { parent: this },
    );
    this.running = this.domain.running;
    this.registerOutputs({ name: node.name, mac: node.mac, ip: node.ip, running: this.running });
  }
}
