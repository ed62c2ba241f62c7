import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { clusterPlan, cxlSerial } from "../../lib/plan";
import {
  CXL_LSA_BYTES,
  cxlProblem,
  cxlQemuArgs,
  cxlWindowBytes,
  type DomainSpec,
  dhcpHostXml,
  dnsHostXml,
  domainXml,
  famFromQemuArgs,
  famQemuArgs,
  type NetworkHost,
  type NetworkSpec,
  networkXml,
  parseDomainXml,
  parseNetworkXml,
  splitQemuOpts,
} from "../../lib/xml";

/** Validates with libvirt's own RelaxNG schemas (libvirt-clients' virt-xml-validate). */
function virtXmlValidate(xml: string, kind: "domain" | "network"): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-xml-"));
  try {
    const file = path.join(dir, `${kind}.xml`);
    fs.writeFileSync(file, xml);
    execFileSync("virt-xml-validate", [file, kind], { stdio: "pipe" });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    assert.fail(
      `virt-xml-validate rejected the ${kind}: ${err.stderr?.toString() ?? err.message}\n${xml}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const plan = clusterPlan({ nodes: 3, hostbase: "tm", octets123: "10.9.8" });
const netSpec: NetworkSpec = {
  name: plan.network.name,
  bridge: plan.network.bridge,
  ip: plan.network.tormsIp,
  netmask: plan.network.netmask,
  hostNames: ["torms"],
  hosts: plan.nodes.map(({ mac, name, ip }) => ({ mac, name, ip })),
  owner: "fame/dev",
};

const domSpec: DomainSpec = {
  name: "tm01",
  type: "qemu",
  memoryKiB: 786432,
  vcpus: 2,
  kernel: "/var/lib/fame/vmlinuz",
  initrd: "/var/lib/fame/initrd.img",
  cmdline: "console=ttyS0 systemd.hostname=tm01 fame.node=1",
  disks: [{ path: "/var/lib/fame/tm01.qcow2", format: "qcow2" }],
  network: "br_tm",
  mac: "48:50:42:01:01:01",
  consoleLog: "/var/lib/fame/tm01.console.log",
  fam: { path: "/srv/odd,dir & <x>/FAM", sizeBytes: 16 * 2 ** 30 },
  famezSocket: "",
  owner: "fame/dev",
};

describe("network XML", () => {
  const xml = networkXml(netSpec);

  it("is valid for libvirt", () => virtXmlValidate(xml, "network"));

  it("reads a lease without its DNS name, and a DNS name without its lease, as hosts that differ", () => {
    // What a run interrupted between a host's two net-update calls leaves.
    const [h1, h2, h3] = netSpec.hosts as [NetworkHost, NetworkHost, NetworkHost];
    const half = xml
      .replace(/<host ip="10\.9\.8\.2">\s*<hostname>tm02<\/hostname>\s*<\/host>/, "")
      .replace(/<host mac="48:50:42:03:03:03"[^>]*\/>/, "");
    const parsed = parseNetworkXml(half).hosts;
    assert.deepEqual(parsed, [
      h1,
      { ...h2, dns: [] },
      { mac: "", name: "tm03", ip: h3.ip, dns: ["tm03"] },
    ]);
  });

  it("is a NAT network with STP off, torms at .254 and a static lease + DNS name per node", () => {
    assert.match(xml, /<forward mode="nat">/);
    assert.match(xml, /<port start="1024" end="65535"\/>/);
    assert.match(xml, /<bridge name="br_tm" stp="off" delay="0"\/>/);
    assert.match(xml, /<ip address="10.9.8.254" netmask="255.255.255.0">/);
    assert.match(xml, /<host ip="10.9.8.254">\s*<hostname>torms<\/hostname>/);
    assert.match(xml, /<host mac="48:50:42:02:02:02" name="tm02" ip="10.9.8.2"\/>/);
    assert.match(xml, /<host ip="10.9.8.3">\s*<hostname>tm03<\/hostname>/);
    assert.match(xml, /<txt name="fame-owner" value="fame\/dev"\/>/);
  });

  it("parses back into the same spec", () => {
    assert.deepEqual(parseNetworkXml(xml), netSpec);
  });

  it("parses libvirt's prefix= form and a network with no hosts", () => {
    const spec = parseNetworkXml(
      "<network><name>n</name><bridge name='b'/><ip address='10.0.0.254' prefix='24'/></network>",
    );
    assert.equal(spec.netmask, "255.255.255.0");
    assert.deepEqual(spec.hosts, []);
  });

  it("builds the single-host snippets net-update takes", () => {
    assert.equal(
      dhcpHostXml(netSpec.hosts[0]!).trim(),
      '<host mac="48:50:42:01:01:01" name="tm01" ip="10.9.8.1"/>',
    );
    assert.match(
      dnsHostXml("10.9.8.1", ["tm01"]),
      /^<host ip="10.9.8.1">\s*<hostname>tm01<\/hostname>\s*<\/host>/,
    );
  });
});

describe("domain XML", () => {
  const xml = domainXml(domSpec);

  it("is valid for libvirt", () => virtXmlValidate(xml, "domain"));

  it("passes FAM as a shared memory-backend-file and ivshmem-plain at a fixed PCI slot", () => {
    assert.deepEqual(famQemuArgs(domSpec.fam, ""), [
      "-object",
      "memory-backend-file,mem-path=/srv/odd,,dir & <x>/FAM,size=17179869184,id=FAM,share=on",
      "-device",
      "ivshmem-plain,memdev=FAM,bus=pci.0,addr=0x10",
    ]);
    assert.match(
      xml,
      /<qemu:arg value="memory-backend-file,mem-path=\/srv\/odd,,dir &amp; &lt;x&gt;\/FAM/,
    );
  });

  it("asks QEMU to populate the FAM (prealloc=on) only with fame:famPrealloc, and reads it back", () => {
    const fam = { ...domSpec.fam, prealloc: true };
    assert.equal(
      famQemuArgs(fam, "")[1],
      "memory-backend-file,mem-path=/srv/odd,,dir & <x>/FAM,size=17179869184,prealloc=on,id=FAM,share=on",
    );
    assert.deepEqual(parseDomainXml(domainXml({ ...domSpec, fam })).fam, fam);
    // Off: no key at all, so a domain defined before the option reads back as it was.
    assert.equal("prealloc" in parseDomainXml(xml).fam, false);
    assert.doesNotMatch(xml, /prealloc/);
  });

  it("adds the FAME-Z doorbell only when a socket is configured", () => {
    const args = famQemuArgs(domSpec.fam, "/run/famez.sock");
    assert.deepEqual(args.slice(4), [
      "-chardev",
      "socket,id=FAMEZ,path=/run/famez.sock",
      "-device",
      "ivshmem-doorbell,chardev=FAMEZ,vectors=16,bus=pci.0,addr=0x11",
    ]);
    virtXmlValidate(domainXml({ ...domSpec, famezSocket: "/run/famez.sock" }), "domain");
  });

  it("gives a disk its file's identity as virtio serial and reads it back", () => {
    const spec = {
      ...domSpec,
      disks: [{ path: "/d/n.qcow2", format: "qcow2" as const, serial: "0123456789abcdef0123" }],
    };
    const withSerial = domainXml(spec);
    assert.match(withSerial, /<serial>0123456789abcdef0123<\/serial>/);
    virtXmlValidate(withSerial, "domain");
    assert.deepEqual(parseDomainXml(withSerial).disks, spec.disks);
    assert.deepEqual(parseDomainXml(xml).disks, domSpec.disks);
  });

  it("pins libvirt's PCI devices below the IVSHMEM slot", () => {
    const slots = [...xml.matchAll(/slot="(0x[0-9a-f]+)"/g)].map((m) => Number(m[1]));
    assert.deepEqual(slots.sort(), [0x03, 0x04]);
    assert.match(xml, /<memballoon model="none"\/>/);
    assert.match(xml, /<controller type="usb" model="none"\/>/);
  });

  it("uses TCG with QEMU's CPU model, KVM with host-passthrough", () => {
    assert.match(xml, /<domain type="qemu"/);
    assert.doesNotMatch(xml, /<cpu/);
    const kvm = domainXml({ ...domSpec, type: "kvm" });
    assert.match(kvm, /<domain type="kvm"/);
    assert.match(kvm, /<cpu mode="host-passthrough"\/>/);
    virtXmlValidate(kvm, "domain");
  });

  it("boots the kernel directly, with ACPI for graceful shutdown and a logged serial console", () => {
    assert.match(xml, /<kernel>\/var\/lib\/fame\/vmlinuz<\/kernel>/);
    assert.match(xml, /<cmdline>console=ttyS0 systemd.hostname=tm01 fame.node=1<\/cmdline>/);
    assert.match(xml, /<acpi\/>/);
    assert.match(xml, /<log file="\/var\/lib\/fame\/tm01.console.log" append="on"\/>/);
    assert.match(xml, /<mac address="48:50:42:01:01:01"\/>/);
    assert.match(xml, /<source network="br_tm"\/>/);
  });

  it("parses back into the same spec", () => {
    assert.deepEqual(parseDomainXml(xml), domSpec);
    const withBell = { ...domSpec, famezSocket: "/run/fame,z.sock", disks: [] };
    assert.deepEqual(parseDomainXml(domainXml(withBell)), withBell);
  });

  it("reads memory in other units as libvirt may write them", () => {
    const spec = parseDomainXml(
      "<domain type='kvm'><name>x</name><memory unit='MiB'>768</memory><vcpu>1</vcpu></domain>",
    );
    assert.equal(spec.memoryKiB, 786432);
    assert.equal(spec.type, "kvm");
  });

  it("splits QEMU options honouring the ',,' escape", () => {
    assert.deepEqual(
      [...splitQemuOpts("a=1,b=x,,y,,,c=3")],
      [
        ["a", "1"],
        ["b", "x,y,"],
        ["c", "3"],
      ],
    );
    assert.deepEqual(famFromQemuArgs([]).famezSocket, "");
  });
});

describe("domain XML: FAM as a CXL type-3 device", () => {
  const GiB = 2 ** 30;
  const cxl = {
    lsaPath: "/var/lib/fame/tm01.lsa",
    lsaSizeBytes: CXL_LSA_BYTES,
    serial: cxlSerial(1),
  };
  const spec: DomainSpec = {
    ...domSpec,
    disks: [
      { path: "/var/lib/fame/tm01.qcow2", format: "qcow2" },
      { path: "/var/lib/fame/tm01.seed.img", format: "raw" },
    ],
    cxl,
  };
  const xml = domainXml(spec);
  const args = cxlQemuArgs(spec.fam, cxl, "");
  const devices = args.filter((_, i) => args[i - 1] === "-device");

  it("is valid for libvirt", () => virtXmlValidate(xml, "domain"));

  it("uses a q35 machine with CXL on, and leaves IVSHMEM out", () => {
    assert.match(xml, /<type arch="x86_64" machine="q35">hvm<\/type>/);
    assert.deepEqual(args.slice(0, 2), ["-machine", "cxl=on"]);
    assert.doesNotMatch(xml, /ivshmem/);
    assert.doesNotMatch(xml, /pci\.0/);
  });

  it("maps the shared FAM file as the device's memory and the node's own LSA file as its labels", () => {
    assert.ok(
      args.includes(
        "memory-backend-file,id=cxl-mem0,share=on,mem-path=/srv/odd,,dir & <x>/FAM,size=17179869184",
      ),
    );
    assert.ok(
      args.includes(
        `memory-backend-file,id=cxl-lsa0,share=on,mem-path=/var/lib/fame/tm01.lsa,size=${CXL_LSA_BYTES}`,
      ),
    );
    assert.ok(
      devices.includes(
        `cxl-type3,bus=root_port13,memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-pmem0,sn=${cxlSerial(1)}`,
      ),
    );
  });

  it("gives the CXL host bridge two root ports (one makes the kernel drop every access)", () => {
    const ports = devices.filter((d) => d.startsWith("cxl-rp,"));
    assert.deepEqual(ports, [
      "cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2",
      "cxl-rp,port=1,bus=cxl.1,id=root_port14,chassis=0,slot=3",
    ]);
    assert.ok(devices.includes("pxb-cxl,bus_nr=12,bus=pcie.0,addr=0x10,id=cxl.1"));
    // the device hangs off the first port; the second stays empty
    assert.equal(devices.filter((d) => d.includes("bus=root_port14")).length, 0);
  });

  it("gives every node a stable, nonzero, distinct serial", () => {
    const serials = [1, 2, 99, 253].map(cxlSerial);
    assert.ok(serials.every((sn) => Number.isSafeInteger(sn) && sn > 0));
    assert.equal(new Set(serials).size, serials.length);
    assert.equal(cxlSerial(7), cxlSerial(7));
    assert.throws(() => cxlSerial(0), RangeError);
    assert.match(
      cxlProblem(spec.fam, { ...cxl, serial: 0 }),
      /serial 0 must be a positive integer/,
    );
    assert.equal(cxlProblem(spec.fam, cxl), "");
  });

  it("rounds the fixed memory window up to a power of two of at least 256 MiB", () => {
    assert.equal(cxlWindowBytes(1), 256 * 2 ** 20);
    assert.equal(cxlWindowBytes(256 * 2 ** 20), 256 * 2 ** 20);
    assert.equal(cxlWindowBytes(256 * 2 ** 20 + 1), 512 * 2 ** 20);
    assert.equal(cxlWindowBytes(GiB), GiB);
    assert.equal(cxlWindowBytes(3 * GiB), 4 * GiB);
    assert.equal(cxlWindowBytes(16 * GiB), 16 * GiB);
    assert.equal(cxlWindowBytes(1024 * GiB), 1024 * GiB);
    assert.throws(() => cxlWindowBytes(0), RangeError);
    assert.deepEqual(args.slice(-2), [
      "-M",
      "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=17179869184",
    ]);
    assert.deepEqual(cxlQemuArgs({ path: "/F", sizeBytes: 3 * GiB }, cxl, "").slice(-1), [
      `cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=${4 * GiB}`,
    ]);
    assert.match(cxlProblem({ path: "/F", sizeBytes: 100 * 2 ** 20 }, cxl), /multiple of 256 MiB/);
  });

  it("preallocates the CXL device's memory (not its label area) with fame:famPrealloc", () => {
    const fam = { ...spec.fam, prealloc: true };
    const backends = cxlQemuArgs(fam, cxl, "").filter((a) => a.startsWith("memory-backend-file,"));
    assert.deepEqual(
      backends.map((b) => b.includes(",prealloc=on")),
      [true, false],
    );
    assert.deepEqual(parseDomainXml(domainXml({ ...spec, fam })).fam, fam);
  });

  it("pins disks and the NIC to pcie.0 (bus 0), never behind the CXL bridge", () => {
    const addrs = [
      ...xml.matchAll(
        /<address type="pci" domain="0x0000" bus="(0x[0-9a-f]+)" slot="(0x[0-9a-f]+)"/g,
      ),
    ];
    assert.deepEqual(
      addrs.map((m) => [m[1], Number(m[2])]),
      [
        ["0x00", 0x04],
        ["0x00", 0x05],
        ["0x00", 0x03],
      ],
    );
  });

  it("adds the FAME-Z doorbell on pcie.0 when configured", () => {
    const withBell = cxlQemuArgs(spec.fam, cxl, "/run/famez.sock");
    assert.deepEqual(withBell.slice(-4), [
      "-chardev",
      "socket,id=FAMEZ,path=/run/famez.sock",
      "-device",
      "ivshmem-doorbell,chardev=FAMEZ,vectors=16,bus=pcie.0,addr=0x11",
    ]);
    virtXmlValidate(domainXml({ ...spec, famezSocket: "/run/famez.sock" }), "domain");
  });

  it("parses back into the same spec, and an IVSHMEM domain has no CXL part", () => {
    assert.deepEqual(parseDomainXml(xml), spec);
    const withBell = { ...spec, famezSocket: "/run/fame,z.sock", type: "kvm" as const };
    assert.deepEqual(parseDomainXml(domainXml(withBell)), withBell);
    assert.equal("cxl" in parseDomainXml(domainXml(domSpec)), false);
  });

  it("leaves the IVSHMEM domain exactly as it was (i440fx, slot 0x10)", () => {
    const ivshmem = domainXml(domSpec);
    assert.match(ivshmem, /machine="pc"/);
    assert.doesNotMatch(ivshmem, /cxl|q35|pcie/);
    assert.equal(domainXml({ ...domSpec, cxl: undefined }), ivshmem);
  });
});
