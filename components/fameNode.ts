import * as crypto from "node:crypto";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { DomainType } from "../lib/accel";
import type { FamMode } from "../lib/config";
import { cxlSerial, type NodePlan } from "../lib/plan";
import { SCHEMA } from "../lib/schema";
import { CXL_LSA_BYTES } from "../lib/xml";
import { Domain } from "../providers/domain";
import { FamFile } from "../providers/famFile";
import { NodeDisk } from "../providers/nodeDisk";
import { SeedDisk } from "../providers/seedDisk";
import { FAM_GROUP, FAM_MODE } from "./fabricMemory";

/** File name (in the artifact directory) of a node's CXL label storage area. */
export function lsaFileName(node: NodePlan): string {
  return `${node.name}.lsa`;
}

export interface BootSource {
  /** Absolute path of the kernel for direct kernel boot. */
  kernel: pulumi.Input<string>;
  /** Absolute path of the matching initrd. */
  initrd: pulumi.Input<string>;
  /** Base kernel command line; the node appends its identity. Default: "console=ttyS0". */
  cmdline?: pulumi.Input<string>;
}

export interface FameNodeArgs {
  /** libvirt connection URI. */
  uri: pulumi.Input<string>;
  /** This node's number, name, MAC and IP (lib/plan). */
  node: NodePlan;
  /** Network the NIC joins (NodeNetwork.networkName, so the node waits for it). */
  network: pulumi.Input<string>;
  /**
   * FAM backing file and its size (FabricMemory outputs); `prealloc`: QEMU
   * populates every FAM page when the node starts (fame:famPrealloc).
   * Default: prealloc false.
   */
  fam: { path: pulumi.Input<string>; sizeBytes: pulumi.Input<number>; prealloc?: boolean };
  /**
   * How the node sees FAM: "ivshmem" (PCI BAR) or "cxl" (CXL type-3 device on
   * q35, with the node's own label storage area `<dir>/<node>.lsa`, kept with
   * the node and deleted with it). Default: "ivshmem".
   */
  famMode?: FamMode;
  boot: BootSource;
  /** The golden image the node's copy-on-write disk is backed by. */
  image: { qcow2: pulumi.Input<string>; key: string };
  /** Node disk size in bytes (the golden image's size). */
  diskSizeBytes: number;
  /** Artifact directory: the node's disk, seed and console log live here. */
  dir: pulumi.Input<string>;
  /** Files for the node's seed disk (identity and credentials); secret. Default: none. */
  seedFiles?: pulumi.Input<Record<string, string>>;
  /**
   * The seed disk's serial in the domain (lib/outputs seedSerial): a new one
   * restarts the node, which sets its new identity up at boot. Default: none.
   */
  seedSerial?: string;
  /** Virtual CPUs. Default: 2. */
  vcpus?: pulumi.Input<number>;
  /** DRAM in KiB. Default: 786432. */
  memoryKiB?: pulumi.Input<number>;
  /** "kvm" or "qemu" (TCG). Default: "qemu". */
  domainType?: DomainType;
  /** FAME-Z server socket for an ivshmem-doorbell device. Default: none. */
  famezSocket?: pulumi.Input<string>;
  /** Marks the domain as this stack's (`<project>/<stack>`), so fame never adopts a stranger's. */
  owner: pulumi.Input<string>;
  /** Desired power state. Default: true (running). */
  running?: pulumi.Input<boolean>;
  /** Graceful shutdown budget before a forced power-off, ms. Default: 60000. */
  shutdownTimeoutMs?: pulumi.Input<number>;
  /** Resources the domain must wait for (e.g. the AppArmor rule for FAM). Default: none. */
  domainDependsOn?: pulumi.Resource[];
}

/**
 * The node disk's file name carries everything the disk is made from (image
 * key, backing file, size), so any change gives a new path: the new disk is
 * made beside the old one and the domain switches to it in one restart. A
 * running QEMU never keeps a deleted overlay open under a reused name.
 */
export function nodeDiskFile(nodeName: string, backingFile: string, sizeBytes: number): string {
  const id = crypto.createHash("sha256").update(`${backingFile}\0${sizeBytes}`).digest("hex");
  return `${nodeName}-${id.slice(0, 12)}.qcow2`;
}

/** Kernel command line with the node's identity appended (hostname without touching images). */
export function nodeCmdline(base: string, node: NodePlan): string {
  return [base.trim(), `systemd.hostname=${node.name}`, `fame.node=${node.index}`]
    .filter(Boolean)
    .join(" ");
}

/**
 * One emulated node of The Machine: a copy-on-write disk on the golden image,
 * a seed disk with its credentials, and a libvirt domain mapping the shared FAM.
 */
export class FameNode extends pulumi.ComponentResource {
  readonly nodeName: string;
  readonly mac: string;
  readonly ip: string;
  readonly running: pulumi.Output<boolean>;
  readonly diskPath: pulumi.Output<string>;
  readonly domain: Domain;

  constructor(name: string, args: FameNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:node:FameNode", name, {}, opts);
    const { node } = args;
    const inDir = (file: string) => pulumi.output(args.dir).apply((d) => path.posix.join(d, file));
    this.nodeName = node.name;
    this.mac = node.mac;
    this.ip = node.ip;

    const disk = new NodeDisk(
      `${name}-disk`,
      {
        path: pulumi
          .all([args.dir, args.image.qcow2])
          .apply(([d, q]) => path.posix.join(d, nodeDiskFile(node.name, q, args.diskSizeBytes))),
        backingFile: args.image.qcow2,
        sizeBytes: args.diskSizeBytes,
      },
      { parent: this },
    );
    const seed = new SeedDisk(
      `${name}-seed`,
      { path: inDir(`${node.name}.seed.img`), files: args.seedFiles ?? {} },
      { parent: this },
    );
    // CXL: the node's own label storage area (its namespace label), a sparse file next to its disk.
    const lsa =
      args.famMode === "cxl"
        ? new FamFile(
            `${name}-lsa`,
            {
              path: inDir(lsaFileName(node)),
              sizeBytes: CXL_LSA_BYTES,
              group: FAM_GROUP,
              mode: FAM_MODE,
              deleteOnDestroy: true,
              allowShrink: false,
              keepPath: true,
              users: { uri: "", domains: [], shutdownTimeoutMs: 0 },
            },
            { parent: this },
          )
        : undefined;
    this.domain = new Domain(
      `${name}-domain`,
      {
        uri: args.uri,
        name: node.name,
        type: args.domainType ?? "qemu",
        memoryKiB: args.memoryKiB ?? SCHEMA.vdram.default,
        vcpus: args.vcpus ?? SCHEMA.vcpus.default,
        kernel: args.boot.kernel,
        initrd: args.boot.initrd,
        cmdline: pulumi
          .output(args.boot.cmdline ?? "console=ttyS0")
          .apply((c) => nodeCmdline(c, node)),
        disks: pulumi.all([disk.path, disk.serial, seed.path]).apply(([d, serial, s]) => [
          { path: d, format: "qcow2" as const, serial },
          {
            path: s,
            format: "raw" as const,
            ...(args.seedSerial ? { serial: args.seedSerial } : {}),
          },
        ]),
        network: args.network,
        mac: node.mac,
        consoleLog: inDir(`${node.name}.console.log`),
        fam: pulumi.all([args.fam.path, args.fam.sizeBytes]).apply(([p, s]) => ({
          path: p,
          sizeBytes: s,
          // Absent unless on: a domain made before the option existed stays as it is.
          ...(args.fam.prealloc ? { prealloc: true } : {}),
        })),
        ...(lsa
          ? {
              cxl: lsa.path.apply((p) => ({
                lsaPath: p,
                lsaSizeBytes: CXL_LSA_BYTES,
                serial: cxlSerial(node.index),
              })),
            }
          : {}),
        famezSocket: args.famezSocket ?? "",
        owner: args.owner,
        running: args.running ?? true,
        shutdownTimeoutMs: args.shutdownTimeoutMs ?? SCHEMA.shutdownTimeout.default * 1000,
      },
      { parent: this, dependsOn: args.domainDependsOn ?? [] },
    );
    this.running = this.domain.running;
    this.diskPath = disk.path;
    this.registerOutputs({
      name: node.name,
      mac: node.mac,
      ip: node.ip,
      running: this.running,
      disk: this.diskPath,
    });
  }
}
