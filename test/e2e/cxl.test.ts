/**
 * End to end, FAM as CXL memory: two real Debian nodes from the golden image
 * see the FAM file as a CXL type-3 persistent-memory device (q35, cxl=on),
 * brought up at boot by the image's fame-fam unit as /dev/fam. A marker
 * written by node01 is read live by node02 and found by the host at the same
 * offset of the file; it survives a reboot of both nodes; switching the
 * cluster to IVSHMEM and back (in-place domain updates) keeps a random FAM
 * sentinel byte-identical, and the same hello_fabric commands work in both.
 * The image holds nothing of the stack: each node's user (not the default),
 * its sudo rule and /etc/hosts come from its seed disk at boot, and stay
 * (with the user's home and the node's own host keys) across reboots.
 */
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { type DebianCluster, startDebianCluster } from "../helpers/debianCluster";
import { readAt } from "../helpers/files";
import { RUN_DIR, sandboxUri, scratchDir } from "../helpers/sandbox";

const MiB = 2 ** 20;
const SENTINEL_OFFSET = 768 * MiB;
const SENTINEL_BYTES = MiB;
/** Not block-aligned on purpose: hello_fabric must patch inside a block. */
const MARKER_OFFSET = 0x2345678;

const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

function fileSha(file: string): string {
  const h = crypto.createHash("sha256");
  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(16 * MiB);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

describe("e2e: FAM as CXL memory on Debian nodes", function () {
  this.timeout(60 * 60_000);
  let dir: string;
  let cluster: DebianCluster | undefined;
  const sentinel = crypto.randomBytes(SENTINEL_BYTES);
  const marker = `cxl marker from dn01 ${crypto.randomBytes(6).toString("hex")}`;

  after(async () => {
    try {
      // The consoles outlive the scratch directory, for a look after a failure.
      if (cluster) {
        fs.mkdirSync(RUN_DIR, { recursive: true });
        fs.writeFileSync(path.join(RUN_DIR, "cxl-e2e-consoles.log"), cluster.consoles());
      }
    } finally {
      await cluster?.destroy();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("shares /dev/fam live between nodes and with the host, across reboots and mode switches", async () => {
    const uri = sandboxUri();
    dir = scratchDir("cxl");
    let famShaBeforeBoot = "";
    let t = Date.now();
    cluster = await startDebianCluster({
      uri,
      dir,
      owner: "fame/e2e-cxl",
      mode: "cxl",
      beforeBoot: (famPath) => {
        const fd = fs.openSync(famPath, "r+");
        fs.writeSync(fd, sentinel, 0, sentinel.length, SENTINEL_OFFSET);
        fs.closeSync(fd);
        famShaBeforeBoot = fileSha(famPath);
      },
    });
    const c = cluster;
    const fam = c.famPath;
    const sentinelIntact = () =>
      assert.equal(sha(readAt(fam, SENTINEL_OFFSET, SENTINEL_BYTES)), sha(sentinel));
    // The node reads the sentinel through its own device at the same offset (O_DIRECT: no stale cache).
    const sentinelOnNode = async (i: number) =>
      (
        await c.on(
          i,
          `sudo dd if=/dev/fam bs=4096 skip=${SENTINEL_OFFSET / 4096} count=${SENTINEL_BYTES / 4096} iflag=direct status=none | sha256sum`,
        )
      ).split(" ")[0];
    const bootIds = async () =>
      Promise.all(c.plan.nodes.map((_, i) => c.on(i, "cat /proc/sys/kernel/random/boot_id")));
    const readMarker = (i: number) =>
      c
        .on(i, `sudo ./hello_fabric read ${MARKER_OFFSET} ${marker.length + 8}`)
        .then((s) => s.trim());
    const CXL_STATUS = /^OK mode=cxl device=\/dev\/pmem\d+ region=region\d+ size=1073741824$/;

    // --- CXL: both nodes bring the region and a raw namespace up at boot
    let statuses = await c.ready();
    console.log(`      both nodes CXL-ready ${Math.round((Date.now() - t) / 1000)} s after start`);
    for (const s of statuses) assert.match(s, CXL_STATUS);
    assert.equal(fileSha(fam), famShaBeforeBoot, "bringing CXL up wrote nothing into the FAM file");
    assert.match((await c.on(0, "readlink /dev/fam")).trim(), /^\/dev\/pmem\d+$/);
    assert.equal(await sentinelOnNode(1), sha(sentinel), "host offset X is node offset X");
    const nsUuid = (i: number) =>
      c.on(i, 'sudo ndctl list -N | grep -o \'"uuid":"[^"]*"\'').then((s) => s.trim());
    const uuidsBefore = [await nsUuid(0), await nsUuid(1)];
    assert.match(uuidsBefore[0] ?? "", /"uuid":"[0-9a-f-]{36}"/, "a labelled namespace in the LSA");

    // --- the stack's identity, from the seed disk: user, sudo, names, node-to-node SSH
    const [n1, n2] = c.plan.nodes;
    assert.equal((await c.on(0, "id -un")).trim(), c.user);
    assert.equal((await c.on(0, "hostname")).trim(), n1?.name);
    assert.equal((await c.on(1, "sudo -n id -u")).trim(), "0");
    assert.equal((await c.on(0, "cat /etc/fame/user")).trim(), c.user);
    const names = await c.on(0, `getent hosts torms ${n2?.name}`);
    assert.match(
      names,
      new RegExp(`^${c.plan.network.tormsIp.replaceAll(".", "\\.")}\\s+torms$`, "m"),
    );
    assert.match(names, new RegExp(`^${n2?.ip.replaceAll(".", "\\.")}\\s+${n2?.name}$`, "m"));
    assert.equal(
      (await c.on(0, `ssh -o BatchMode=yes ${n2?.name} hostname`)).trim(),
      n2?.name,
      "node01 reaches node02 by name with the stack's key",
    );
    for (const d of c.domains) {
      assert.match(
        fs.readFileSync(d.consoleLog, "utf8"),
        new RegExp(`fame-seed: user ${c.user}, names and credentials installed`),
        `${d.name}'s serial console log shows the seed applied`,
      );
    }
    const hostKeys = async () =>
      Promise.all(c.plan.nodes.map((_, i) => c.on(i, "cat /etc/ssh/ssh_host_ed25519_key.pub")));
    const keysBefore = await hostKeys();
    assert.notEqual(keysBefore[0], keysBefore[1], "each node made its own host key");
    await c.on(0, "echo mine > home-kept");

    // --- node01 writes a marker through /dev/fam; node02 reads it live; the host finds it
    const build = "gcc -O2 -o hello_fabric /usr/local/share/fame/hello_fabric.c";
    await Promise.all([c.on(0, build), c.on(1, build)]);
    assert.equal(
      (await c.on(0, "sudo ./hello_fabric info")).trim(),
      "device=/dev/fam size=1073741824",
    );
    assert.equal(await readMarker(1), "", "nothing at the marker offset yet");
    await c.on(0, `sudo ./hello_fabric write ${MARKER_OFFSET} '${marker}'`);
    assert.equal(await readMarker(1), marker, "node02 reads node01's write live");
    assert.equal(
      readAt(fam, MARKER_OFFSET, marker.length + 1).toString("latin1"),
      `${marker}\0`,
      "the host finds the marker at the same offset of the FAM file",
    );
    sentinelIntact();

    // --- both nodes reboot: region and namespace come back from the LSA, the marker is there
    const ids = await bootIds();
    t = Date.now();
    await Promise.all(
      c.plan.nodes.map((_, i) =>
        c.on(
          i,
          "sudo systemd-run --on-active=1 --timer-property=AccuracySec=100ms systemctl reboot",
        ),
      ),
    );
    for (;;) {
      await new Promise((r) => setTimeout(r, 5000));
      const now = await bootIds().catch(() => ids);
      if (now.every((id, i) => id !== ids[i])) break;
      if (Date.now() - t > 600_000) throw new Error(`nodes did not reboot\n${c.consoles()}`);
    }
    statuses = await c.ready();
    console.log(`      both nodes rebooted, CXL-ready ${Math.round((Date.now() - t) / 1000)} s`);
    for (const s of statuses) assert.match(s, CXL_STATUS);
    assert.deepEqual(
      [await nsUuid(0), await nsUuid(1)],
      uuidsBefore,
      "each node's namespace label survived the reboot (nonzero serial)",
    );
    assert.equal(await readMarker(1), marker);
    assert.equal(await readMarker(0), marker);
    sentinelIntact();
    // the seed ran again: the same user with its home, the node's own host keys kept
    assert.equal((await c.on(0, "cat home-kept")).trim(), "mine");
    assert.deepEqual(await hostKeys(), keysBefore);
    assert.equal((await c.on(1, "sudo -n id -u")).trim(), "0");

    // --- switch to IVSHMEM: an in-place update that restarts the nodes; same commands, same bytes
    await c.on(0, "echo kept > disk-kept");
    t = Date.now();
    await c.switchMode("ivshmem");
    statuses = await c.ready();
    console.log(`      switched to IVSHMEM, ready ${Math.round((Date.now() - t) / 1000)} s`);
    for (const s of statuses) {
      assert.match(
        s,
        /^OK mode=ivshmem device=\/sys\/bus\/pci\/devices\/[0-9a-f:.]+\/resource2 size=1073741824$/,
      );
    }
    assert.equal((await c.on(0, "cat disk-kept")).trim(), "kept", "the node's disk was kept");
    // the update stopped each node gracefully (ACPI), not by a forced power-off
    for (const d of c.domains) {
      assert.match(fs.readFileSync(d.consoleLog, "utf8"), /reboot: Power down/, d.name);
    }
    assert.equal(await readMarker(1), marker, "same hello_fabric command over IVSHMEM");
    assert.equal(await readMarker(0), marker);
    sentinelIntact();
    for (const l of c.lsaInputs) assert.equal(fs.existsSync(l.path), false, "LSA gone with CXL");

    // --- and back to CXL: a fresh LSA, a new raw namespace, the same bytes at the same offsets
    t = Date.now();
    await c.switchMode("cxl");
    statuses = await c.ready();
    console.log(`      switched back to CXL, ready ${Math.round((Date.now() - t) / 1000)} s`);
    for (const s of statuses) assert.match(s, CXL_STATUS);
    assert.equal(await readMarker(1), marker);
    assert.equal(await readMarker(0), marker);
    assert.equal(await sentinelOnNode(0), sha(sentinel));
    sentinelIntact();
    assert.equal((await c.on(1, "test -x hello_fabric && echo yes")).trim(), "yes");
  });
});
