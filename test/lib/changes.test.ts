import * as assert from "node:assert/strict";
import { BOOT_INITRD_FILE } from "../../lib/bootinitrd";
import { BOOT_KERNEL_FILE } from "../../lib/bootkernel";
import {
  type AppliedConfig,
  appliedConfig,
  describeChanges,
  type OptIns,
  parseApplied,
} from "../../lib/changes";
import { GiB } from "../../lib/units";

const base: AppliedConfig = {
  nodes: 4,
  running: [1, 2, 3, 4],
  famPath: "/srv/FAM",
  famSizeBytes: 16 * GiB,
  famMode: "ivshmem",
  vcpus: 2,
  vdramKiB: 786432,
  accel: "auto",
  famezSocket: "",
  kernelPath: "",
  initrdPath: "",
  cmdline: "",
  hostbase: "node",
  octets123: "192.168.42",
  libvirtUri: "qemu:///system",
  imageKey: "abc",
  owner: "fame/dev",
};
const say = (
  prev: AppliedConfig | undefined,
  next: Partial<AppliedConfig>,
  shrink = false,
  famFileBytes: number | undefined = prev?.famSizeBytes,
  optIns: OptIns = {},
) => describeChanges(prev, { ...base, ...next }, shrink, famFileBytes, optIns);

describe("change report (what preview says before anything happens)", () => {
  it("describes a first deployment", () => {
    assert.match(
      say(undefined, {}).info.join(),
      /creating a cluster of 4 node\(s\) with 16G of FAM/,
    );
  });

  it("says nothing changes when nothing changed", () => {
    assert.deepEqual(say(base, {}), {
      info: ["no change to the cluster"],
      warnings: [],
      errors: [],
    });
  });

  it("growing FAM restarts every node and keeps every byte", () => {
    const r = say(base, { famSizeBytes: 32 * GiB });
    assert.match(
      r.info.join(),
      /FAM grows from 16G to 32G: every node is stopped.*all existing bytes kept/,
    );
    assert.deepEqual(r.warnings, []);
  });

  it("judges growth and shrinking from the FAM file, so a stale record cannot block a change", () => {
    // The record says 32G, the file holds 16G: asking for 16G is no shrink.
    const stale = say(
      { ...base, famSizeBytes: 32 * GiB },
      { famSizeBytes: 16 * GiB },
      false,
      16 * GiB,
    );
    assert.deepEqual(stale.errors, []);
    // No record at all, but the file holds 32G: 16G would cut data.
    assert.match(say(undefined, {}, false, 32 * GiB).errors.join(), /would cut 16G/);
    // No file yet: nothing to cut or grow.
    assert.deepEqual(describeChanges(base, { ...base, famSizeBytes: 8 * GiB }, false).errors, []);
  });

  it("reads only a whole, well-typed record of this stack", () => {
    const text = JSON.stringify(base);
    assert.deepEqual(parseApplied(text, "fame/dev"), { applied: base });
    assert.match(
      String((parseApplied("{not json", "fame/dev") as { problem: string }).problem),
      /not JSON/,
    );
    assert.match(
      (parseApplied(JSON.stringify({ ...base, nodes: "4" }), "fame/dev") as { problem: string })
        .problem,
      /field nodes is missing or of the wrong type/,
    );
    const { running: _r, ...partial } = base;
    assert.match(
      (parseApplied(JSON.stringify(partial), "fame/dev") as { problem: string }).problem,
      /field running/,
    );
    assert.match(
      (parseApplied(text, "fame/prod") as { problem: string }).problem,
      /written by stack fame\/dev, not fame\/prod/,
    );
    assert.match(
      (parseApplied("[]", "fame/dev") as { problem: string }).problem,
      /not a JSON object/,
    );
  });

  it("shrinking FAM is refused with the amount of data it would cut, unless opted in", () => {
    const refused = say(base, { famSizeBytes: 8 * GiB });
    assert.match(
      refused.errors.join(),
      /would cut 8G \(8589934592 bytes\) of FAM data; set fame:famAllowShrink true/,
    );
    const allowed = say(base, { famSizeBytes: 8 * GiB }, true);
    assert.deepEqual(allowed.errors, []);
    assert.match(allowed.warnings.join(), /the last 8G \(8589934592 bytes\) of FAM data are cut/);
  });

  it("adding and removing nodes names exactly those nodes and says the rest stay untouched", () => {
    assert.match(
      say(base, { nodes: 6, running: [1, 2, 3, 4, 5, 6] }).info.join(),
      /adding node05, node06; the other nodes keep running untouched/,
    );
    const removed = say(base, { nodes: 2, running: [1, 2] });
    assert.match(removed.warnings.join(), /removing node03, node04 with their disks/);
    assert.deepEqual(removed.errors, []);
    assert.match(
      say({ ...base, nodes: 1, running: [1] }, { nodes: 40 }).info.join(),
      /adding node02..node40 \(39 nodes\)/,
    );
  });

  it("switching the FAM presentation restarts the nodes and keeps disks and FAM", () => {
    const r = say(base, { famMode: "cxl" });
    assert.match(
      r.info.join(),
      /node01, node02, node03, node04 restart to apply FAM mode ivshmem -> cxl \(disks and FAM kept\)/,
    );
    assert.deepEqual(r.warnings, []);
    // applied.json written before fame:famMode existed: that cluster was IVSHMEM
    const { famMode: _m, ...old } = base;
    assert.match(say(old as AppliedConfig, { famMode: "cxl" }).info.join(), /ivshmem -> cxl/);
    assert.deepEqual(say(old as AppliedConfig, {}).info, ["no change to the cluster"]);
  });

  it("turning FAM preallocation on or off restarts the nodes; a record from before the key means off", () => {
    assert.match(
      say(base, { famPrealloc: true }).info.join(),
      /node01, node02, node03, node04 restart to apply FAM preallocation off -> on \(disks and FAM kept\)/,
    );
    assert.match(
      say({ ...base, famPrealloc: true }, { famPrealloc: false }).info.join(),
      /FAM preallocation on -> off/,
    );
    const { famPrealloc: _p, ...old } = { ...base, famPrealloc: false };
    assert.deepEqual(say(old as AppliedConfig, { famPrealloc: false }).info, [
      "no change to the cluster",
    ]);
    assert.match(
      (
        parseApplied(JSON.stringify({ ...base, famPrealloc: "yes" }), "fame/dev") as {
          problem: string;
        }
      ).problem,
      /field famPrealloc is of the wrong type/,
    );
  });

  it("names the nodes that restart and why, and nothing for a pure count change", () => {
    const r = say(base, { vcpus: 4, vdramKiB: 1048576 });
    assert.match(
      r.info.join(),
      /node01, node02, node03, node04 restart to apply vcpus 2 -> 4, vdram KiB 786432 -> 1048576/,
    );
    assert.doesNotMatch(say(base, { nodes: 5, running: [1, 2, 3, 4, 5] }).info.join(), /restart/);
  });

  it("says the nodes restart on their disks when fame's own kernel arguments change, also against a record from before they were recorded", () => {
    const before = "root=/dev/vda rw console=ttyS0 net.ifnames=0";
    const now = `${before} mitigations=off`;
    const config = { ...base, suite: "bookworm" } as unknown as Parameters<typeof appliedConfig>[0];
    assert.equal(appliedConfig(config, "k", "fame/dev", now, false).bootArgs, now);
    // base has no bootArgs (and no suite): it booted what fame booted before, bookworm, IVSHMEM.
    const upgraded = say(base, { bootArgs: now });
    assert.deepEqual(upgraded.info, [
      "node01, node02, node03, node04 restart to apply fame's kernel arguments (+mitigations=off) (disks and FAM kept)",
    ]);
    assert.deepEqual(upgraded.warnings, [], "no disk is replaced");
    assert.deepEqual(say({ ...base, bootArgs: now }, { bootArgs: now }).info, [
      "no change to the cluster",
    ]);
    // A trixie CXL record without bootArgs had CXL's two arguments: only the new one is a change.
    const cxl = { ...base, suite: "trixie" as const, famMode: "cxl" as const };
    assert.match(
      say(cxl, {
        ...cxl,
        bootArgs: `${before} pcie_ports=compat clearcpuid=hypervisor mitigations=off`,
      }).info.join(),
      /restart to apply fame's kernel arguments \(\+mitigations=off\)/,
    );
    // fame:lfsFuse 3 (lib/lfs lfsBootArgs) is one such argument: a restart, no disk replaced.
    const fuse3 = say({ ...base, bootArgs: now }, { bootArgs: `${now} fame.lfs_fuse=3` });
    assert.match(
      fuse3.info.join(),
      /restart to apply fame's kernel arguments \(\+fame\.lfs_fuse=3\)/,
    );
    assert.deepEqual(fuse3.warnings, []);
    // Back under KVM (fame:accel), the argument goes: said as well.
    assert.match(
      say({ ...base, bootArgs: now }, { accel: "kvm", bootArgs: before }).info.join(),
      /restart to apply accel auto -> kvm, fame's kernel arguments \(-mitigations=off\)/,
    );
    assert.match(
      (parseApplied(JSON.stringify({ ...base, bootArgs: 1 }), "fame/dev") as { problem: string })
        .problem,
      /field bootArgs is of the wrong type/,
    );
    assert.deepEqual(parseApplied(JSON.stringify({ ...base, bootArgs: now }), "fame/dev"), {
      applied: { ...base, bootArgs: now },
    });
  });

  it("says the nodes restart on their disks to boot fame's boot initrd, also against a record from before it existed", () => {
    const config = { ...base, suite: "bookworm" } as unknown as Parameters<typeof appliedConfig>[0];
    assert.equal(appliedConfig(config, "k", "fame/dev", "a", true).bootInitrd, BOOT_INITRD_FILE);
    assert.equal(appliedConfig(config, "k", "fame/dev", "a", false).bootInitrd, "");
    // base has no bootInitrd: its nodes booted the image's initrd.
    const upgraded = say(base, { bootInitrd: BOOT_INITRD_FILE });
    assert.deepEqual(upgraded.info, [
      `node01, node02, node03, node04 restart to apply fame's boot initrd (the image's -> fame's own (${BOOT_INITRD_FILE})) (disks and FAM kept)`,
    ]);
    assert.deepEqual(upgraded.warnings, [], "no disk is replaced");
    assert.deepEqual(say(base, { bootInitrd: "" }).info, ["no change to the cluster"]);
    // A new version of it (v1 had no /run masks) restarts the nodes onto the new file.
    assert.deepEqual(
      say({ ...base, bootInitrd: "fame-initrd-v1.img" }, { bootInitrd: BOOT_INITRD_FILE }).info,
      [
        `node01, node02, node03, node04 restart to apply fame's boot initrd (fame's own (fame-initrd-v1.img) -> fame's own (${BOOT_INITRD_FILE})) (disks and FAM kept)`,
      ],
    );
    assert.match(
      say({ ...base, bootInitrd: BOOT_INITRD_FILE }, { accel: "kvm", bootInitrd: "" }).info.join(),
      /restart to apply accel auto -> kvm, fame's boot initrd \(fame's own \(fame-initrd-v\d+\.img\) -> the image's\)/,
    );
    assert.match(
      (parseApplied(JSON.stringify({ ...base, bootInitrd: 2 }), "fame/dev") as { problem: string })
        .problem,
      /field bootInitrd is of the wrong type/,
    );
  });

  it("says the nodes restart on their disks to boot fame's boot kernel, also against a record from before it existed", () => {
    const config = { ...base, suite: "bookworm" } as unknown as Parameters<typeof appliedConfig>[0];
    assert.equal(appliedConfig(config, "k", "fame/dev", "a", true).bootKernel, BOOT_KERNEL_FILE);
    assert.equal(appliedConfig(config, "k", "fame/dev", "a", false).bootKernel, "");
    // A record of the fame before it (bootInitrd, no bootKernel): only the kernel is new.
    const prev = { ...base, bootInitrd: BOOT_INITRD_FILE };
    const upgraded = say(prev, { bootInitrd: BOOT_INITRD_FILE, bootKernel: BOOT_KERNEL_FILE });
    assert.deepEqual(upgraded.info, [
      `node01, node02, node03, node04 restart to apply fame's boot kernel (the image's vmlinuz -> fame's unpacked one (${BOOT_KERNEL_FILE})) (disks and FAM kept)`,
    ]);
    assert.deepEqual(upgraded.warnings, [], "no disk is replaced");
    assert.deepEqual(say(prev, { bootInitrd: BOOT_INITRD_FILE, bootKernel: "" }).info, [
      "no change to the cluster",
    ]);
    assert.match(
      say(
        { ...prev, bootKernel: BOOT_KERNEL_FILE },
        { accel: "kvm", bootInitrd: "", bootKernel: "" },
      ).info.join(),
      /fame's boot kernel \(fame's unpacked one \(fame-vmlinux-v\d+\) -> the image's vmlinuz\)/,
    );
    assert.match(
      (parseApplied(JSON.stringify({ ...base, bootKernel: 1 }), "fame/dev") as { problem: string })
        .problem,
      /field bootKernel is of the wrong type/,
    );
  });

  it("warns that new golden image inputs replace every node disk", () => {
    assert.match(say(base, { imageKey: "def" }).warnings.join(), /every node's disk is replaced/);
  });

  it("records the Debian release, reads a record without one (written before fame:suite), and names a release change", () => {
    const config = {
      ...base,
      suite: "trixie",
      famDeleteOnDestroy: false,
    } as unknown as Parameters<typeof appliedConfig>[0];
    assert.equal(appliedConfig(config, "k", "fame/dev", "root=/dev/vda", false).suite, "trixie");
    // base has no suite: an applied.json of every stack before this key
    assert.deepEqual(parseApplied(JSON.stringify(base), "fame/dev"), { applied: base });
    const trixie = { ...base, suite: "trixie" as const };
    assert.deepEqual(parseApplied(JSON.stringify(trixie), "fame/dev"), { applied: trixie });
    assert.match(
      (parseApplied(JSON.stringify({ ...base, suite: "sid" }), "fame/dev") as { problem: string })
        .problem,
      /field suite is not one of bookworm, trixie/,
    );
    // An old record (bookworm) upgraded to trixie: the release is named with the disk replacement.
    const upgrade = say(base, { suite: "trixie", imageKey: "def" }).warnings.join();
    assert.match(upgrade, /the Debian release: bookworm -> trixie.*every node's disk is replaced/);
    // Old record, bookworm kept: the same image key, so nothing changes.
    assert.deepEqual(say(base, { suite: "bookworm" }).info, ["no change to the cluster"]);
    assert.doesNotMatch(
      say(trixie, { suite: "trixie", imageKey: "def" }).warnings.join(),
      /Debian release/,
    );
  });

  it("reports nodes being stopped and started by fame:running", () => {
    const r = say(base, { running: [1, 3] });
    assert.match(r.info.join(), /shutting down node02, node04 \(disks and FAM kept/);
    assert.match(
      say({ ...base, running: [] }, {}).info.join(),
      /starting node01, node02, node03, node04/,
    );
  });

  it("says a new hostbase renames the nodes, replacing network and domains, every disk kept", () => {
    const r = say(base, { hostbase: "tm" });
    assert.deepEqual(r.warnings, [], "nothing on the nodes' disks is at risk");
    assert.match(
      r.info.join("\n"),
      /the nodes are renamed node01, node02, node03, node04 -> tm01, tm02, tm03, tm04: the network and every node's domain are replaced \(each node restarts, with a new seed disk\); every node keeps its disk and what it wrote there, and FAM is kept/,
    );
    assert.doesNotMatch(r.info.join("\n"), / restart to apply /, "the restart is said once");
    // Nodes added or removed at the same time are named with the new hostbase.
    const grown = say(base, { hostbase: "tm", nodes: 5 });
    assert.match(
      grown.info.join("\n"),
      /renamed node01, node02, node03, node04 -> tm01, tm02, tm03, tm04/,
    );
    assert.match(grown.info.join("\n"), /adding tm05/);
    assert.match(
      say(base, { hostbase: "tm", nodes: 2 }).warnings.join(),
      /removing tm03, tm04 with their disks/,
    );
  });

  it("says a new libvirt URI moves the domains there, every disk kept", () => {
    const r = say(base, { libvirtUri: "qemu+ssh://h/system" });
    assert.deepEqual(r.warnings, []);
    assert.match(
      r.info.join("\n"),
      /the nodes move from libvirt qemu:\/\/\/system to qemu\+ssh:\/\/h\/system: the network and every node's domain are replaced .*every node keeps its disk/,
    );
  });

  it("says a new subnet replaces the network and restarts the nodes, keeping their disks", () => {
    const r = say(base, { octets123: "10.0.0" });
    assert.deepEqual(r.warnings, [], "nothing on the nodes' disks is at risk");
    assert.match(
      r.info.join("\n"),
      /subnet changes from 192.168.42.0\/24 to 10.0.0.0\/24: the network is replaced/,
    );
    assert.match(
      r.info.join("\n"),
      /node01, node02, node03, node04 restart to apply subnet 192.168.42 -> 10.0.0 \(disks and FAM kept\)/,
    );
  });

  it("says a new node user restarts the nodes (set up from the seed), disks kept; an older record has none", () => {
    const r = say({ ...base, user: "l4mdc" }, { user: "dev" });
    assert.deepEqual(r.warnings, []);
    assert.match(r.info.join(), /restart to apply user l4mdc -> dev \(disks and FAM kept\)/);
    assert.deepEqual(say(base, { user: "dev" }).info, ["no change to the cluster"]);
    const { user: _u, ...old } = { ...base, user: "x" };
    assert.ok("applied" in parseApplied(JSON.stringify(old), base.owner));
    assert.match(
      JSON.stringify(parseApplied(JSON.stringify({ ...base, user: 3 }), base.owner)),
      /field user is of the wrong type/,
    );
  });

  it("a FAM path change says the old file is kept where it is, and what nodes map instead", () => {
    // No file at the new path yet (an explicit undefined would take say's default).
    const moved = describeChanges(base, { ...base, famPath: "/data/FAM" }, false);
    assert.match(
      moved.warnings.join(),
      /FAM moves from \/srv\/FAM to \/data\/FAM: nodes map a new empty file of 16G and no longer see the old FAM data; the old file is kept at \/srv\/FAM with its data \(a path change never deletes a FAM file, also not with fame:famDeleteOnDestroy/,
    );
    assert.match(
      say(base, { famPath: "/data/FAM" }, false, 16 * GiB).warnings.join(),
      /nodes map the file already there, adopted as it is/,
    );
    // Said also when the network identity changes at the same time.
    assert.match(
      say(base, { famPath: "/data/FAM", hostbase: "n" }).warnings.join(),
      /the old file is kept at \/srv\/FAM/,
    );
  });

  it("warns while fame:famAllowShrink stays true after the shrink it allowed", () => {
    const armed =
      /fame:famAllowShrink is still true: the next smaller fame:famSize will cut FAM data without asking; set it back to false \(pulumi config set fame:famAllowShrink false\)/;
    // The shrink itself says so once it is done.
    const shrinking = say(base, { famSizeBytes: 8 * GiB }, true);
    assert.match(shrinking.warnings.join(), /are cut .* afterwards set it back to false/);
    assert.doesNotMatch(shrinking.warnings.join(), armed);
    // Every later preview, with nothing to shrink, while the key is true.
    const after = say({ ...base, famSizeBytes: 8 * GiB }, { famSizeBytes: 8 * GiB }, true);
    assert.match(after.warnings.join(), armed);
    assert.deepEqual(after.info, ["no change to the cluster"]);
    assert.match(say(base, { famSizeBytes: 32 * GiB }, true).warnings.join(), armed);
    assert.match(describeChanges(undefined, base, true).warnings.join(), armed);
    assert.doesNotMatch(say(base, {}, false).warnings.join(), /still true/);
  });

  it("warns while fame:librarianReset stays true, and says when it rebuilds the database", () => {
    const armed =
      /fame:librarianReset is still true: the next fame:nodes or fame:famSize change that needs a new Librarian database will rebuild it without asking, losing every file under \/lfs; set it back to false \(pulumi config set fame:librarianReset false\)/;
    const rebuild = say(base, { nodes: 8 }, false, 16 * GiB, {
      librarianReset: true,
      librarianRebuild: true,
    });
    assert.match(
      rebuild.warnings.join(),
      /the Librarian database is rebuilt for 8 node\(s\) and 16G of FAM: every file under \/lfs is lost .*afterwards set it back to false/,
    );
    assert.doesNotMatch(rebuild.warnings.join(), armed);
    const after = say(base, {}, false, 16 * GiB, { librarianReset: true, librarianRebuild: false });
    assert.match(after.warnings.join(), armed);
    assert.deepEqual(after.info, ["no change to the cluster"]);
    assert.doesNotMatch(
      say(base, {}, false, 16 * GiB, { librarianReset: false }).warnings.join(),
      /librarianReset/,
    );
  });
});
