/**
 * Reliability against real libvirt in the sandbox: interrupted runs converge,
 * out-of-band changes are seen by read and repaired, an unreachable libvirtd
 * is an error (never "gone"), and destroy removes every libvirt object and
 * node disk while the FAM file stays byte-identical.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { clusterPlan } from "../../lib/plan";
import { GiB } from "../../lib/units";
import { domainXml, networkXml } from "../../lib/xml";
import { Domain, type DomainInputs, type DomainOutputs } from "../../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import { Network, type NetworkInputs, type NetworkOutputs } from "../../providers/network";
import { NodeDisk, type NodeDiskInputs, type NodeDiskOutputs } from "../../providers/nodeDisk";
import { type LoadedProvider, loadSerialized } from "../helpers/engine";
import { domainInputs, famInputs, networkInputs } from "../helpers/fixtures";
import { guestKit } from "../helpers/guest";
import { sandboxDaemon, sandboxUri, scratchDir, virshOut } from "../helpers/sandbox";

describe("e2e: reliability (faults survived)", function () {
  this.timeout(20 * 60_000);
  const plan = clusterPlan({ nodes: 2, hostbase: "rel", octets123: "10.213.80" });
  let dir: string;
  let fam: LoadedProvider<FamFileInputs, FamFileOutputs>;
  let net: LoadedProvider<NetworkInputs, NetworkOutputs>;
  let dom: LoadedProvider<DomainInputs, DomainOutputs>;
  let disk: LoadedProvider<NodeDiskInputs, NodeDiskOutputs>;
  let famIn: FamFileInputs;
  let netIn: NetworkInputs;
  let doms: DomainInputs[];
  let disks: NodeDiskInputs[];
  let famHash: string;
  // The sentinel region (guests write their markers at node*4096, below it).
  const hashFam = () =>
    crypto
      .createHash("sha256")
      .update(fs.readFileSync(famIn.path).subarray(2 ** 20, 2 * 2 ** 20))
      .digest("hex");
  const state = (name: string) => virshOut("domstate", name).trim();

  before(async () => {
    const uri = sandboxUri();
    const kit = guestKit();
    dir = scratchDir("reliability");
    const base = path.join(dir, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, String(GiB)]);
    famIn = famInputs(path.join(dir, "FAM"), {
      deleteOnDestroy: false,
      users: { uri, domains: plan.nodes.map((n) => n.name), shutdownTimeoutMs: 1000 },
    });
    netIn = networkInputs(plan, uri, "fame/reliability");
    disks = plan.nodes.map((n) => ({
      path: path.join(dir, `${n.name}.qcow2`),
      backingFile: base,
      sizeBytes: GiB,
    }));
    doms = plan.nodes.map((node, i) =>
      domainInputs(node, {
        uri,
        plan,
        kernel: kit.kernel,
        initrd: kit.initrd,
        cmdline: "console=ttyS0 fame.nodes=9 FAME_TIMEOUT=100000",
        dir,
        fam: { path: famIn.path, sizeBytes: GiB },
        owner: "fame/reliability",
        memoryKiB: 196608,
        disks: [{ path: disks[i]!.path, format: "qcow2" }],
      }),
    );
    fam = (await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("fam", famIn)))
      .provider;
    net = (await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("net", netIn)))
      .provider;
    dom = (await loadSerialized<DomainInputs, DomainOutputs>(() => new Domain("dom", doms[0]!)))
      .provider;
    disk = (
      await loadSerialized<NodeDiskInputs, NodeDiskOutputs>(() => new NodeDisk("disk", disks[0]!))
    ).provider;
  });

  after(async () => {
    for (const d of doms) await dom.delete(d.name, d).catch(() => undefined);
    await net.delete(netIn.name, { ...netIn, active: true }).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("an interrupted first run converges: leftovers of every kind are adopted, nothing is duplicated", async () => {
    // What a run killed midway leaves: the FAM with data, a network defined but never started,
    // a disk, and a domain defined but never started. None of it is in Pulumi's state.
    await fam.create(famIn);
    const fd = fs.openSync(famIn.path, "r+");
    fs.writeSync(fd, crypto.randomBytes(2 ** 20), 0, 2 ** 20, 2 ** 20);
    fs.closeSync(fd);
    famHash = hashFam();
    const netFile = path.join(dir, "net.xml");
    fs.writeFileSync(netFile, networkXml({ ...netIn, hosts: netIn.hosts.slice(0, 1) }));
    virshOut("net-define", netFile);
    await disk.create(disks[0]!);
    const domFile = path.join(dir, "dom.xml");
    const { uri: _u, running: _r, shutdownTimeoutMs: _s, ...spec } = doms[0]!;
    fs.writeFileSync(domFile, domainXml(spec));
    virshOut("define", domFile);

    // The second run creates everything again, as Pulumi would with empty state.
    assert.equal((await fam.create(famIn)).outs?.createdByFame, false);
    assert.equal(hashFam(), famHash, "FAM adopted untouched");
    await net.create(netIn);
    assert.match(virshOut("net-info", netIn.name), /Active:\s+yes/);
    assert.match(virshOut("net-dumpxml", netIn.name), /rel02/, "missing host added");
    for (const d of disks) await disk.create(d);
    for (const d of doms) await dom.create(d);
    for (const d of doms) assert.equal(state(d.name), "running");
    assert.equal(
      virshOut("list", "--all", "--name")
        .split("\n")
        .filter((l) => l.startsWith("rel")).length,
      2,
    );
  });

  it("sees a domain undefined out of band and recreates it", async () => {
    virshOut("destroy", "rel02");
    virshOut("undefine", "rel02");
    assert.deepEqual(await dom.read("rel02", doms[1]!), {});
    await dom.create(doms[1]!);
    assert.equal(state("rel02"), "running");
  });

  it("sees a domain changed out of band and puts it back", async () => {
    virshOut("setvcpus", "rel01", "2", "--config", "--maximum");
    virshOut("setvcpus", "rel01", "2", "--config");
    const seen = (await dom.read("rel01", doms[0]!)).props!;
    assert.equal(seen.vcpus, 2);
    assert.equal((await dom.diff("rel01", seen, doms[0]!)).changes, true);
    await dom.update("rel01", seen, doms[0]!);
    assert.equal(((await dom.read("rel01", doms[0]!)).props as DomainOutputs).vcpus, 1);
  });

  it("sees a network stopped out of band and restarts it", async () => {
    virshOut("net-destroy", netIn.name);
    const seen = (await net.read(netIn.name, { ...netIn, active: true })).props!;
    assert.equal(seen.active, false);
    assert.equal((await net.diff(netIn.name, seen, netIn)).changes, true);
    await net.update(netIn.name, seen, netIn);
    assert.match(virshOut("net-info", netIn.name), /Active:\s+yes/);
  });

  it("sees a node disk deleted out of band and recreates it", async () => {
    fs.rmSync(disks[1]!.path);
    assert.deepEqual(
      await disk.read(disks[1]!.path, { ...disks[1]!, allocatedBytes: 0, serial: "" }),
      {},
    );
    await disk.create(disks[1]!);
    assert.ok(fs.existsSync(disks[1]!.path));
  });

  it("an unreachable libvirtd is an error, never a deleted resource; state is intact afterwards", async () => {
    const before = (await dom.read("rel01", doms[0]!)).props;
    sandboxDaemon("stop-libvirtd");
    try {
      await assert.rejects(dom.read("rel01", doms[0]!), /failed to connect|cannot recv|connect/i);
      await assert.rejects(
        net.read(netIn.name, { ...netIn, active: true }),
        /failed to connect|connect/i,
      );
      await assert.rejects(dom.delete("rel01", doms[0]!), /failed to connect|connect/i);
      await assert.rejects(dom.create(doms[0]!), /failed to connect|connect/i);
    } finally {
      sandboxDaemon("start-libvirtd");
    }
    assert.deepEqual((await dom.read("rel01", doms[0]!)).props, before);
    assert.equal(state("rel01"), "running", "guests kept running through the outage");
  });

  it("destroy removes every domain, disk and the network, and keeps the FAM byte-identical", async () => {
    for (const d of doms) await dom.delete(d.name, d);
    for (const d of disks) await disk.delete(d.path, { ...d, allocatedBytes: 0, serial: "" });
    await net.delete(netIn.name, { ...netIn, active: true });
    // Without the opt-in, even a direct delete leaves the FAM file.
    await fam.delete(famIn.path, { ...famIn, createdByFame: true });
    assert.equal(
      virshOut("list", "--all", "--name")
        .split("\n")
        .filter((l) => l.startsWith("rel")).length,
      0,
    );
    assert.doesNotMatch(virshOut("net-list", "--all", "--name"), /br_rel/);
    for (const d of disks) assert.ok(!fs.existsSync(d.path), `${d.path} removed`);
    assert.ok(fs.existsSync(famIn.path));
    assert.equal(hashFam(), famHash);
  });
});
