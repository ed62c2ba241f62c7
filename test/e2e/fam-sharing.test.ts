/**
 * End to end, inside the sandbox's network namespace: three nodes boot from the
 * test guest, node k writes a marker at offset k*4096 of the IVSHMEM BAR2,
 * every node reads every marker, and the host reads them from the FAM file.
 * All objects are made by fame's providers, loaded as the engine loads them.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { clusterPlan } from "../../lib/plan";
import { Domain, type DomainInputs, type DomainOutputs } from "../../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import { Network, type NetworkInputs, type NetworkOutputs } from "../../providers/network";
import { loadSerialized } from "../helpers/engine";
import { domainInputs, famInputs, networkInputs } from "../helpers/fixtures";
import { guestKit, waitForLog } from "../helpers/guest";
import { sandboxUri, scratchDir, virshOut } from "../helpers/sandbox";

describe("e2e: three nodes share FAM through IVSHMEM", function () {
  this.timeout(900_000);
  const plan = clusterPlan({ nodes: 3, hostbase: "e2e", octets123: "10.213.50" });

  it("every node sees every node's marker, and the host sees them in the FAM file", async () => {
    const uri = sandboxUri();
    const kit = guestKit();
    const dir = scratchDir("e2e");

    const famIn = famInputs(path.join(dir, "FAM"));
    const netIn = networkInputs(plan, uri, "fame/e2e");
    const domIns = plan.nodes.map((node) =>
      domainInputs(node, {
        uri,
        plan,
        kernel: kit.kernel,
        initrd: kit.initrd,
        cmdline: "console=ttyS0 fame.nodes=3",
        dir,
        fam: { path: famIn.path, sizeBytes: famIn.sizeBytes },
        owner: "fame/e2e",
      }),
    );

    const fam = (
      await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("fam", famIn))
    ).provider;
    const net = (
      await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("net", netIn))
    ).provider;
    const dom = (
      await loadSerialized<DomainInputs, DomainOutputs>(() => new Domain("dom", domIns[0]!))
    ).provider;

    await fam.create(famIn);
    await net.create(netIn);
    const started = Date.now();
    try {
      await Promise.all(domIns.map((d) => dom.create(d)));
      const logs = await Promise.all(
        domIns.map((d) => waitForLog(d.consoleLog, /FAME-(ALL-SEEN|TIMEOUT|ERROR) \d+/, 600_000)),
      );
      console.log(
        `      all markers seen ${Math.round((Date.now() - started) / 1000)} s after start`,
      );
      for (const [i, log] of logs.entries()) {
        const k = i + 1;
        assert.match(log, new RegExp(`FAME-WROTE ${k}`), `node ${k} wrote`);
        assert.match(
          log,
          new RegExp(`FAME-ALL-SEEN ${k}`),
          `node ${k} saw all:\n${log.slice(-1500)}`,
        );
        for (let j = 1; j <= 3; j++)
          assert.match(
            log,
            new RegExp(`FAME-SAW ${j} FAME-MARKER-node${j}`),
            `node ${k} saw node ${j}`,
          );
      }
      const fd = fs.openSync(famIn.path, "r");
      for (let k = 1; k <= 3; k++) {
        const buf = Buffer.alloc(32);
        fs.readSync(fd, buf, 0, 32, k * 4096);
        assert.equal(buf.toString("latin1").split("\0")[0], `FAME-MARKER-node${k}`);
      }
      fs.closeSync(fd);
    } finally {
      for (const d of domIns) await dom.delete(d.name, d).catch(() => undefined);
      await net.delete(netIn.name, { ...netIn, active: true }).catch(() => undefined);
      await fam.delete(famIn.path, { ...famIn, createdByFame: true });
    }
    fs.rmSync(dir, { recursive: true, force: true });
    assert.doesNotMatch(virshOut("list", "--all", "--name"), /e2e0/);
    assert.doesNotMatch(virshOut("net-list", "--all", "--name"), /br_e2e/);
  });
});
