import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { clusterPlan } from "../../lib/plan";
import { networkXml } from "../../lib/xml";
import { Network, type NetworkInputs, type NetworkOutputs } from "../../providers/network";
import { type LoadedProvider, loadSerialized } from "../helpers/engine";
import { sandboxNetns, sandboxUri, virshOut } from "../helpers/sandbox";

/** PID of the dnsmasq serving a bridge inside the sandbox (changes if the network restarts). */
function dnsmasqPid(bridge: string): string {
  const ps = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  const line = ps.split("\n").find((l) => l.includes("dnsmasq") && l.includes(`/${bridge}.conf`));
  return line?.trim().split(/\s+/)[0] ?? "";
}

describe("Network provider against a sandboxed libvirtd", function () {
  this.timeout(120_000);
  let p: LoadedProvider<NetworkInputs, NetworkOutputs>;
  let inputs: NetworkInputs;
  const plan = clusterPlan({ nodes: 3, hostbase: "tnet", octets123: "10.213.7" });
  const hosts = plan.nodes.map(({ mac, name, ip }) => ({ mac, name, ip }));

  before(async () => {
    inputs = {
      uri: sandboxUri(),
      name: plan.network.name,
      bridge: plan.network.bridge,
      ip: plan.network.tormsIp,
      netmask: plan.network.netmask,
      hostNames: ["torms"],
      hosts: hosts.slice(0, 2),
      autostart: true,
      owner: "fame/network-test",
    };
    ({ provider: p } = await loadSerialized<NetworkInputs, NetworkOutputs>(
      () => new Network("net", inputs),
    ));
  });

  after(async () => {
    await p?.delete(inputs.name, { ...inputs, active: true }).catch(() => undefined);
  });

  it("creates, starts and autostarts the network, with its bridge only inside the sandbox namespace", async () => {
    assert.deepEqual((await p.check({}, inputs)).failures, []);
    const { id, outs } = await p.create(inputs);
    assert.equal(id, "br_tnet");
    assert.equal(outs?.active, true);
    const info = virshOut("net-info", "br_tnet");
    assert.match(info, /Active:\s+yes/);
    assert.match(info, /Autostart:\s+yes/);
    const inNs = execFileSync(
      "ip",
      ["netns", "exec", sandboxNetns(), "ip", "-br", "addr", "show", "br_tnet"],
      { encoding: "utf8" },
    );
    assert.match(inNs, /10\.213\.7\.254\/24/);
    const onHost = execFileSync("ip", ["-br", "link"], { encoding: "utf8" });
    assert.doesNotMatch(onHost, /br_tnet/);
  });

  it("reads back exactly what it created", async () => {
    const { id, props } = await p.read("br_tnet", { ...inputs, active: true });
    assert.equal(id, "br_tnet");
    assert.deepEqual(props, { ...inputs, active: true });
    assert.deepEqual((await p.diff("br_tnet", props as NetworkOutputs, inputs)).changes, false);
  });

  it("a create whose start fails after the define leaves no network behind", async () => {
    // Same subnet as the running br_tnet: libvirt defines it but refuses to start it.
    const clash = { ...inputs, name: "br_tclash", bridge: "br_tclash", owner: "fame/clash" };
    const names = () => virshOut("net-list", "--all", "--name");
    await assert.rejects(p.create(clash), /net-start br_tclash failed[\s\S]*in use/);
    assert.doesNotMatch(names(), /^br_tclash$/m);
    // Control: the define does succeed; a network the create adopted stays.
    const file = path.join(os.tmpdir(), `fame-net-${process.pid}.xml`);
    fs.writeFileSync(file, networkXml(clash));
    try {
      virshOut("net-define", file);
    } finally {
      fs.rmSync(file, { force: true });
    }
    await assert.rejects(p.create(clash), /net-start br_tclash failed/);
    assert.match(names(), /^br_tclash$/m);
    virshOut("net-undefine", "br_tclash");
  });

  it("adds and removes node hosts live, without restarting the network", async () => {
    const olds = { ...inputs, active: true };
    const grown = { ...inputs, hosts };
    assert.deepEqual(await p.diff("br_tnet", olds, grown), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const pid = dnsmasqPid("br_tnet");
    assert.notEqual(pid, "");
    await p.update("br_tnet", olds, grown);
    assert.equal(dnsmasqPid("br_tnet"), pid, "dnsmasq kept running: no network restart");
    const xml = virshOut("net-dumpxml", "br_tnet");
    assert.match(xml, /<host mac='48:50:42:03:03:03' name='tnet03' ip='10.213.7.3'\/>/);
    assert.match(xml, /<host ip='10.213.7.3'>\s*<hostname>tnet03<\/hostname>/);
    // dnsmasq's live hosts file (seen through its own mount namespace) carries the new lease
    // (a CI run on a loaded host once read it before libvirt had rewritten it: wait a little).
    const hostsFile = `/proc/${pid}/root/var/lib/libvirt/dnsmasq/br_tnet.hostsfile`;
    const deadline = Date.now() + 20_000;
    let leases = fs.readFileSync(hostsFile, "utf8");
    while (!leases.includes("tnet03") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      leases = fs.readFileSync(hostsFile, "utf8");
    }
    assert.match(leases, /48:50:42:03:03:03,10\.213\.7\.3,tnet03/);

    await p.update(
      "br_tnet",
      { ...grown, active: true },
      { ...inputs, hosts: [hosts[0]!, hosts[2]!] },
    );
    const after = (await p.read("br_tnet", { ...inputs, active: true })).props as NetworkOutputs;
    assert.deepEqual(after.hosts.map((h) => h.name).sort(), ["tnet01", "tnet03"]);
    assert.doesNotMatch(virshOut("net-dumpxml", "br_tnet"), /tnet02/);
    assert.equal(dnsmasqPid("br_tnet"), pid);
  });

  it("repairs a host left half-made by an interrupted run (lease without DNS name, name without lease)", async () => {
    const [h1, h2] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
    const want = { ...inputs, hosts: [h1, h2] };
    await p.update("br_tnet", { ...inputs, active: true }, want);
    const pid = dnsmasqPid("br_tnet");
    // node02's DNS name and node01's lease vanish, as if each run stopped halfway.
    const drop = (section: string, xml: string) =>
      virshOut("net-update", "br_tnet", "delete", section, xml, "--live", "--config");
    drop("dns-host", `<host ip='${h2.ip}'><hostname>${h2.name}</hostname></host>`);
    drop("ip-dhcp-host", `<host mac='${h1.mac}' name='${h1.name}' ip='${h1.ip}'/>`);
    const seen = (await p.read("br_tnet", { ...want, active: true })).props as NetworkOutputs;
    const d = await p.diff("br_tnet", seen, want);
    assert.deepEqual([d.changes, d.replaces], [true, []], "refresh sees the half-made hosts");
    await p.update("br_tnet", seen, want);
    const xml = virshOut("net-dumpxml", "br_tnet");
    assert.match(xml, new RegExp(`<host ip='${h2.ip}'>\\s*<hostname>${h2.name}</hostname>`));
    assert.match(xml, new RegExp(`<host mac='${h1.mac}' name='${h1.name}' ip='${h1.ip}'/>`));
    const again = (await p.read("br_tnet", { ...want, active: true })).props as NetworkOutputs;
    assert.equal((await p.diff("br_tnet", again, want)).changes, false);
    assert.equal(dnsmasqPid("br_tnet"), pid, "repaired live");
  });

  it("lists identity changes as replacements", async () => {
    const olds = { ...inputs, active: true };
    const d = await p.diff("br_tnet", olds, { ...inputs, ip: "10.213.8.254", bridge: "br_other" });
    assert.deepEqual(d.replaces?.sort(), ["bridge", "ip"]);
    assert.equal(d.deleteBeforeReplace, true);
  });

  it("adopts its own network after an interrupted run and refuses a different one", async () => {
    const adopted = await p.create({ ...inputs, hosts });
    assert.equal(adopted.id, "br_tnet");
    const hostsNow = (
      (await p.read("br_tnet", { ...inputs, active: true })).props as NetworkOutputs
    ).hosts;
    assert.equal(hostsNow.length, 3);
    await assert.rejects(
      p.create({ ...inputs, ip: "10.213.9.254" }),
      /already exists with a different shape/,
    );
    await assert.rejects(
      p.create({ ...inputs, owner: "fame/other-stack" }),
      /belongs to fame stack fame\/network-test, not fame\/other-stack/,
    );
  });

  it("preflight refuses a second network on the same bridge or an overlapping subnet", async () => {
    const other = { ...inputs, name: "br_other", owner: "fame/other" };
    const reasons = async (i: NetworkInputs) =>
      ((await p.check({}, i)).failures ?? []).map((f) => f.reason).join("; ");
    assert.match(await reasons(other), /already uses bridge br_tnet: choose another fame:hostbase/);
    assert.match(
      await reasons(other),
      /already uses 10.213.7.254\/255.255.255.0, which overlaps .*choose another fame:octets123/,
    );
    assert.equal(await reasons({ ...other, bridge: "br_other", ip: "10.213.8.254" }), "");
    // Its own name, another stack's mark: refused in preview, not only at create.
    assert.match(
      await reasons({ ...inputs, owner: "fame/other" }),
      new RegExp(
        `libvirt network br_tnet already exists and belongs to fame stack ${inputs.owner}, not fame/other`,
      ),
    );
    assert.equal(await reasons(inputs), "", "its own network is adopted");
    // The same stack under a new hostbase: its old network is replaced (deleted first), not in the way.
    assert.equal(await reasons({ ...inputs, name: "br_renamed", bridge: "br_renamed" }), "");
    assert.match(
      await reasons({ ...inputs, uri: "qemu:///system?socket=/nonexistent/sock" }),
      /cannot reach libvirt at .*start libvirtd, or fix fame:libvirtUri/,
    );
  });

  it("repairs a network stopped out of band", async () => {
    virshOut("net-destroy", "br_tnet");
    const seen = (await p.read("br_tnet", { ...inputs, active: true })).props as NetworkOutputs;
    assert.equal(seen.active, false);
    assert.equal((await p.diff("br_tnet", seen, { ...inputs, hosts })).changes, true);
    await p.update("br_tnet", seen, { ...inputs, hosts });
    assert.match(virshOut("net-info", "br_tnet"), /Active:\s+yes/);
  });

  it("repairs a network stopped out of band without a refresh: diff asks libvirt, not the recorded state", async () => {
    const recorded = { ...inputs, active: true };
    assert.equal((await p.diff("br_tnet", recorded, inputs)).changes, false);
    virshOut("net-destroy", "br_tnet");
    assert.deepEqual(await p.diff("br_tnet", recorded, inputs), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const { outs } = await p.update("br_tnet", recorded, inputs);
    assert.equal(outs?.active, true);
    assert.match(virshOut("net-info", "br_tnet"), /Active:\s+yes/);
    assert.equal((await p.diff("br_tnet", recorded, inputs)).changes, false);
    // Autostart turned off out of band: the same.
    virshOut("net-autostart", "--disable", "br_tnet");
    assert.equal((await p.diff("br_tnet", recorded, inputs)).changes, true);
    await p.update("br_tnet", recorded, inputs);
    assert.match(virshOut("net-info", "br_tnet"), /Autostart:\s+yes/);
    assert.equal((await p.diff("br_tnet", recorded, inputs)).changes, false);
  });

  it("a diff that cannot reach libvirtd fails naming the network: never 'no change'", async () => {
    const dead = { ...inputs, uri: "qemu:///system?socket=/nonexistent/libvirt-sock" };
    await assert.rejects(
      p.diff("br_tnet", { ...dead, active: true }, dead),
      /cannot check br_tnet for changes made outside fame .*failed to connect/i,
    );
  });

  it("deletes the network; read then reports it gone", async () => {
    await p.delete("br_tnet", { ...inputs, active: true });
    assert.doesNotMatch(virshOut("net-list", "--all", "--name"), /br_tnet/);
    assert.deepEqual(await p.read("br_tnet", { ...inputs, active: true }), {});
  });

  it("fails loudly when libvirtd cannot be reached: never 'not found'", async () => {
    const dead = { ...inputs, uri: "qemu:///system?socket=/nonexistent/libvirt-sock" };
    await assert.rejects(p.read("br_tnet", { ...dead, active: true }), /failed to connect/i);
  });
});
