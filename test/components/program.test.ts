import * as assert from "node:assert/strict";
import { runProgram } from "../helpers/mocks";

const FAM = "pulumi-nodejs:dynamic/fame:FamFile";
const NET = "pulumi-nodejs:dynamic/fame:Network";
const DOM = "pulumi-nodejs:dynamic/fame:Domain";

const boot = { kernelPath: "/boot/vmlinuz", initrdPath: "/boot/initrd.img" };

describe("program under mocks", function () {
  this.timeout(120_000);

  for (const scenario of [
    { nodes: 3, hostbase: "node", octets: "192.168.42", famSize: "16G", bytes: 16 * 2 ** 30 },
    { nodes: 5, hostbase: "tm", octets: "10.77.1", famSize: "2G", bytes: 2 * 2 ** 30 },
    { nodes: 1, hostbase: "abcdefgh", octets: "172.20.0", famSize: "1G", bytes: 2 ** 30 },
  ]) {
    it(`registers one FAM, one network with ${scenario.nodes} hosts and ${scenario.nodes} domains sharing the FAM`, async () => {
      const run = await runProgram({
        ...boot,
        nodes: String(scenario.nodes),
        hostbase: scenario.hostbase,
        octets123: scenario.octets,
        famSize: scenario.famSize,
        dir: "/srv/fame",
      });
      const fams = run.ofType(FAM);
      assert.equal(fams.length, 1);
      assert.equal(fams[0]?.inputs.path, "/srv/fame/FAM");
      assert.equal(fams[0]?.inputs.sizeBytes, scenario.bytes);
      assert.equal(fams[0]?.inputs.mode, 0o660);
      assert.equal(fams[0]?.inputs.group, "libvirt-qemu");

      const nets = run.ofType(NET);
      assert.equal(nets.length, 1);
      const net = nets[0]?.inputs as {
        name: string;
        ip: string;
        hosts: { mac: string; ip: string; name: string }[];
        hostNames: string[];
      };
      assert.equal(net.name, `br_${scenario.hostbase}`);
      assert.equal(net.ip, `${scenario.octets}.254`);
      assert.deepEqual(net.hostNames, ["torms"]);
      assert.equal(net.hosts.length, scenario.nodes);

      const doms = run.ofType(DOM);
      assert.equal(doms.length, scenario.nodes);
      for (const [i, d] of doms.entries()) {
        const n = i + 1;
        const name = `${scenario.hostbase}${String(n).padStart(2, "0")}`;
        assert.equal(d.inputs.name, name);
        assert.deepEqual(d.inputs.fam, { path: "/srv/fame/FAM", sizeBytes: scenario.bytes });
        assert.equal(d.inputs.network, `br_${scenario.hostbase}`);
        assert.equal(
          d.inputs.mac,
          `48:50:42:${String(n).padStart(2, "0").repeat(3).match(/../g)?.join(":")}`,
        );
        assert.equal(d.inputs.type, "qemu", "this host has no vmx/svm: TCG");
        assert.equal(d.inputs.consoleLog, `/srv/fame/${name}.console.log`);
        assert.match(
          String(d.inputs.cmdline),
          new RegExp(`systemd.hostname=${name} fame.node=${n}$`),
        );
        assert.deepEqual(net.hosts[i], { mac: d.inputs.mac, name, ip: `${scenario.octets}.${n}` });
        assert.equal(typeof d.inputs.__provider, "string");
      }

      assert.deepEqual(
        run.exports.nodeNames,
        doms.map((d) => d.inputs.name),
      );
      assert.deepEqual(
        run.exports.macs,
        doms.map((d) => d.inputs.mac),
      );
      assert.deepEqual(
        run.exports.ips,
        net.hosts.map((h) => h.ip),
      );
      assert.equal(run.exports.famPath, "/srv/fame/FAM");
      assert.equal(run.exports.famSizeBytes, scenario.bytes);
      assert.equal(run.exports.famSize, scenario.famSize);
      assert.equal(run.exports.networkName, `br_${scenario.hostbase}`);
      assert.equal(run.exports.libvirtUri, "qemu:///system");
    });
  }

  it("takes FAME_* variables of the original as defaults", async () => {
    const run = await runProgram(boot, {
      FAME_DIR: "/srv/x",
      FAME_VCPUS: "3",
      FAME_NODES: "2",
      FAME_VDRAM: "1048576",
    });
    const doms = run.ofType(DOM);
    assert.equal(doms.length, 2);
    assert.equal(doms[0]?.inputs.vcpus, 3);
    assert.equal(doms[0]?.inputs.memoryKiB, 1048576);
    assert.equal(run.exports.famPath, "/srv/x/FAM");
  });

  it("honours the accelerator override", async () => {
    const run = await runProgram({ ...boot, nodes: "1", accel: "kvm" });
    assert.equal(run.ofType(DOM)[0]?.inputs.type, "kvm");
    assert.equal(run.exports.accelerator, "kvm");
  });

  it("refuses bad config with one message naming key, value and rule, registering nothing", async () => {
    await assert.rejects(
      runProgram({ ...boot, nodes: "254", famSize: "3G" }),
      (e: Error) =>
        /fame:nodes = "254": must be an integer from 1 to 253/.test(e.message) &&
        /fame:famSize = "3G": must be a power of two/.test(e.message),
    );
  });

  it("refuses to run without a boot source", async () => {
    await assert.rejects(runProgram({ nodes: "1" }), /kernelPath and fame:initrdPath are empty/);
  });
});
