import * as assert from "node:assert/strict";
import { clusterPlan, networkPlan, nodeIndexFromMac, nodeMac, nodeName } from "../../lib/plan";

describe("cluster plan", () => {
  it("writes the node number in decimal into the MAC (the LFS contract)", () => {
    assert.equal(nodeMac(1), "48:50:42:01:01:01");
    assert.equal(nodeMac(10), "48:50:42:10:10:10");
    assert.equal(nodeMac(99), "48:50:42:99:99:99");
  });

  it("uses BCD for node numbers beyond two digits", () => {
    assert.equal(nodeMac(100), "48:50:42:00:01:00");
    assert.equal(nodeMac(123), "48:50:42:00:01:23");
    assert.equal(nodeMac(253), "48:50:42:00:02:53");
  });

  it("gives every node of the largest cluster a distinct MAC that maps back to its number", () => {
    const macs = new Set<string>();
    for (let i = 1; i <= 253; i++) {
      const mac = nodeMac(i);
      assert.match(mac, /^48:50:42(:[0-9]{2}){3}$/);
      assert.equal(nodeIndexFromMac(mac), i);
      macs.add(mac);
    }
    assert.equal(macs.size, 253);
    assert.equal(nodeIndexFromMac("48:50:42:01:02:03"), undefined);
    assert.equal(nodeIndexFromMac("52:54:00:01:01:01"), undefined);
  });

  it("names nodes with two digits (three beyond 99)", () => {
    assert.equal(nodeName("node", 2), "node02");
    assert.equal(nodeName("tm", 42), "tm42");
    assert.equal(nodeName("n", 100), "n100");
  });

  it("refuses node numbers outside 1..253", () => {
    assert.throws(() => nodeMac(0), RangeError);
    assert.throws(() => nodeMac(254), RangeError);
    assert.throws(() => nodeName("node", 1.5), RangeError);
  });

  it("puts torms at .254 and names the network and bridge from the hostbase", () => {
    assert.deepEqual(networkPlan("abcdefgh", "10.1.2"), {
      name: "br_abcdefgh",
      bridge: "br_abcdefgh",
      tormsIp: "10.1.2.254",
      netmask: "255.255.255.0",
      subnet: "10.1.2.0/24",
    });
  });

  it("plans N nodes at <octets>.N", () => {
    const plan = clusterPlan({ nodes: 3, hostbase: "tm", octets123: "172.16.9" });
    assert.deepEqual(plan.nodes, [
      { index: 1, name: "tm01", mac: "48:50:42:01:01:01", ip: "172.16.9.1" },
      { index: 2, name: "tm02", mac: "48:50:42:02:02:02", ip: "172.16.9.2" },
      { index: 3, name: "tm03", mac: "48:50:42:03:03:03", ip: "172.16.9.3" },
    ]);
    assert.equal(
      clusterPlan({ nodes: 253, hostbase: "n", octets123: "10.0.0" }).nodes.at(-1)?.ip,
      "10.0.0.253",
    );
  });
});
