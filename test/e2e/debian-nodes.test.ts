/**
 * End to end with real Debian nodes, inside the sandbox's network namespace:
 * build the golden image from the Debian mirror (reused when cached), boot two
 * nodes from copy-on-write overlays with seed disks, SSH in with the stack's
 * key, SSH node to node by name, build hello_fabric on the nodes with their own
 * gcc, and see node01's bytes on node02 and in the host's FAM file.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { goldenImageRecipe } from "../../components/goldenImage";
import { imageCmdline } from "../../lib/image";
import { seedFiles } from "../../lib/outputs";
import { clusterPlan } from "../../lib/plan";
import { GiB } from "../../lib/units";
import { Domain, type DomainInputs, type DomainOutputs } from "../../providers/domain";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import {
  GoldenImageBuild,
  type GoldenImageInputs,
  type GoldenImageOutputs,
} from "../../providers/goldenImage";
import { Network, type NetworkInputs, type NetworkOutputs } from "../../providers/network";
import { NodeDisk, type NodeDiskInputs, type NodeDiskOutputs } from "../../providers/nodeDisk";
import { SeedDisk, type SeedDiskInputs, type SeedDiskOutputs } from "../../providers/seedDisk";
import { SshKey, type SshKeyInputs, type SshKeyOutputs } from "../../providers/sshKey";
import { loadSerialized } from "../helpers/engine";
import { domainInputs, famInputs, networkInputs } from "../helpers/fixtures";
import { sandboxUri, scratchDir, virshOut } from "../helpers/sandbox";
import { sshOk, waitForSsh } from "../helpers/ssh";

/** Shared across runs on one machine: the image is built once, then reused. */
const CACHE = process.env.FAME_TEST_IMAGE_CACHE ?? "/var/cache/fame-test/images";
const MIRROR = process.env.FAME_TEST_MIRROR ?? "http://deb.debian.org/debian";

describe("e2e: Debian nodes from the golden image", function () {
  this.timeout(45 * 60_000);
  const plan = clusterPlan({ nodes: 2, hostbase: "dn", octets123: "10.213.60" });
  const user = "l4mdc";
  let dir: string;
  const cleanups: (() => Promise<void>)[] = [];

  after(async () => {
    for (const c of cleanups.reverse()) await c().catch((e) => console.error(`cleanup: ${e}`));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("boots two nodes that answer SSH, reach each other by name, and share FAM", async () => {
    const uri = sandboxUri();
    dir = scratchDir("debian");

    // --- golden image (cold or cached), then a second create that must reuse it
    const image0 = goldenImageRecipe({
      mirror: MIRROR,
      user,
      hostbase: "dn",
      octets123: "10.213.60",
      sizeGbytes: 4,
    });
    const imgIn: GoldenImageInputs = {
      cacheDir: CACHE,
      key: image0.key,
      recipe: image0.recipe,
      hook: image0.hook,
      l4fame: "",
      proxy: "",
    };
    const img = (
      await loadSerialized<GoldenImageInputs, GoldenImageOutputs>(
        () => new GoldenImageBuild("img", imgIn),
      )
    ).provider;
    assert.deepEqual((await img.check({}, imgIn)).failures, []);
    let t = Date.now();
    const image = (await img.create(imgIn)).outs!;
    console.log(
      `      golden image: ${image.reused ? "cached" : `built in ${image.buildSeconds} s`} (${Date.now() - t} ms)`,
    );
    assert.ok(image.packages.some((p) => p.startsWith("openssh-server ")));
    assert.ok(image.packages.some((p) => p.startsWith("build-essential ")));
    t = Date.now();
    const again = (await img.create(imgIn)).outs!;
    const reuseMs = Date.now() - t;
    console.log(`      second create: reused in ${reuseMs} ms`);
    assert.equal(again.reused, true);
    assert.equal(again.qcow2, image.qcow2);
    assert.ok(reuseMs < 5000, `reuse took ${reuseMs} ms`);

    // --- stack key, FAM, network
    const keyIn: SshKeyInputs = { comment: "fame-e2e" };
    const key = (
      await (
        await loadSerialized<SshKeyInputs, SshKeyOutputs>(() => new SshKey("k", keyIn))
      ).provider.create(keyIn)
    ).outs!;
    const keyFile = path.join(dir, "id_ed25519");
    fs.writeFileSync(keyFile, key.privateKey, { mode: 0o600 });

    const famIn = famInputs(path.join(dir, "FAM"));
    const fam = (
      await loadSerialized<FamFileInputs, FamFileOutputs>(() => new FamFile("fam", famIn))
    ).provider;
    await fam.create(famIn);
    cleanups.push(() => fam.delete(famIn.path, { ...famIn, createdByFame: true }));

    const netIn = networkInputs(plan, uri, "fame/e2e-debian");
    const net = (
      await loadSerialized<NetworkInputs, NetworkOutputs>(() => new Network("net", netIn))
    ).provider;
    await net.create(netIn);
    cleanups.push(() => net.delete(netIn.name, { ...netIn, active: true }));

    // --- per node: overlay disk, seed disk, domain
    const seeds = seedFiles(key.publicKey, key.privateKey);
    const domIns: DomainInputs[] = [];
    for (const node of plan.nodes) {
      const diskIn: NodeDiskInputs = {
        path: path.join(dir, `${node.name}.qcow2`),
        backingFile: image.qcow2,
        sizeBytes: 4 * GiB,
      };
      const disk = (
        await loadSerialized<NodeDiskInputs, NodeDiskOutputs>(() => new NodeDisk("d", diskIn))
      ).provider;
      const made = (await disk.create(diskIn)).outs!;
      console.log(`      ${node.name} disk at creation: ${made.allocatedBytes} bytes allocated`);
      assert.ok(made.allocatedBytes < 1024 * 1024);
      const seedIn: SeedDiskInputs = {
        path: path.join(dir, `${node.name}.seed.img`),
        files: seeds,
      };
      await (
        await loadSerialized<SeedDiskInputs, SeedDiskOutputs>(() => new SeedDisk("s", seedIn))
      ).provider.create(seedIn);
      domIns.push(
        domainInputs(node, {
          uri,
          plan,
          kernel: image.kernel,
          initrd: image.initrd,
          cmdline: imageCmdline(),
          dir,
          fam: { path: famIn.path, sizeBytes: famIn.sizeBytes },
          owner: "fame/e2e-debian",
          disks: [
            { path: diskIn.path, format: "qcow2" },
            { path: seedIn.path, format: "raw" },
          ],
          memoryKiB: 786432,
          vcpus: 2,
          shutdownTimeoutMs: 120_000,
        }),
      );
    }
    const dom = (
      await loadSerialized<DomainInputs, DomainOutputs>(() => new Domain("dom", domIns[0]!))
    ).provider;
    for (const d of domIns)
      cleanups.push(() => dom.delete(d.name, { ...d, shutdownTimeoutMs: 1000 }));

    t = Date.now();
    await Promise.all(domIns.map((d) => dom.create(d)));
    const [ip1, ip2] = plan.nodes.map((n) => n.ip) as [string, string];
    await Promise.all([
      waitForSsh(keyFile, user, ip1, 600_000),
      waitForSsh(keyFile, user, ip2, 600_000),
    ]).catch((e) => {
      const logs = domIns.map(
        (d) =>
          `--- ${d.name}\n${fs.existsSync(d.consoleLog) ? fs.readFileSync(d.consoleLog, "utf8").slice(-3000) : "(no log)"}`,
      );
      throw new Error(`${e}\n${logs.join("\n")}`);
    });
    console.log(`      both nodes SSH-ready ${Math.round((Date.now() - t) / 1000)} s after start`);

    // --- identity: hostname from the cmdline, own host keys and machine-id, user with sudo
    assert.equal((await sshOk(keyFile, user, ip1, "hostname")).trim(), "dn01");
    assert.equal((await sshOk(keyFile, user, ip2, "hostname")).trim(), "dn02");
    const ident = "cat /etc/ssh/ssh_host_ed25519_key.pub /etc/machine-id";
    const [id1, id2] = [
      await sshOk(keyFile, user, ip1, ident),
      await sshOk(keyFile, user, ip2, ident),
    ];
    assert.notEqual(id1.split("\n")[0], id2.split("\n")[0], "distinct SSH host keys");
    assert.notEqual(id1.split("\n")[1], id2.split("\n")[1], "distinct machine-id");
    assert.equal((await sshOk(keyFile, user, ip1, "sudo -n id -u")).trim(), "0");
    assert.match(
      await sshOk(keyFile, user, ip1, "getent hosts torms dn02"),
      /10\.213\.60\.254\s+torms[\s\S]*10\.213\.60\.2\s+dn02/,
    );

    // --- node to node by name, with the stack's key, no password
    assert.equal(
      (await sshOk(keyFile, user, ip1, "ssh -o BatchMode=yes dn02 hostname")).trim(),
      "dn02",
    );

    // --- hello_fabric: built on the nodes with their gcc; node01 writes uname, node02 and the host read it
    const build = "gcc -O2 -o hello_fabric /usr/local/share/fame/hello_fabric.c";
    await sshOk(keyFile, user, ip1, `${build} && sudo ./hello_fabric write 8192 "$(uname -a)"`);
    const uname = (await sshOk(keyFile, user, ip1, "uname -a")).trim();
    const read = (
      await sshOk(
        keyFile,
        user,
        ip2,
        `${build} && sudo ./hello_fabric read 8192 ${uname.length + 16}`,
      )
    ).trim();
    assert.equal(read, uname);
    const fd = fs.openSync(famIn.path, "r");
    const buf = Buffer.alloc(uname.length);
    fs.readSync(fd, buf, 0, buf.length, 8192);
    fs.closeSync(fd);
    assert.equal(buf.toString("utf8"), uname);

    // --- graceful shutdown (ACPI + logind) well before the forced power-off
    t = Date.now();
    await dom.delete(domIns[0]!.name, domIns[0]!);
    const shutdownMs = Date.now() - t;
    console.log(`      graceful shutdown of dn01: ${shutdownMs} ms`);
    assert.ok(shutdownMs < 100_000, `shutdown took ${shutdownMs} ms: it was forced`);
    assert.doesNotMatch(virshOut("list", "--all", "--name"), /dn01/);
  });
});
