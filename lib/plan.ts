/**
 * The cluster plan: node index -> name, MAC, IP; network name, bridge and the
 * torms address. Pure and deterministic, so check, diff and preview agree.
 */

export const TORMS_HOST_OCTET = 254;
export const TORMS_NAME = "torms";
/** PCI slots fame pins on bus pci.0; libvirt's own devices get explicit lower slots. */
export const PCI_SLOTS = { nic: 0x03, disk: 0x04, ivshmem: 0x10, doorbell: 0x11 } as const;

/**
 * Serial number of node N's CXL type-3 device: nonzero and stable, so the
 * namespace label a node wrote into its own LSA is accepted again after a
 * reboot (with serial 0 the region refuses: "invalid interleave-set-cookie").
 */
export function cxlSerial(index: number): number {
  assertIndex(index);
  return 0xfa3e0000 + index;
}

export interface NodePlan {
  /** 1-based node number; the LFS daemon derives it from the MAC. */
  index: number;
  name: string;
  mac: string;
  ip: string;
}

export interface NetworkPlan {
  name: string;
  bridge: string;
  /** Host ("torms") address on the bridge. */
  tormsIp: string;
  netmask: string;
  subnet: string;
}

export interface ClusterPlan {
  network: NetworkPlan;
  nodes: NodePlan[];
}

const two = (n: number) => String(n).padStart(2, "0");

/**
 * MAC of node N. For N <= 99 it is the original contract 48:50:42:NN:NN:NN with
 * the decimal number written as is (node 10 -> 48:50:42:10:10:10). Three digits
 * cannot be written that way, so nodes 100..253 use the number in BCD,
 * 48:50:42:00:0H:TU (node 123 -> 48:50:42:00:01:23), which never equals a
 * two-digit MAC since those repeat one non-zero byte three times.
 */
export function nodeMac(index: number): string {
  assertIndex(index);
  if (index <= 99) return `48:50:42:${two(index)}:${two(index)}:${two(index)}`;
  const digits = String(index).padStart(6, "0");
  return `48:50:42:${digits.slice(0, 2)}:${digits.slice(2, 4)}:${digits.slice(4, 6)}`;
}

/** Inverse of nodeMac; undefined for a MAC outside the pattern. */
export function nodeIndexFromMac(mac: string): number | undefined {
  const m = /^48:50:42:(\d\d):(\d\d):(\d\d)$/.exec(mac.toLowerCase());
  if (!m) return undefined;
  const [a, b, c] = [m[1], m[2], m[3]] as [string, string, string];
  const n = a === b && b === c && a !== "00" ? Number(a) : a === "00" ? Number(b + c) : Number.NaN;
  return Number.isInteger(n) && n >= 1 && n <= 253 && nodeMac(n) === mac.toLowerCase()
    ? n
    : undefined;
}

export function nodeName(hostbase: string, index: number): string {
  assertIndex(index);
  return `${hostbase}${two(index)}`;
}

/**
 * The node's name among the stack's resources: `node<NN>` whatever
 * fame:hostbase says, so a rename keeps each node's resources, and with them
 * its disk. For the default hostbase it is the node's name, as before.
 */
export function nodeSlot(index: number): string {
  return nodeName("node", index);
}

export function networkPlan(hostbase: string, octets123: string): NetworkPlan {
  return {
    name: `br_${hostbase}`,
    bridge: `br_${hostbase}`,
    tormsIp: `${octets123}.${TORMS_HOST_OCTET}`,
    netmask: "255.255.255.0",
    subnet: `${octets123}.0/24`,
  };
}

export function clusterPlan(args: {
  nodes: number;
  hostbase: string;
  octets123: string;
}): ClusterPlan {
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= args.nodes; i++) {
    nodes.push({
      index: i,
      name: nodeName(args.hostbase, i),
      mac: nodeMac(i),
      ip: `${args.octets123}.${i}`,
    });
  }
  return { network: networkPlan(args.hostbase, args.octets123), nodes };
}

function assertIndex(index: number): void {
  if (!Number.isInteger(index) || index < 1 || index > 253) {
    throw new RangeError(`node index ${index} is outside 1..253`);
  }
}
