/**
 * Change management against real libvirt in the sandbox: grow FAM, add and
 * remove a node, change vCPUs, stop and start, refuse a shrink. Each step
 * checks what `diff` says (the preview) and what really happens: only the
 * expected objects change, the network never restarts, nodes restart only
 * when said, and a FAM sentinel stays byte-identical throughout.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { clusterPlan } from "../../lib/plan";
import { GiB } from "../../lib/units";
import { Domain, type DomainInputs, type DomainOutputs } from "../../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import { Network, type NetworkInputs, type NetworkOutputs } from "../../providers/network";
import { type LoadedProvider, loadSerialized } from "../helpers/engine";
import { readAt } from "../helpers/files";
import { domainInputs, famInputs, networkInputs } from "../helpers/fixtures";
import { guestKit } from "../helpers/guest";
import { sandboxUri, scratchDir, virshOut } from "../helpers/sandbox";

const SENTINELS = [1 * 2 ** 20, 512 * 2 ** 20, GiB - 65536];

function dnsmasqPid(bridge: string): string {
  const ps = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return (
    ps
      .split("\n")
      .find((l) => l.includes("dnsmasq") && l.includes(`/${bridge}.conf`))
      ?.trim()
      .split(/\s+/)[0] ?? ""
  );
}

describe("e2e: changes converge with the least work, FAM untouched", function () {
  this.timeout(20 * 60_000);
  const plan = clusterPlan({ nodes: 3, hostbase: "chg", octets123: "10.213.70" });
  let dir: string;
  let fam: LoadedProvider<FamFileInputs, FamFileOutputs>;
  let net: LoadedProvider<NetworkInputs, NetworkOutputs>;
  let dom: LoadedProvider<DomainInputs, DomainOutputs>;
  let famIn: FamFileInputs;
  let netIn: NetworkInputs;
  let doms: DomainInputs[];
  let sentinel: string;

  const domid = (name: string) => virshOut("domid", name).trim();
  const state = (name: string) => virshOut("domstate", name).trim();
  const hashSentinels = () => {
    const h = crypto.createHash("sha256");
    for (const off of SENTINELS) h.update(readAt(famIn.path, off, 65536));
    return h.digest("hex");
  };
  const netFor = (count: number): NetworkInputs =>
    networkInputs(plan, netIn.uri, netIn.owner, count);

  before(async () => {
    const uri = sandboxUri();
    const kit = guestKit();
    dir = scratchDir("changes");
    famIn = famInputs(path.join(dir, "FAM"), {
      users: { uri, domains: ["chg01", "chg02"], shutdownTimeoutMs: 1000 },
    });
    netIn = networkInputs(plan, uri, "fame/changes", 0);
    doms = plan.nodes.map((node) =>
      domainInputs(node, {
        uri,
        plan,
        kernel: kit.kernel,
        initrd: kit.initrd,
        // The test guest waits (practically forever) for markers of nine nodes: it stays up.
        cmdline: "console=ttyS0 fame.nodes=9 FAME_TIMEOUT=100000",
        dir,
        fam: { path: famIn.path, sizeBytes: GiB },
        owner: "fame/changes",
        memoryKiB: 196608,
      }),
    );
    fam = (await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("fam", famIn)))
      .provider;
    net = (await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("net", netIn)))
      .provider;
    dom = (await loadSerialized<DomainInputs, DomainOutputs>(() => new Domain("dom", doms[0]!)))
      .provider;

    await fam.create(famIn);
    // Random sentinel data where no guest writes (guests write at node*4096).
    const fd = fs.openSync(famIn.path, "r+");
    for (const off of SENTINELS) fs.writeSync(fd, crypto.randomBytes(65536), 0, 65536, off);
    fs.closeSync(fd);
    sentinel = hashSentinels();
    await net.create(netFor(2));
    await Promise.all(doms.slice(0, 2).map((d) => dom.create(d)));
  });

  after(async () => {
    for (const d of doms) await dom.delete(d.name, d).catch(() => undefined);
    await net.delete(netIn.name, { ...netIn, active: true }).catch(() => undefined);
    await fam.delete(famIn.path, { ...famIn, createdByFame: true }).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a second pass with unchanged inputs reports no change for any resource", async () => {
    const famNow = (await fam.read(famIn.path, { ...famIn, createdByFame: true })).props!;
    assert.equal((await fam.diff(famIn.path, famNow, famIn)).changes, false);
    const netNow = (await net.read(netIn.name, { ...netFor(2), active: true })).props!;
    assert.equal((await net.diff(netIn.name, netNow, netFor(2))).changes, false);
    for (const d of doms.slice(0, 2)) {
      const now = (await dom.read(d.name, d)).props!;
      assert.equal((await dom.diff(d.name, now, d)).changes, false, `${d.name} unchanged`);
    }
  });

  it("grows FAM: an in-place update; every node stops, restarts with the new size; bytes kept", async () => {
    const grown = { ...famIn, sizeBytes: 2 * GiB };
    assert.deepEqual(await fam.diff(famIn.path, { ...famIn, createdByFame: true }, grown), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const before = doms.slice(0, 2).map((d) => domid(d.name));
    const pid = dnsmasqPid(plan.network.bridge);
    await fam.update(famIn.path, { ...famIn, createdByFame: true }, grown);
    for (const d of doms.slice(0, 2))
      assert.equal(state(d.name), "shut off", `${d.name} stopped before the resize`);
    assert.equal(fs.statSync(famIn.path).size, 2 * GiB);
    for (const [i, d] of doms.entries()) doms[i] = { ...d, fam: { ...d.fam, sizeBytes: 2 * GiB } };
    for (const d of doms.slice(0, 2)) {
      const old = { ...d, fam: { ...d.fam, sizeBytes: GiB } };
      assert.deepEqual(await dom.diff(d.name, old, d), {
        changes: true,
        replaces: [],
        deleteBeforeReplace: false,
      });
      await dom.update(d.name, old, d);
      assert.equal(state(d.name), "running");
      assert.match(virshOut("dumpxml", d.name), /size=2147483648,id=FAM,share=on/);
    }
    assert.notDeepEqual(
      doms.slice(0, 2).map((d) => domid(d.name)),
      before,
    );
    assert.equal(dnsmasqPid(plan.network.bridge), pid, "network not restarted");
    assert.equal(hashSentinels(), sentinel);
    famIn = grown;
  });

  it("adds a node: only the new domain is created, the network is updated live, others untouched", async () => {
    const ids = doms.slice(0, 2).map((d) => domid(d.name));
    const pid = dnsmasqPid(plan.network.bridge);
    const d3 = await net.diff(netIn.name, { ...netFor(2), active: true }, netFor(3));
    assert.deepEqual(d3, { changes: true, replaces: [], deleteBeforeReplace: false });
    await net.update(netIn.name, { ...netFor(2), active: true }, netFor(3));
    await dom.create(doms[2]!);
    assert.equal(state("chg03"), "running");
    assert.deepEqual(
      doms.slice(0, 2).map((d) => domid(d.name)),
      ids,
      "nodes 1 and 2 kept running",
    );
    assert.equal(dnsmasqPid(plan.network.bridge), pid);
    assert.match(virshOut("net-dumpxml", netIn.name), /name='chg03' ip='10.213.70.3'/);
  });

  it("removes a node: only that domain goes, the network drops its entries live", async () => {
    const ids = doms.slice(0, 2).map((d) => domid(d.name));
    const pid = dnsmasqPid(plan.network.bridge);
    await dom.delete("chg03", doms[2]!);
    await net.update(netIn.name, { ...netFor(3), active: true }, netFor(2));
    assert.doesNotMatch(virshOut("list", "--all", "--name"), /chg03/);
    assert.doesNotMatch(virshOut("net-dumpxml", netIn.name), /chg03/);
    assert.deepEqual(
      doms.slice(0, 2).map((d) => domid(d.name)),
      ids,
    );
    assert.equal(dnsmasqPid(plan.network.bridge), pid);
  });

  it("changes vCPUs in place: an update (not a replacement) that restarts that node only", async () => {
    const [a, b] = [doms[0]!, doms[1]!];
    const other = domid(b.name);
    const before = domid(a.name);
    const next = { ...a, vcpus: 2 };
    assert.deepEqual(await dom.diff(a.name, a, next), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    await dom.update(a.name, a, next);
    doms[0] = next;
    assert.notEqual(domid(a.name), before);
    assert.equal(domid(b.name), other, "the other node did not restart");
    assert.match(virshOut("dumpxml", a.name), /<vcpu placement='static'>2<\/vcpu>/);
  });

  it("stops and starts a node through its running state, keeping its definition", async () => {
    const d = doms[1]!;
    await dom.update(d.name, d, { ...d, running: false });
    assert.equal(state(d.name), "shut off");
    assert.match(virshOut("list", "--all", "--name"), new RegExp(d.name));
    await dom.update(d.name, { ...d, running: false }, d);
    assert.equal(state(d.name), "running");
  });

  it("refuses a shrink before any change, and without the opt-in even if asked directly", async () => {
    const smaller = { ...famIn, sizeBytes: GiB };
    const failures = (await fam.check({ ...famIn, createdByFame: true }, smaller)).failures ?? [];
    assert.match(failures.map((f) => f.reason).join(), /would cut 1G \(1073741824 bytes\) of data/);
    await assert.rejects(
      fam.update(famIn.path, { ...famIn, createdByFame: true }, smaller),
      /refusing to shrink/,
    );
    assert.equal(fs.statSync(famIn.path).size, 2 * GiB);
    for (const d of doms.slice(0, 2))
      assert.equal(state(d.name), "running", "nothing was stopped for a refused shrink");
  });

  it("kept the FAM sentinel byte-identical through the whole sequence", () => {
    assert.equal(hashSentinels(), sentinel);
  });
});
