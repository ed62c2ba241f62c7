import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createFam } from "../../lib/host/famfile";
import { cxlSerial } from "../../lib/plan";
import { GiB } from "../../lib/units";
import { CXL_LSA_BYTES, domainXml, networkXml } from "../../lib/xml";
import { Domain, type DomainInputs, type DomainOutputs } from "../../providers/domain";
import { type LoadedProvider, loadSerialized } from "../helpers/engine";
import { guestKit } from "../helpers/guest";
import { sandboxStateDir, sandboxUri, scratchDir, virshOut } from "../helpers/sandbox";

describe("Domain provider against a sandboxed libvirtd", function () {
  this.timeout(300_000);
  let p: LoadedProvider<DomainInputs, DomainOutputs>;
  let inputs: DomainInputs;
  let dir: string;

  const domid = () => virshOut("domid", inputs.name).trim();
  const state = () => virshOut("domstate", inputs.name).trim();

  before(async () => {
    const uri = sandboxUri();
    const kit = guestKit();
    dir = scratchDir("domain");
    const famPath = path.join(dir, "FAM");
    await createFam(famPath, GiB);
    fs.chmodSync(famPath, 0o666);
    inputs = {
      uri,
      name: "tdom01",
      type: "qemu",
      memoryKiB: 262144,
      vcpus: 1,
      kernel: kit.kernel,
      initrd: kit.initrd,
      // Waits for nine nodes' markers that never come: the guest stays up for minutes.
      cmdline: "console=ttyS0 fame.node=1 fame.nodes=9",
      disks: [],
      network: "default-none",
      mac: "48:50:42:01:01:01",
      consoleLog: path.join(dir, "tdom01.console.log"),
      fam: { path: famPath, sizeBytes: GiB },
      famezSocket: "",
      owner: "fame/provider-test",
      running: true,
      shutdownTimeoutMs: 2000,
    };
    // The NIC needs a network: a private one for this test.
    virshOut("net-define", writeTemp(dir, "net.xml", NET_XML));
    virshOut("net-start", "default-none");
    ({ provider: p } = await loadSerialized<DomainInputs, DomainOutputs>(
      () => new Domain("dom", inputs),
    ));
  });

  after(async () => {
    await p?.delete(inputs.name, inputs).catch(() => undefined);
    try {
      virshOut("net-destroy", "default-none");
      virshOut("net-undefine", "default-none");
    } catch {
      /* already gone */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("defines and starts the domain with FAM attached", async () => {
    assert.deepEqual((await p.check({}, inputs)).failures, []);
    const { id, outs } = await p.create(inputs);
    assert.equal(id, "tdom01");
    assert.deepEqual(outs, inputs);
    assert.equal(state(), "running");
    const xml = virshOut("dumpxml", "tdom01");
    assert.match(xml, /ivshmem-plain,memdev=FAM,bus=pci.0,addr=0x10/);
  });

  it("a create whose start fails after the define leaves no domain behind", async () => {
    // A failed create never enters the state, so destroy would not know of it.
    const broken = {
      ...inputs,
      name: "tdom09",
      mac: "48:50:42:01:01:09",
      kernel: path.join(dir, "no-such-vmlinuz"),
      consoleLog: path.join(dir, "tdom09.console.log"),
    };
    await assert.rejects(p.create(broken), /start tdom09 failed[\s\S]*no-such-vmlinuz/);
    assert.doesNotMatch(virshOut("list", "--all", "--name"), /^tdom09$/m);
    // Control: libvirt does define this domain; only its start fails. One the
    // create adopted (left by an interrupted run) is not its to remove.
    const { uri: _u, running: _r, shutdownTimeoutMs: _s, ...spec } = broken;
    virshOut("define", writeTemp(dir, "tdom09.xml", domainXml(spec)));
    await assert.rejects(p.create(broken), /start tdom09 failed/);
    assert.match(virshOut("list", "--all", "--name"), /^tdom09$/m);
    virshOut("undefine", "tdom09");
  });

  it("reads back the same spec from libvirt's own XML", async () => {
    const { props } = await p.read("tdom01", inputs);
    assert.deepEqual(props, inputs);
    assert.equal((await p.diff("tdom01", props as DomainOutputs, inputs)).changes, false);
  });

  it("updates vCPUs and DRAM in place, restarting the running node", async () => {
    const before = domid();
    const news = { ...inputs, vcpus: 2, memoryKiB: 393216 };
    assert.deepEqual(await p.diff("tdom01", inputs, news), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    await p.update("tdom01", inputs, news);
    assert.equal(state(), "running");
    assert.notEqual(domid(), before, "the domain restarted");
    const props = (await p.read("tdom01", news)).props as DomainOutputs;
    assert.equal(props.vcpus, 2);
    assert.equal(props.memoryKiB, 393216);
    inputs = news;
  });

  it("stops and starts without redefining when only the power state changes", async () => {
    // libvirt rewrites a domain's saved definition only when it is (re)defined.
    const saved = path.join(sandboxStateDir(), "root", "etc", "qemu", "tdom01.xml");
    const definition = () => {
      const st = fs.statSync(saved);
      return { ino: st.ino, mtimeMs: st.mtimeMs, text: fs.readFileSync(saved, "utf8") };
    };
    const before = definition();
    await p.update("tdom01", inputs, { ...inputs, running: false });
    assert.equal(state(), "shut off");
    assert.equal(((await p.read("tdom01", inputs)).props as DomainOutputs).running, false);
    await p.update("tdom01", { ...inputs, running: false }, inputs);
    assert.equal(state(), "running");
    assert.deepEqual(definition(), before, "the definition was not rewritten");
    // Control: a definition change does rewrite it, so the check above can fail.
    const more = { ...inputs, vcpus: inputs.vcpus + 1 };
    await p.update("tdom01", inputs, more);
    assert.notDeepEqual(definition(), before);
    await p.update("tdom01", more, inputs);
    assert.equal(state(), "running");
  });

  it("a node left off by a FAM resize whose own update failed shows as a change and starts again", async () => {
    // The FAM resource's update stops every node; then this node's update fails
    // (here: FAM size larger than the file, which QEMU refuses).
    virshOut("destroy", "tdom01");
    const failing = { ...inputs, fam: { ...inputs.fam, sizeBytes: 2 * GiB } };
    await assert.rejects(p.update("tdom01", inputs, failing));
    assert.equal(state(), "shut off");
    // The engine kept the recorded state (running: true); it must not hide the truth.
    assert.equal(((await p.read("tdom01", inputs)).props as DomainOutputs).running, false);
    const d = await p.diff("tdom01", inputs, inputs);
    assert.deepEqual([d.changes, d.replaces], [true, []], "the next up repairs it");
    await p.update("tdom01", inputs, inputs);
    assert.equal(state(), "running");
    assert.equal((await p.diff("tdom01", inputs, inputs)).changes, false);
  });

  it("a node paused out of band shows as a change without a refresh, and update resumes it", async () => {
    const id = domid();
    virshOut("suspend", "tdom01");
    assert.equal(state(), "paused");
    // The recorded state still says running: diff asks libvirt.
    const d = await p.diff("tdom01", inputs, inputs);
    assert.deepEqual([d.changes, d.replaces], [true, []]);
    await p.update("tdom01", inputs, inputs);
    assert.equal(state(), "running");
    assert.equal(domid(), id, "resumed, not restarted");
    assert.equal((await p.diff("tdom01", inputs, inputs)).changes, false);
    // A paused node whose definition changes is powered off and started anew.
    virshOut("suspend", "tdom01");
    const more = { ...inputs, vcpus: inputs.vcpus + 1 };
    await p.update("tdom01", inputs, more);
    assert.equal(state(), "running");
    assert.notEqual(domid(), id);
    await p.update("tdom01", more, inputs);
  });

  it("switches FAM to CXL and back as an in-place update that restarts the node", async () => {
    const lsaPath = path.join(dir, "tdom01.lsa");
    await createFam(lsaPath, CXL_LSA_BYTES);
    fs.chmodSync(lsaPath, 0o666);
    const cxl = { ...inputs, cxl: { lsaPath, lsaSizeBytes: CXL_LSA_BYTES, serial: cxlSerial(1) } };
    assert.deepEqual((await p.check(inputs, cxl)).failures, []);
    assert.deepEqual(await p.diff("tdom01", inputs, cxl), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    let before = domid();
    await p.update("tdom01", inputs, cxl);
    assert.equal(state(), "running");
    assert.notEqual(domid(), before, "the domain restarted");
    const xml = virshOut("dumpxml", "tdom01");
    assert.match(xml, /machine='pc-q35-[\d.]+'/);
    assert.match(xml, /cxl-type3,bus=root_port13,memdev=cxl-mem0,lsa=cxl-lsa0/);
    assert.doesNotMatch(xml, /ivshmem-plain/);
    const props = (await p.read("tdom01", cxl)).props as DomainOutputs;
    assert.deepEqual(props, cxl);
    assert.equal((await p.diff("tdom01", props, cxl)).changes, false);
    assert.match(
      (await p.check(inputs, { ...cxl, cxl: { ...cxl.cxl, serial: 0 } })).failures?.[0]?.reason ??
        "",
      /serial 0/,
    );
    // the engine's unknown during a preview is not a failure
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    assert.deepEqual(
      (await p.check(inputs, { ...cxl, cxl: unknown as unknown as typeof cxl.cxl })).failures,
      [],
    );

    before = domid();
    await p.update("tdom01", cxl, inputs);
    assert.equal(state(), "running");
    assert.notEqual(domid(), before);
    const back = virshOut("dumpxml", "tdom01");
    assert.match(back, /machine='pc-i440fx-[\d.]+'/);
    assert.match(back, /ivshmem-plain,memdev=FAM,bus=pci.0,addr=0x10/);
    assert.deepEqual((await p.read("tdom01", inputs)).props, inputs);
  });

  it("lists the name and URI as replacements, nothing else", async () => {
    const d = await p.diff("tdom01", inputs, {
      ...inputs,
      name: "tdom02",
      fam: { ...inputs.fam, sizeBytes: 2 * GiB },
    });
    assert.deepEqual(d.replaces, ["name"]);
    assert.equal(d.deleteBeforeReplace, true);
  });

  it("adopts its own domain after an interrupted run and refuses another owner's", async () => {
    const again = await p.create(inputs);
    assert.equal(again.id, "tdom01");
    await assert.rejects(
      p.create({ ...inputs, owner: "someone/else" }),
      /not managed by this fame stack/,
    );
  });

  it("reports a domain undefined out of band as gone, and create brings it back", async () => {
    virshOut("destroy", "tdom01");
    virshOut("undefine", "tdom01");
    assert.deepEqual(await p.read("tdom01", inputs), {});
    await p.create(inputs);
    assert.equal(state(), "running");
  });

  it("deletes: stops (forced after the timeout) and undefines", async () => {
    await p.delete("tdom01", inputs);
    assert.doesNotMatch(virshOut("list", "--all", "--name"), /tdom01/);
    assert.deepEqual(await p.read("tdom01", inputs), {});
  });
});

const NET_XML = networkXml({
  name: "default-none",
  bridge: "br_tdom",
  ip: "10.213.99.254",
  netmask: "255.255.255.0",
  hostNames: [],
  hosts: [],
  owner: "",
});

function writeTemp(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}
