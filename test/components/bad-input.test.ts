/**
 * The bad-input matrix: each bad configuration is refused before any resource
 * is registered, with a message naming the key, the value and the rule. Host
 * facts (a FAM path that is a directory, an unwritable artifact directory) are
 * refused by the providers' check, which preview runs before any change.
 */
import * as assert from "node:assert/strict";
import { Directory, type DirectoryInputs, type DirectoryOutputs } from "../../providers/directory";
import { FamFile, type FamFileInputs, type FamFileOutputs } from "../../providers/famFile";
import { loadSerialized } from "../helpers/engine";
import { runProgramRefused } from "../helpers/mocks";

const CASES: [string, Record<string, string>, Record<string, string>, RegExp][] = [
  // [what, stack config, FAME_* env, expected message]
  [
    "FAM size not a power of two",
    { famSize: "3G" },
    {},
    /fame:famSize = "3G": must be a power of two/,
  ],
  ["FAM size below 1G", { famSize: "512M" }, {}, /fame:famSize = "512M": must be at least 1G/],
  ["FAM size above 1T", { famSize: "2T" }, {}, /fame:famSize = "2T": must be at most 1T/],
  [
    "FAM size not a size",
    { famSize: "big" },
    {},
    /fame:famSize = "big": must be a size such as 16G/,
  ],
  ["zero nodes", { nodes: "0" }, {}, /fame:nodes = "0": must be an integer from 1 to 253/],
  ["254 nodes", { nodes: "254" }, {}, /fame:nodes = "254": must be an integer from 1 to 253/],
  ["fractional nodes", { nodes: "2.5" }, {}, /fame:nodes = "2.5": must be an integer/],
  [
    "DRAM below the minimum",
    { vdram: "786431" },
    {},
    /fame:vdram = "786431": must be an integer number of KiB from 786432/,
  ],
  [
    "DRAM below the minimum from FAME_VDRAM",
    {},
    { FAME_VDRAM: "524288" },
    /fame:vdram = "524288" \(from FAME_VDRAM\)/,
  ],
  ["zero vCPUs", { vcpus: "0" }, {}, /fame:vcpus = "0": must be between 1 and 64/],
  [
    "hostbase too long",
    { hostbase: "ninechars" },
    {},
    /fame:hostbase = "ninechars": must be 1 to 8 characters/,
  ],
  [
    "hostbase not a host name",
    { hostbase: "node_" },
    {},
    /fame:hostbase = "node_": .*a-z, 0-9 and '-'/,
  ],
  [
    "hostbase starting with a digit",
    { hostbase: "4node" },
    {},
    /fame:hostbase = "4node": .*start with a lower-case letter/,
  ],
  [
    "subnet with two octets",
    { octets123: "192.168" },
    {},
    /fame:octets123 = "192.168": must be exactly three dot-separated octets/,
  ],
  [
    "subnet with four octets",
    { octets123: "10.0.0.0" },
    {},
    /fame:octets123 = "10.0.0.0": must be exactly three/,
  ],
  [
    "subnet octet above 255",
    { octets123: "10.300.1" },
    {},
    /fame:octets123 = "10.300.1": .*0..255/,
  ],
  [
    "loopback subnet",
    { octets123: "127.0.1" },
    {},
    /fame:octets123 = "127.0.1": must not be in .*loopback/,
  ],
  [
    "unknown accelerator",
    { accel: "hvf" },
    {},
    /fame:accel = "hvf": must be one of auto, kvm, tcg/,
  ],
  ["relative artifact dir", { dir: "fame" }, {}, /fame:dir = "fame": must be an absolute path/],
  ["relative FAM path", { famPath: "FAM" }, {}, /fame:famPath = "FAM": must be an absolute path/],
  [
    "FAM path ending in /",
    { famPath: "/srv/fame/" },
    {},
    /fame:famPath = "\/srv\/fame\/": must name a file/,
  ],
  [
    "relative FAME-Z socket",
    { famezSocket: "famez.sock" },
    {},
    /fame:famezSocket = "famez.sock": must be an absolute path/,
  ],
  ["root as node user", { user: "root" }, {}, /fame:user = "root": must not be root/],
  [
    "mirror not a URL",
    { mirror: "deb.debian.org" },
    {},
    /fame:mirror = "deb.debian.org": must be an http:\/\/ or https:\/\/ URL/,
  ],
  ["proxy not a URL", { proxy: "proxy:3128" }, {}, /fame:proxy = "proxy:3128": must be an http/],
  [
    "kernel without initrd",
    { kernelPath: "/boot/vmlinuz" },
    {},
    /fame:initrdPath = "": kernelPath and initrdPath must be set together/,
  ],
  [
    "running names a node that does not exist",
    { nodes: "2", running: "node07" },
    {},
    /fame:running = "node07": .*not a node of this cluster/,
  ],
  [
    "shutdown timeout negative",
    { shutdownTimeout: "-1" },
    {},
    /fame:shutdownTimeout = "-1": must be between 0 and 3600/,
  ],
  [
    "boolean that is not one",
    { famDeleteOnDestroy: "sometimes" },
    {},
    /fame:famDeleteOnDestroy = "sometimes": must be true or false/,
  ],
  [
    "libvirt URI without scheme",
    { libvirtUri: "localhost" },
    {},
    /fame:libvirtUri = "localhost": must be a local QEMU URI/,
  ],
  [
    "remote libvirt URI",
    { libvirtUri: "qemu+ssh://root@far/system" },
    {},
    /fame:libvirtUri = "qemu\+ssh:\/\/root@far\/system": must be a local QEMU URI.*remote libvirt is not supported/,
  ],
];

describe("bad input matrix (refused before any change)", function () {
  this.timeout(60_000);
  let refused = 0;
  after(() => console.log(`      ${refused} bad configurations refused`));

  for (const [what, config, env, message] of CASES) {
    it(`refuses ${what}`, async () => {
      const { error, resources } = await runProgramRefused(config, env);
      assert.match(error.message, message);
      assert.match(error.message, /nothing was changed/);
      assert.deepEqual(resources, [], "no resource was registered");
      refused++;
    });
  }

  it("refuses a FAM path that is a directory (provider check, before any change)", async () => {
    const inputs: FamFileInputs = {
      path: "/tmp",
      sizeBytes: 2 ** 30,
      group: "libvirt-qemu",
      mode: 0o660,
      deleteOnDestroy: false,
      allowShrink: false,
      users: { uri: "", domains: [], shutdownTimeoutMs: 0 },
    };
    const { provider } = await loadSerialized<FamFileInputs, FamFileOutputs>(
      () => new FamFile("f", inputs),
    );
    const failures = (await provider.check({}, inputs)).failures ?? [];
    assert.match(
      failures.map((f) => f.reason).join(),
      /FAM path \/tmp exists and is not a regular file/,
    );
    refused++;
  });

  it("refuses an artifact directory that cannot be created (provider check)", async () => {
    const inputs: DirectoryInputs = { path: "/etc/hostname/fame", mode: 0o755 };
    const { provider } = await loadSerialized<DirectoryInputs, DirectoryOutputs>(
      () => new Directory("d", inputs),
    );
    const failures = (await provider.check({}, inputs)).failures ?? [];
    assert.match(
      failures.map((f) => f.reason).join(),
      /cannot create \/etc\/hostname\/fame: \/etc\/hostname is not a directory; choose another fame:dir/,
    );
    refused++;
  });
});
