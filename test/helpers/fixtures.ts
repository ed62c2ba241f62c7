/** Provider inputs the way the components build them, for tests and benchmarks that drive providers directly. */
import * as path from "node:path";
import { nodeCmdline } from "../../components/fameNode";
import type { ImageInputs } from "../../lib/image";
import type { ClusterPlan, NodePlan } from "../../lib/plan";
import { GiB } from "../../lib/units";
import type { DiskSpec } from "../../lib/xml";
import type { DomainInputs } from "../../providers/domain";
import type { FamFileInputs } from "../../providers/famFile";
import type { NetworkInputs } from "../../providers/network";

/** Image inputs of the default configuration (no L4FAME, no templates), with overrides. */
export function imageInputs(over: Partial<ImageInputs> = {}): ImageInputs {
  return {
    suite: "bookworm",
    mirror: "http://deb.debian.org/debian",
    l4fame: "",
    kernel: "linux-image-4.14.0-l4fame",
    sizeGbytes: 6,
    helloFabric: "",
    famScript: "",
    ...over,
  };
}

export function famInputs(file: string, over: Partial<FamFileInputs> = {}): FamFileInputs {
  return {
    path: file,
    sizeBytes: GiB,
    group: "libvirt-qemu",
    mode: 0o660,
    deleteOnDestroy: true,
    allowShrink: false,
    users: { uri: "", domains: [], shutdownTimeoutMs: 0 },
    ...over,
  };
}

/** The plan's network with static entries for its first `count` nodes (default all). */
export function networkInputs(
  plan: ClusterPlan,
  uri: string,
  owner: string,
  count = plan.nodes.length,
): NetworkInputs {
  return {
    uri,
    name: plan.network.name,
    bridge: plan.network.bridge,
    ip: plan.network.tormsIp,
    netmask: plan.network.netmask,
    hostNames: ["torms"],
    hosts: plan.nodes.slice(0, count).map(({ mac, name, ip }) => ({ mac, name, ip })),
    autostart: true,
    owner,
  };
}

export interface NodeDomainArgs {
  uri: string;
  plan: ClusterPlan;
  kernel: string;
  initrd: string;
  /** Base command line; the node's identity is appended as FameNode does. */
  cmdline: string;
  /** Directory of the console logs. */
  dir: string;
  fam: { path: string; sizeBytes: number };
  owner: string;
  disks?: DiskSpec[];
  memoryKiB?: number;
  vcpus?: number;
  running?: boolean;
  shutdownTimeoutMs?: number;
}

export function domainInputs(node: NodePlan, a: NodeDomainArgs): DomainInputs {
  return {
    uri: a.uri,
    name: node.name,
    type: "qemu",
    memoryKiB: a.memoryKiB ?? 262144,
    vcpus: a.vcpus ?? 1,
    kernel: a.kernel,
    initrd: a.initrd,
    cmdline: nodeCmdline(a.cmdline, node),
    disks: a.disks ?? [],
    network: a.plan.network.name,
    mac: node.mac,
    consoleLog: path.join(a.dir, `${node.name}.console.log`),
    fam: a.fam,
    famezSocket: "",
    owner: a.owner,
    running: a.running ?? true,
    shutdownTimeoutMs: a.shutdownTimeoutMs ?? 1000,
  };
}
