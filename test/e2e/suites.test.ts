/**
 * End to end, the Debian 13 (trixie) golden image: two real nodes boot from
 * it, log in over SSH with the stack's key, run trixie's kernel and get their
 * address from trixie's DHCP client (dhcpcd, run by ifupdown), and share FAM
 * in both presentations: a marker written by node01 through /dev/fam is read
 * live by node02 and found by the host at the same offset of the FAM file,
 * over IVSHMEM first and, after an in-place switch, over CXL. They boot fame's
 * boot initrd, and systemd checks the root file system (its fsck.ext4 is
 * e2fsprogs', which trixie's minbase lacks). Bookworm nodes share FAM the same way in test/e2e/cxl.test.ts.
 */
import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { type DebianCluster, startDebianCluster } from "../helpers/debianCluster";
import { readAt } from "../helpers/files";
import { RUN_DIR, sandboxUri, scratchDir } from "../helpers/sandbox";

/** Not block-aligned on purpose: hello_fabric must patch inside a block. */
const IVSHMEM_AT = 0x1234567;
const CXL_AT = 0x2345678;
const SIZE = 1073741824;

describe("e2e: Debian trixie nodes share FAM over IVSHMEM and CXL", function () {
  this.timeout(60 * 60_000);
  let dir: string;
  let cluster: DebianCluster | undefined;
  const tag = crypto.randomBytes(6).toString("hex");

  after(async () => {
    if (cluster) {
      fs.mkdirSync(RUN_DIR, { recursive: true });
      fs.writeFileSync(path.join(RUN_DIR, "suites-e2e-consoles.log"), cluster.consoles());
    }
    await cluster?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("boots trixie (its kernel, dhcpcd), logs in, and shares /dev/fam in both modes", async () => {
    dir = scratchDir("suites");
    let t = Date.now();
    cluster = await startDebianCluster({
      uri: sandboxUri(),
      dir,
      owner: "fame/e2e-suites",
      mode: "ivshmem",
      suite: "trixie",
    });
    const c = cluster;
    const both = <T>(f: (i: number) => Promise<T>) => Promise.all([f(0), f(1)]);
    const read = (i: number, at: number, n: number) =>
      c.on(i, `sudo ./hello_fabric read ${at} ${n}`).then((s) => s.trim());
    const shared = async (writer: number, at: number, marker: string) => {
      assert.equal(await read(1 - writer, at, marker.length + 8), "", "nothing there yet");
      await c.on(writer, `sudo ./hello_fabric write ${at} '${marker}'`);
      assert.equal(
        await read(1 - writer, at, marker.length + 8),
        marker,
        "read live on the other node",
      );
      assert.equal(
        readAt(c.famPath, at, marker.length + 1).toString("latin1"),
        `${marker}\0`,
        "the host finds it at the same offset of the FAM file",
      );
    };

    // --- IVSHMEM
    let statuses = await c.ready();
    console.log(
      `      trixie nodes IVSHMEM-ready ${Math.round((Date.now() - t) / 1000)} s after start`,
    );
    for (const s of statuses) {
      assert.match(
        s,
        new RegExp(
          `^OK mode=ivshmem device=/sys/bus/pci/devices/[0-9a-f:.]+/resource2 size=${SIZE}$`,
        ),
      );
    }
    for (const [i, node] of c.plan.nodes.entries()) {
      const facts = await c.on(
        i,
        [
          ". /etc/os-release && echo $VERSION_CODENAME",
          "uname -r",
          "cat /proc/sys/kernel/hostname",
          "id -un",
          // ifupdown ran dhcpcd (isc-dhcp-client is not installed); the address is the plan's.
          "sudo sh -c 'for p in /proc/[0-9]*/exe; do readlink $p; done' | grep -c '/dhcpcd$'",
          "command -v dhclient || echo no-dhclient",
          "ip -4 -o addr show dev eth0 | grep -o 'inet [0-9./]*'",
          "readlink /dev/fam",
        ].join("; "),
      );
      const [codename, kernel, host, user, dhcpcds, dhclient, addr, fam] = facts.trim().split("\n");
      assert.equal(codename, "trixie");
      assert.match(kernel ?? "", /^6\.12\./, "trixie's kernel");
      assert.equal(host, node.name);
      assert.equal(user, c.user);
      assert.ok(Number(dhcpcds) >= 1, `dhcpcd runs (${dhcpcds})`);
      assert.equal(dhclient, "no-dhclient");
      assert.equal(addr, `inet ${node.ip}/24`);
      assert.match(fam ?? "", /^\/sys\/bus\/pci\/devices\/.+\/resource2$/);
      // fame's boot initrd (lib/bootinitrd) mounted the root read-only with the drivers it holds;
      // systemd checked it with trixie's fsck.ext4 (e2fsprogs, not in minbase) and remounted it rw.
      assert.match(
        c.consoleLog(i),
        /fame-init: root \/dev\/vda mounted read-only \(loaded:.* virtio_blk .*ext4/,
      );
      const [fsck, rootOpts, cmdline, mods, run, loopUnit, failed, loopDev] = (
        await c.on(
          i,
          [
            "sudo journalctl -b -o cat -u systemd-fsck-root --no-pager | grep -E 'clean|error' || echo no-fsck",
            "findmnt -no OPTIONS /",
            "cat /proc/cmdline",
            // One line (tr would leave no newline before the next command's output).
            "echo $(lsmod | tail -n +2 | cut -d' ' -f1 | sort)",
            "findmnt -no FSTYPE,OPTIONS /run",
            "systemctl is-enabled modprobe@loop.service || true",
            "echo failed: $(systemctl --failed --no-legend --plain | cut -d' ' -f1)",
            "sudo losetup -f",
          ].join("; "),
        )
      ).split("\n");
      assert.match(fsck ?? "", /^fameroot: clean, /, "systemd-fsck-root checked the root");
      assert.match(rootOpts ?? "", /^rw,/);
      assert.match(cmdline ?? "", / modprobe\.blacklist=floppy,/);
      // The board drivers, the radio stack and the vsock drivers systemd-ssh-generator's probe
      // loaded (masked) stay out; the power button's (a graceful ACPI shutdown) is in.
      assert.doesNotMatch(mods ?? "", /\b(floppy|psmouse|ata_piix|kvm|cfg80211|vsock|vmw_vmci)\b/);
      assert.match(mods ?? "", /\bevdev\b/);
      // v2's /init mounted /run with this boot's masks; what they skip still loads on use.
      assert.match(run ?? "", /^tmpfs +rw,nosuid,nodev,/);
      assert.equal(loopUnit, "masked-runtime");
      assert.equal(failed, "failed:", "no unit failed");
      assert.match(loopDev ?? "", /^\/dev\/loop\d+$/, "loop loads when first used");
    }
    await both((i) => c.on(i, "gcc -O2 -o hello_fabric /usr/local/share/fame/hello_fabric.c"));
    // Over IVSHMEM hello_fabric maps BAR2 (as the original's); over CXL it uses /dev/fam.
    assert.match(
      (await c.on(0, "sudo ./hello_fabric info")).trim(),
      new RegExp(`^bdf=0000:[0-9a-f:.]+ bar2_size=${SIZE}$`),
    );
    const overIvshmem = `trixie ivshmem dn01 ${tag}`;
    await shared(0, IVSHMEM_AT, overIvshmem);

    // --- switch to CXL: an in-place update that restarts the nodes on the same disks
    t = Date.now();
    await c.switchMode("cxl");
    statuses = await c.ready();
    console.log(`      switched to CXL, ready ${Math.round((Date.now() - t) / 1000)} s`);
    for (const s of statuses) {
      assert.match(
        s,
        new RegExp(`^OK mode=cxl device=/dev/pmem\\d+ region=region\\d+ size=${SIZE}$`),
      );
    }
    assert.deepEqual(
      await both((i) => read(i, IVSHMEM_AT, overIvshmem.length + 8)),
      [overIvshmem, overIvshmem],
      "the IVSHMEM marker, read through CXL on both nodes",
    );
    await shared(1, CXL_AT, `trixie cxl dn02 ${tag}`);
    assert.equal(
      (await c.on(0, "sudo ./hello_fabric info")).trim(),
      `device=/dev/fam size=${SIZE}`,
    );
    assert.match((await c.on(0, "uname -r")).trim(), /^6\.12\./);
  });
});
