/**
 * libvirt XML for fame's network and domains: built from plain specs and
 * parsed back into the same specs (so `read` reports what libvirt really has).
 * All XML goes through fast-xml-parser; nothing is concatenated by hand.
 */
import { XMLBuilder, XMLParser } from "fast-xml-parser";
import { PCI_SLOTS } from "./plan";

export const QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0";
export const FAME_NS = "https://fame.dev/xmlns/libvirt/1";

// Paths (dot-joined) whose elements are always lists, whatever their count.
const ARRAY_PATHS = [
  "network.dns.host",
  "network.dns.host.hostname",
  "network.dns.txt",
  "network.ip",
  "network.ip.dhcp.host",
  "domain.devices.disk",
  "domain.devices.interface",
  "domain.devices.serial",
  "domain.qemu:commandline.qemu:arg",
];

// Parser and builder are made per call: providers are serialized by value,
// and a library instance captured at module level would not serialize.
function parser(): XMLParser {
  return new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@_",
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    isArray: (_name: string, jpath: unknown) => ARRAY_PATHS.includes(String(jpath)),
  });
}

function builder(): XMLBuilder {
  return new XMLBuilder({
    ignoreAttributes: false,
    attributeNamePrefix: "@_",
    format: true,
    suppressEmptyNode: true,
  });
}

type XmlNode = Record<string, unknown>;

export function parseXml(xml: string): XmlNode {
  return parser().parse(xml) as XmlNode;
}

// ---------------------------------------------------------------- network

export interface NetworkHost {
  mac: string;
  name: string;
  ip: string;
  /**
   * Only in what libvirt reports, when a host's DNS entry is not exactly
   * `[name]`: the names libvirt holds for its IP (`[]`: no DNS entry). A DNS
   * entry without a DHCP lease shows as a host with an empty MAC. Either way
   * the host differs from any input, so a diff sees it and update repairs it.
   */
  dns?: string[];
}

export interface NetworkSpec {
  name: string;
  bridge: string;
  /** Host (torms) address on the bridge. */
  ip: string;
  netmask: string;
  /** DNS-only names for the host itself, e.g. ["torms"]. */
  hostNames: string[];
  /** One static DHCP lease and DNS name per node. */
  hosts: NetworkHost[];
  /**
   * The fame stack that owns the network (`<project>/<stack>`), kept in a DNS
   * TXT record "fame-owner" since libvirt 9.0 networks have no metadata.
   */
  owner: string;
}

export const OWNER_TXT = "fame-owner";

export function dhcpHostXml(h: NetworkHost): string {
  return build({ host: { "@_mac": h.mac, "@_name": h.name, "@_ip": h.ip } });
}

export function dnsHostXml(ip: string, names: string[]): string {
  return build({ host: { "@_ip": ip, hostname: names } });
}

export function networkXml(spec: NetworkSpec): string {
  const dnsHosts = [
    ...(spec.hostNames.length > 0 ? [{ "@_ip": spec.ip, hostname: spec.hostNames }] : []),
    ...spec.hosts.map((h) => ({ "@_ip": h.ip, hostname: [h.name] })),
  ];
  return build({
    network: {
      name: spec.name,
      forward: { "@_mode": "nat", nat: { port: { "@_start": "1024", "@_end": "65535" } } },
      bridge: { "@_name": spec.bridge, "@_stp": "off", "@_delay": "0" },
      ...(dnsHosts.length > 0 || spec.owner
        ? {
            dns: {
              ...(spec.owner ? { txt: { "@_name": OWNER_TXT, "@_value": spec.owner } } : {}),
              ...(dnsHosts.length > 0 ? { host: dnsHosts } : {}),
            },
          }
        : {}),
      ip: {
        "@_address": spec.ip,
        "@_netmask": spec.netmask,
        dhcp: {
          host: spec.hosts.map((h) => ({ "@_mac": h.mac, "@_name": h.name, "@_ip": h.ip })),
        },
      },
    },
  });
}

/** Parses `virsh net-dumpxml` output back into a NetworkSpec. */
export function parseNetworkXml(xml: string): NetworkSpec {
  const net = (parseXml(xml).network ?? {}) as XmlNode;
  const bridge = (net.bridge ?? {}) as XmlNode;
  const ip = ((net.ip as XmlNode[] | undefined) ?? [])[0] ?? {};
  const dhcpHosts = ((ip.dhcp as XmlNode | undefined)?.host as XmlNode[] | undefined) ?? [];
  const dnsHosts = ((net.dns as XmlNode | undefined)?.host as XmlNode[] | undefined) ?? [];
  const txts = ((net.dns as XmlNode | undefined)?.txt as XmlNode[] | undefined) ?? [];
  const address = str(ip["@_address"]);
  const own = dnsHosts.find((h) => str(h["@_ip"]) === address);
  // Node DNS entries by IP; each DHCP lease takes its own, the rest are orphans.
  const dnsByIp = new Map(
    dnsHosts
      .filter((h) => str(h["@_ip"]) !== address)
      .map((h) => [str(h["@_ip"]), ((h.hostname as unknown[] | undefined) ?? []).map(str)]),
  );
  const leases: NetworkHost[] = dhcpHosts.map((h) => {
    const host = { mac: str(h["@_mac"]).toLowerCase(), name: str(h["@_name"]), ip: str(h["@_ip"]) };
    const names = dnsByIp.get(host.ip);
    dnsByIp.delete(host.ip);
    return names?.length === 1 && names[0] === host.name ? host : { ...host, dns: names ?? [] };
  });
  const orphans = [...dnsByIp].map(([ip, names]) => ({
    mac: "",
    name: names[0] ?? "",
    ip,
    dns: names,
  }));
  return {
    name: str(net.name),
    bridge: str(bridge["@_name"]),
    ip: address,
    netmask: str(ip["@_netmask"]) || prefixToNetmask(str(ip["@_prefix"])),
    hostNames: ((own?.hostname as unknown[] | undefined) ?? []).map(str),
    hosts: [...leases, ...orphans],
    owner: str(txts.find((t) => str(t["@_name"]) === OWNER_TXT)?.["@_value"]),
  };
}

function prefixToNetmask(prefix: string): string {
  const bits = Number(prefix);
  if (!prefix || !Number.isInteger(bits)) return "";
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return [24, 16, 8, 0].map((s) => (mask >>> s) & 255).join(".");
}

// ---------------------------------------------------------------- domain

export interface DiskSpec {
  path: string;
  format: "qcow2" | "raw";
  /**
   * The disk file's identity (virtio serial, at most 20 characters). A file
   * made anew under the same path has a new one, so the domain is redefined
   * and restarted onto it instead of running on the deleted file.
   */
  serial?: string;
}

export interface FamAttachment {
  path: string;
  sizeBytes: number;
  /**
   * QEMU populates every page at start (prealloc=on, MADV_POPULATE_WRITE:
   * contents kept). Present only when true, so a domain made before the
   * option existed reads back unchanged.
   */
  prealloc?: boolean;
}

/** The memory-backend-file options after size= that fame:famPrealloc adds. */
function preallocOpt(fam: FamAttachment): string {
  return fam.prealloc ? ",prealloc=on" : "";
}

/**
 * FAM presented as a CXL type-3 persistent-memory device. The FAM file is the
 * device's memory; the label storage area (LSA) is the node's own file.
 */
export interface CxlAttachment {
  /** This node's label storage area file (never shared between nodes). */
  lsaPath: string;
  lsaSizeBytes: number;
  /** Device serial number: nonzero and stable per node (lib/plan cxlSerial). */
  serial: number;
}

/** Label storage area per node: room for ~500 namespace labels, read whole by the kernel at probe. */
export const CXL_LSA_BYTES = 128 * 1024;
/** CXL decodes memory in 256 MiB granules: device capacity and windows are multiples of it. */
export const CXL_GRANULE_BYTES = 256 * 1024 * 1024;
/** PCI slots on pcie.0 (q35) for the CXL host bridge and the FAME-Z doorbell. */
export const Q35_SLOTS = { pxbCxl: 0x10, doorbell: 0x11 } as const;

export interface DomainSpec {
  name: string;
  /** "kvm" (hardware) or "qemu" (TCG). */
  type: "kvm" | "qemu";
  memoryKiB: number;
  vcpus: number;
  kernel: string;
  initrd: string;
  cmdline: string;
  disks: DiskSpec[];
  network: string;
  mac: string;
  consoleLog: string;
  fam: FamAttachment;
  /**
   * Present: FAM is a CXL type-3 device on a q35 machine (and the domain's
   * disks and NIC sit on pcie.0). Absent: FAM is IVSHMEM on i440fx, as always.
   */
  cxl?: CxlAttachment;
  /** Optional FAME-Z server socket for an ivshmem-doorbell device ("" = none). */
  famezSocket: string;
  /** Identifies the domain as fame's (written to <metadata>). */
  owner: string;
}

/** QEMU options parse ',' as a separator; a literal comma is written ',,'. */
export function qemuOptValue(value: string): string {
  return value.replaceAll(",", ",,");
}

const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;

function pciAddress(slot: number): XmlNode {
  return {
    "@_type": "pci",
    "@_domain": "0x0000",
    "@_bus": "0x00",
    "@_slot": hex(slot),
    "@_function": "0x0",
  };
}

/** The QEMU arguments that attach FAM (and the FAME-Z doorbell) to a node. */
export function famQemuArgs(fam: FamAttachment, famezSocket: string): string[] {
  const args = [
    "-object",
    `memory-backend-file,mem-path=${qemuOptValue(fam.path)},size=${fam.sizeBytes}${preallocOpt(fam)},id=FAM,share=on`,
    "-device",
    `ivshmem-plain,memdev=FAM,bus=pci.0,addr=${hex(PCI_SLOTS.ivshmem)}`,
  ];
  if (famezSocket) {
    args.push(
      "-chardev",
      `socket,id=FAMEZ,path=${qemuOptValue(famezSocket)}`,
      "-device",
      `ivshmem-doorbell,chardev=FAMEZ,vectors=16,bus=pci.0,addr=${hex(PCI_SLOTS.doorbell)}`,
    );
  }
  return args;
}

/**
 * The size of the CXL fixed memory window that maps the device: a power of
 * two, at least the FAM size and at least one 256 MiB granule.
 */
export function cxlWindowBytes(famBytes: number): number {
  if (!Number.isSafeInteger(famBytes) || famBytes <= 0) {
    throw new RangeError(`FAM size ${famBytes} must be a positive integer`);
  }
  let window = CXL_GRANULE_BYTES;
  while (window < famBytes) window *= 2;
  return window;
}

/**
 * Why a FAM/CXL pair cannot be attached ("" when it can): CXL device capacity
 * comes in 256 MiB granules, and the serial must be a nonzero integer.
 */
export function cxlProblem(fam: FamAttachment, cxl: CxlAttachment): string {
  if (!Number.isSafeInteger(fam.sizeBytes) || fam.sizeBytes % CXL_GRANULE_BYTES !== 0) {
    return `FAM size ${fam.sizeBytes} is not a multiple of 256 MiB, which a CXL memory device needs`;
  }
  if (!Number.isSafeInteger(cxl.serial) || cxl.serial <= 0) {
    return `CXL serial ${cxl.serial} must be a positive integer (a zero serial breaks the region after a reboot)`;
  }
  if (!cxl.lsaPath?.startsWith("/")) return "the CXL label storage area needs an absolute path";
  if (!Number.isSafeInteger(cxl.lsaSizeBytes) || cxl.lsaSizeBytes <= 0 || cxl.lsaSizeBytes % 4096) {
    return `CXL label storage area size ${cxl.lsaSizeBytes} must be a positive multiple of 4096`;
  }
  return "";
}

/**
 * The QEMU arguments that present FAM as a CXL type-3 persistent-memory
 * device (and the FAME-Z doorbell) on a q35 machine. Facts that shape them
 * (QEMU 7.2, Linux 6.1): the host bridge needs **two** root ports, or the
 * kernel treats it as pass-through, never programs its decoder and every
 * access is silently dropped; the device needs a nonzero serial, or a label
 * already in the LSA stops the region after a reboot; disks cannot sit behind
 * pxb-cxl (libvirt's devices are pinned to pcie.0 by domainXml).
 */
export function cxlQemuArgs(fam: FamAttachment, cxl: CxlAttachment, famezSocket: string): string[] {
  const args = [
    "-machine",
    "cxl=on",
    "-object",
    `memory-backend-file,id=cxl-mem0,share=on,mem-path=${qemuOptValue(fam.path)},size=${fam.sizeBytes}${preallocOpt(fam)}`,
    "-object",
    `memory-backend-file,id=cxl-lsa0,share=on,mem-path=${qemuOptValue(cxl.lsaPath)},size=${cxl.lsaSizeBytes}`,
    "-device",
    `pxb-cxl,bus_nr=12,bus=pcie.0,addr=${hex(Q35_SLOTS.pxbCxl)},id=cxl.1`,
    "-device",
    "cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2",
    "-device",
    "cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3",
    "-device",
    `cxl-type3,bus=root_port13,memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-pmem0,sn=${cxl.serial}`,
    "-M",
    `cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=${cxlWindowBytes(fam.sizeBytes)}`,
  ];
  if (famezSocket) {
    args.push(
      "-chardev",
      `socket,id=FAMEZ,path=${qemuOptValue(famezSocket)}`,
      "-device",
      `ivshmem-doorbell,chardev=FAMEZ,vectors=16,bus=pcie.0,addr=${hex(Q35_SLOTS.doorbell)}`,
    );
  }
  return args;
}

/** Builds the domain XML; `uuid` keeps an existing domain's identity when redefining it. */
export function domainXml(spec: DomainSpec, uuid?: string): string {
  const disks = spec.disks.map((d, i) => ({
    "@_type": "file",
    "@_device": "disk",
    driver: { "@_name": "qemu", "@_type": d.format },
    source: { "@_file": d.path },
    target: { "@_dev": `vd${String.fromCharCode(97 + i)}`, "@_bus": "virtio" },
    ...(d.serial ? { serial: d.serial } : {}),
    address: pciAddress(PCI_SLOTS.disk + i),
  }));
  return build({
    domain: {
      "@_type": spec.type,
      "@_xmlns:qemu": QEMU_NS,
      name: spec.name,
      ...(uuid ? { uuid } : {}),
      metadata: { "fame:node": { "@_xmlns:fame": FAME_NS, "@_owner": spec.owner } },
      memory: { "@_unit": "KiB", "#text": String(spec.memoryKiB) },
      vcpu: { "@_placement": "static", "#text": String(spec.vcpus) },
      os: {
        // CXL needs q35 (PCIe); libvirt's devices are pinned to bus 0 (pcie.0) there too.
        type: { "@_arch": "x86_64", "@_machine": spec.cxl ? "q35" : "pc", "#text": "hvm" },
        kernel: spec.kernel,
        initrd: spec.initrd,
        cmdline: spec.cmdline,
      },
      features: { acpi: "" },
      // TCG cannot offer the host's CPU model; QEMU's default model is what works.
      ...(spec.type === "kvm" ? { cpu: { "@_mode": "host-passthrough" } } : {}),
      on_poweroff: "destroy",
      on_reboot: "restart",
      on_crash: "destroy",
      devices: {
        disk: disks,
        controller: { "@_type": "usb", "@_model": "none" },
        interface: {
          "@_type": "network",
          mac: { "@_address": spec.mac },
          source: { "@_network": spec.network },
          model: { "@_type": "virtio" },
          address: pciAddress(PCI_SLOTS.nic),
        },
        serial: {
          "@_type": "pty",
          log: { "@_file": spec.consoleLog, "@_append": "on" },
          target: { "@_port": "0" },
        },
        console: { "@_type": "pty", target: { "@_type": "serial", "@_port": "0" } },
        memballoon: { "@_model": "none" },
      },
      "qemu:commandline": {
        "qemu:arg": (spec.cxl
          ? cxlQemuArgs(spec.fam, spec.cxl, spec.famezSocket)
          : famQemuArgs(spec.fam, spec.famezSocket)
        ).map((value) => ({ "@_value": value })),
      },
    },
  });
}

/** Parses `virsh dumpxml` output back into a DomainSpec. */
export function parseDomainXml(xml: string): DomainSpec {
  const dom = (parseXml(xml).domain ?? {}) as XmlNode;
  const os = (dom.os ?? {}) as XmlNode;
  const devices = (dom.devices ?? {}) as XmlNode;
  const iface = ((devices.interface as XmlNode[] | undefined) ?? [])[0] ?? {};
  const serial = ((devices.serial as XmlNode[] | undefined) ?? [])[0] ?? {};
  const args = (
    ((dom["qemu:commandline"] as XmlNode | undefined)?.["qemu:arg"] as XmlNode[] | undefined) ?? []
  ).map((a) => str(a["@_value"]));
  const meta = ((dom.metadata as XmlNode | undefined) ?? {}) as XmlNode;
  const owner = Object.entries(meta).find(([k]) => k.endsWith(":node"))?.[1] as XmlNode | undefined;
  const memory = dom.memory as XmlNode | string | undefined;
  return {
    name: str(dom.name),
    type: str(dom["@_type"]) === "kvm" ? "kvm" : "qemu",
    memoryKiB: toKiB(memory),
    vcpus: Number(text(dom.vcpu)),
    kernel: str(os.kernel),
    initrd: str(os.initrd),
    cmdline: str(os.cmdline),
    disks: ((devices.disk as XmlNode[] | undefined) ?? [])
      .filter((d) => str(d["@_device"]) === "disk")
      .map((d) => {
        const serial = d.serial === undefined ? "" : text(d.serial);
        return {
          path: str((d.source as XmlNode | undefined)?.["@_file"]),
          format: str((d.driver as XmlNode | undefined)?.["@_type"]) === "raw" ? "raw" : "qcow2",
          ...(serial ? { serial } : {}),
        } satisfies DiskSpec;
      }),
    network: str((iface.source as XmlNode | undefined)?.["@_network"]),
    mac: str((iface.mac as XmlNode | undefined)?.["@_address"]).toLowerCase(),
    consoleLog: str((serial.log as XmlNode | undefined)?.["@_file"]),
    ...famFromQemuArgs(args),
    owner: str(owner?.["@_owner"]),
  };
}

/**
 * Recovers the FAM attachment, the CXL device (when FAM is presented as CXL)
 * and the doorbell socket from the qemu:commandline arguments.
 */
export function famFromQemuArgs(args: string[]): {
  fam: FamAttachment;
  cxl?: CxlAttachment;
  famezSocket: string;
} {
  const all = (prefix: string) =>
    args.filter((a) => a.startsWith(prefix)).map((a) => splitQemuOpts(a.slice(prefix.length)));
  const none = new Map<string, string>();
  const backends = all("memory-backend-file,");
  const backend = (id: string) => backends.find((o) => o.get("id") === id);
  const chardev = all("socket,")[0] ?? none;
  const type3 = all("cxl-type3,")[0];
  const mem = (type3 ? backend("cxl-mem0") : backend("FAM")) ?? backends[0] ?? none;
  const lsa = backend("cxl-lsa0") ?? none;
  return {
    fam: {
      path: mem.get("mem-path") ?? "",
      sizeBytes: Number(mem.get("size") ?? Number.NaN),
      ...(mem.get("prealloc") === "on" ? { prealloc: true } : {}),
    },
    ...(type3
      ? {
          cxl: {
            lsaPath: lsa.get("mem-path") ?? "",
            lsaSizeBytes: Number(lsa.get("size") ?? Number.NaN),
            serial: Number(type3.get("sn") ?? Number.NaN),
          },
        }
      : {}),
    famezSocket: chardev.get("id") === "FAMEZ" ? (chardev.get("path") ?? "") : "",
  };
}

/** Splits "a=1,b=x,,y" into {a: "1", b: "x,y"} (QEMU's ',,' escape). */
export function splitQemuOpts(value: string): Map<string, string> {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === "," && value[i + 1] === ",") {
      current += ",";
      i++;
    } else if (c === ",") {
      parts.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  parts.push(current);
  const out = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf("=");
    if (eq > 0) out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

function toKiB(memory: XmlNode | string | undefined): number {
  const value = Number(text(memory));
  const unit = typeof memory === "object" ? str(memory["@_unit"]) || "KiB" : "KiB";
  const scale: Record<string, number> = {
    b: 1 / 1024,
    bytes: 1 / 1024,
    KiB: 1,
    k: 1,
    MiB: 1024,
    M: 1024,
    GiB: 1024 ** 2,
    G: 1024 ** 2,
  };
  return value * (scale[unit] ?? 1);
}

function text(v: unknown): string {
  if (v !== null && typeof v === "object") return str((v as XmlNode)["#text"]);
  return str(v);
}

function str(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

function build(obj: XmlNode): string {
  return builder().build(obj) as string;
}
