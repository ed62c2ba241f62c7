import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { BOOT_INITRD_FILE, BOOT_INITRD_VERSION } from "../../lib/bootinitrd";
import { BOOT_KERNEL_FILE, BOOT_KERNEL_VERSION } from "../../lib/bootkernel";
import type { ProgramHostFacts } from "../../lib/host/hostfacts";
import { sessionQemuUser, systemQemuUser } from "../../lib/host/reach";
import { hostsFile, TCG_CMDLINE } from "../../lib/image";
import { seedSerial } from "../../lib/outputs";
import { GiB } from "../../lib/units";
import type { ArtifactFileArgs } from "../../providers/artifactFile";
import { runProgram, runProgramRefused, TEST_HOST } from "../helpers/mocks";
import { scratchDir } from "../helpers/sandbox";

const T = (t: string) => `pulumi-nodejs:dynamic/fame:${t}`;

/** What fame adds to the kernel command line under TCG. */
const TCG = TCG_CMDLINE.join(" ");

describe("program under mocks", function () {
  this.timeout(120_000);

  for (const scenario of [
    { nodes: 3, hostbase: "node", octets: "192.168.42", famSize: "16G", bytes: 16 * GiB },
    { nodes: 5, hostbase: "tm", octets: "10.77.1", famSize: "2G", bytes: 2 * GiB },
    { nodes: 1, hostbase: "abcdefgh", octets: "172.20.0", famSize: "1G", bytes: GiB },
  ]) {
    it(`registers one FAM, one network with ${scenario.nodes} hosts and ${scenario.nodes} nodes sharing the FAM`, async () => {
      const run = await runProgram({
        nodes: String(scenario.nodes),
        hostbase: scenario.hostbase,
        octets123: scenario.octets,
        famSize: scenario.famSize,
        dir: "/srv/fame",
      });
      const fams = run.ofType(T("FamFile"));
      assert.equal(fams.length, 1);
      assert.equal(fams[0]?.inputs.path, "/srv/fame/FAM");
      assert.equal(fams[0]?.inputs.sizeBytes, scenario.bytes);
      assert.equal(fams[0]?.inputs.mode, 0o660);
      assert.equal(fams[0]?.inputs.group, "libvirt-qemu");

      const nets = run.ofType(T("Network"));
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

      const images = run.ofType(T("GoldenImage"));
      assert.equal(images.length, 1, "one golden image for all nodes");
      const imageDir = `/var/cache/fame/images/${images[0]?.inputs.key}`;
      const disks = run.ofType(T("NodeDisk"));
      const seeds = run.ofType(T("SeedDisk"));
      assert.equal(disks.length, scenario.nodes);
      assert.equal(seeds.length, scenario.nodes);
      assert.equal(run.ofType(T("SshKey")).length, 1, "one key pair per stack");
      const initrds = run.ofType(T("BootInitrd"));
      assert.deepEqual(
        initrds.map((r) => [r.inputs.source, r.inputs.version]),
        [[`${imageDir}/initrd.img`, BOOT_INITRD_VERSION]],
        "one boot initrd, made from the image's",
      );
      assert.deepEqual(
        run.ofType(T("BootKernel")).map((r) => [r.inputs.source, r.inputs.version]),
        [[`${imageDir}/vmlinuz`, BOOT_KERNEL_VERSION]],
        "one boot kernel, unpacked from the image's",
      );

      const doms = run.ofType(T("Domain"));
      assert.equal(doms.length, scenario.nodes);
      for (const [i, d] of doms.entries()) {
        const n = i + 1;
        const nn = String(n).padStart(2, "0");
        const name = `${scenario.hostbase}${nn}`;
        assert.equal(d.inputs.name, name);
        // Resources are named by slot, not hostbase: a rename keeps them (and the disk).
        assert.equal(d.name, `fame-node${nn}-domain`);
        assert.equal(disks[i]?.name, `fame-node${nn}-disk`);
        assert.deepEqual(d.inputs.fam, { path: "/srv/fame/FAM", sizeBytes: scenario.bytes });
        assert.equal(d.inputs.network, `br_${scenario.hostbase}`);
        assert.equal(d.inputs.mac, `48:50:42:${nn}:${nn}:${nn}`);
        assert.equal(d.inputs.type, "qemu", "the test host (TEST_HOST) has no vmx/svm: TCG");
        assert.equal(d.inputs.consoleLog, `/srv/fame/${name}.console.log`);
        // TCG: the image's kernel unpacked for a PVH boot (lib/bootkernel), and fame's boot
        // initrd, made from the image's (lib/bootinitrd).
        assert.equal(d.inputs.kernel, `${imageDir}/${BOOT_KERNEL_FILE}`);
        assert.equal(d.inputs.initrd, `${imageDir}/${BOOT_INITRD_FILE}`);
        assert.equal(
          d.inputs.cmdline,
          // TCG: the guest's speculation mitigations and unused drivers off (lib/image TCG_CMDLINE).
          `root=/dev/vda rw console=ttyS0 net.ifnames=0 ${TCG} systemd.hostname=${name} fame.node=${n}`,
        );
        assert.deepEqual(d.inputs.disks, [
          { path: disks[i]?.inputs.path, format: "qcow2" },
          {
            path: `/srv/fame/${name}.seed.img`,
            format: "raw",
            serial: seedSerial({
              user: "l4mdc",
              hostbase: scenario.hostbase,
              octets123: scenario.octets,
            }),
          },
        ]);
        assert.match(
          String(disks[i]?.inputs.path),
          new RegExp(`^/srv/fame/${name}-[0-9a-f]{12}\\.qcow2$`),
        );
        assert.equal(disks[i]?.inputs.backingFile, `${imageDir}/golden.qcow2`);
        assert.equal(disks[i]?.inputs.sizeBytes, 6 * GiB);
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
      assert.equal(run.exports.envFile, "/srv/fame/env.sh");
    });
  }

  it("gives every node the stack's key on its seed disk, secret, and exports SSH helpers", async () => {
    const run = await runProgram({ nodes: "2", dir: "/srv/f", user: "dev" }, {}, "lab");
    const seeds = run.ofType(T("SeedDisk"));
    assert.equal(seeds.length, 2);
    for (const s of seeds) {
      // Pulumi's secret envelope: the seed content never travels as plain text.
      const envelope = s.inputs.files as {
        "4dabf18193072939515e22adb298388d": string;
        value: Record<string, string>;
      };
      assert.equal(
        envelope["4dabf18193072939515e22adb298388d"],
        "1b47061264138c4ac30d75fd1eb44270",
      );
      const files = envelope.value;
      assert.match(files.authorized_keys ?? "", /^ssh-ed25519 \S+ fame-lab\n$/);
      assert.match(files.id_ed25519 ?? "", /BEGIN OPENSSH PRIVATE KEY/);
      assert.equal(files.password, undefined, "no password unless configured");
      // the node user, its sudo rule and the stack's names: set up at boot, not in the image
      assert.equal(files.user, "dev\n");
      assert.equal(files.sudoers, "dev ALL=(ALL) NOPASSWD:ALL\n");
      assert.equal(files.hosts, hostsFile("node", "192.168.42"));
    }
    const commands = run.exports.sshCommands as Record<string, string>;
    assert.equal(commands.node01, "ssh -i ~/.ssh/fame-lab -o IdentitiesOnly=yes dev@192.168.42.1");
    assert.match(
      String(run.exports.sshConfig),
      /Host node02\n {2}HostName 192.168.42.2\n {2}User dev\n {2}IdentityFile ~\/.ssh\/fame-lab/,
    );
    assert.match(String(run.exports.privateKey), /BEGIN OPENSSH PRIVATE KEY/);
    assert.deepEqual(run.exports.imagePackages, ["openssh-server 1:9.2p1-2", "systemd 252.39-1"]);
    const env = run.ofType(T("ArtifactFile"))[0]?.inputs;
    assert.match(String(env?.content), /^export FAME_USER='dev'$/m);
    assert.doesNotMatch(String(env?.content), /PRIVATE|password/i);
  });

  it("uses a configured kernel instead of the image's, keeping the image as root", async () => {
    const run = await runProgram({
      nodes: "1",
      kernelPath: "/boot/k",
      initrdPath: "/boot/i",
      cmdline: "quiet",
    });
    const d = run.ofType(T("Domain"))[0]?.inputs;
    assert.equal(d?.kernel, "/boot/k");
    assert.equal(d?.initrd, "/boot/i");
    assert.equal(run.ofType(T("BootInitrd")).length, 0, "no boot initrd made for another kernel");
    assert.equal(run.ofType(T("BootKernel")).length, 0, "nor a boot kernel");
    assert.equal(
      d?.cmdline,
      `root=/dev/vda rw console=ttyS0 net.ifnames=0 ${TCG} quiet systemd.hostname=node01 fame.node=1`,
    );
  });

  it("takes FAME_* variables of the original as defaults", async () => {
    const run = await runProgram(
      {},
      { FAME_DIR: "/srv/x", FAME_VCPUS: "3", FAME_NODES: "2", FAME_VDRAM: "1048576" },
    );
    const doms = run.ofType(T("Domain"));
    assert.equal(doms.length, 2);
    assert.equal(doms[0]?.inputs.vcpus, 3);
    assert.equal(doms[0]?.inputs.memoryKiB, 1048576);
    assert.equal(run.exports.famPath, "/srv/x/FAM");
  });

  it("keeps the proxy out of the image: same image key, the proxy reaches nodes on their seed disks", async () => {
    const without = await runProgram({ nodes: "1" });
    const withProxy = await runProgram({ nodes: "1", proxy: "http://proxy.lan:3128" });
    const image = (r: typeof without) => r.ofType(T("GoldenImage"))[0]?.inputs;
    assert.equal(image(withProxy)?.key, image(without)?.key);
    assert.equal(
      (image(withProxy)?.proxy as { value: string } | undefined)?.value,
      "http://proxy.lan:3128",
      "the build still uses it (as a secret)",
    );
    const seed = (r: typeof without) =>
      (r.ofType(T("SeedDisk"))[0]?.inputs.files as { value: Record<string, string> } | undefined)
        ?.value ?? {};
    assert.equal(
      seed(withProxy)["apt-proxy.conf"],
      'Acquire::http::Proxy "http://proxy.lan:3128";\nAcquire::https::Proxy "http://proxy.lan:3128";\n',
    );
    assert.equal(seed(without)["apt-proxy.conf"], undefined);
  });

  it("two stacks with different user, hostbase and subnet share one golden image; each seed carries its own", async () => {
    const a = await runProgram(
      { nodes: "2", user: "l4mdc", hostbase: "node", octets123: "192.168.42" },
      {},
      "a",
    );
    const b = await runProgram(
      { nodes: "3", user: "dev", hostbase: "tm", octets123: "10.77.1" },
      {},
      "b",
    );
    const image = (r: typeof a) => r.ofType(T("GoldenImage"))[0]?.inputs;
    assert.equal(image(a)?.key, image(b)?.key);
    assert.deepEqual(image(a)?.recipe, image(b)?.recipe);
    assert.equal(a.exports.imageKey, b.exports.imageKey);
    // the same backing file for every node of both stacks: one cached image
    const backing = (r: typeof a) => r.ofType(T("NodeDisk")).map((d) => d.inputs.backingFile);
    assert.equal(new Set([...backing(a), ...backing(b)]).size, 1);
    const seed = (r: typeof a) =>
      (r.ofType(T("SeedDisk"))[0]?.inputs.files as { value: Record<string, string> } | undefined)
        ?.value ?? {};
    assert.equal(seed(a).user, "l4mdc\n");
    assert.equal(seed(b).user, "dev\n");
    assert.match(seed(b).hosts ?? "", /^10\.77\.1\.254\ttorms$/m);
    assert.match(seed(b).hosts ?? "", /^10\.77\.1\.3\ttm03$/m);
  });

  it("a new subnet keeps every node disk (same inputs) and restarts the nodes onto their new seed", async () => {
    const before = await runProgram({ nodes: "3", octets123: "192.168.42" });
    const after = await runProgram({ nodes: "3", octets123: "10.9.8" });
    const strip = (i: Record<string, unknown>) => ({ ...i, __provider: undefined });
    assert.equal(after.ofType(T("NodeDisk")).length, 3);
    for (let k = 0; k < 3; k++) {
      assert.deepEqual(
        strip(after.ofType(T("NodeDisk"))[k]!.inputs),
        strip(before.ofType(T("NodeDisk"))[k]!.inputs),
      );
      // the seed disk keeps its path; its serial in the domain changes, so the node restarts
      const seedDisk = (r: typeof before) =>
        (r.ofType(T("Domain"))[k]!.inputs.disks as { path: string; serial?: string }[])[1];
      assert.equal(seedDisk(after)?.path, seedDisk(before)?.path);
      assert.notEqual(seedDisk(after)?.serial, seedDisk(before)?.serial);
    }
    // a new user too: same disks, new seed serial
    const dev = await runProgram({ nodes: "3", octets123: "192.168.42", user: "dev" });
    assert.deepEqual(
      dev.ofType(T("NodeDisk")).map((d) => strip(d.inputs)),
      before.ofType(T("NodeDisk")).map((d) => strip(d.inputs)),
    );
  });

  it("warns in preview when libvirt-qemu cannot open /dev/kvm (libvirt re-probes QEMU on every define), naming the fix", async () => {
    const passwd =
      "root:x:0:0:root:/root:/bin/bash\nlibvirt-qemu:x:64055:107::/var/lib/libvirt:/usr/sbin/nologin\n";
    const group = "root:x:0:\nkvm:x:107:\nlibvirt-qemu:x:64055:\n";
    const warned = async (host: ProgramHostFacts, config: Record<string, string> = {}) => {
      const said: string[] = [];
      const original = console.warn;
      console.warn = (...m: unknown[]) => said.push(m.join(" "));
      try {
        await runProgram({ nodes: "1", ...config }, {}, "test", host);
      } finally {
        console.warn = original;
      }
      return said.join("\n");
    };
    const libvirtQemu = {
      user: { name: "libvirt-qemu", uid: 64055, gids: [107], self: false },
    };
    const rootOnly = {
      ...TEST_HOST,
      kvmDevice: true,
      kvmStat: { mode: 0o600, uid: 0, gid: 0 },
      passwd,
      group,
      qemuUser: { system: libvirtQemu, session: libvirtQemu },
    };
    const text = await warned(rootOnly);
    assert.match(
      text,
      /fame: \/dev\/kvm is 0600 root:root, which libvirt-qemu cannot open: libvirt then probes QEMU again on every define and start .*chgrp kvm \/dev\/kvm && chmod 660 \/dev\/kvm \(persist with a udev rule KERNEL=="kvm", GROUP="kvm", MODE="0660"\) and make sure libvirt-qemu is in group kvm/,
    );
    // group kvm, 660, and libvirt-qemu's primary group kvm: nothing to say
    const fixed = { ...rootOnly, kvmStat: { mode: 0o660, uid: 0, gid: 107 } };
    assert.doesNotMatch(await warned(fixed), /\/dev\/kvm/);
    // no /dev/kvm, or another libvirtd (its own socket): nothing to say either
    assert.doesNotMatch(await warned(TEST_HOST), /\/dev\/kvm/);
    assert.doesNotMatch(
      await warned(rootOnly, { libvirtUri: "qemu:///system?socket=/tmp/x.sock" }),
      /\/dev\/kvm/,
    );
  });

  it("picks kvm on a host with vmx/svm and /dev/kvm, TCG otherwise, whatever machine runs the test", async () => {
    const flags = (f: string) => `processor\t: 0\nflags\t\t: fpu sse2 ${f}\n`;
    const kvmHost = { ...TEST_HOST, cpuinfo: flags("vmx"), kvmDevice: true };
    const type = async (host: ProgramHostFacts, accel = "auto") => {
      const run = await runProgram({ nodes: "1", accel }, {}, "test", host);
      return [run.ofType(T("Domain"))[0]?.inputs.type, run.exports.accelerator];
    };
    assert.deepEqual(await type(kvmHost), ["kvm", "kvm"]);
    assert.deepEqual(await type({ ...kvmHost, cpuinfo: flags("svm") }), ["kvm", "kvm"]);
    assert.deepEqual(await type({ ...kvmHost, kvmDevice: false }), ["qemu", "tcg"]);
    assert.deepEqual(await type({ ...kvmHost, cpuinfo: flags("") }), ["qemu", "tcg"]);
    assert.deepEqual(await type(kvmHost, "tcg"), ["qemu", "tcg"]);
  });

  it("fame:verbose logs the effective configuration: every key, its value and where it came from", async () => {
    const logged = async (config: Record<string, string>, env: Record<string, string> = {}) => {
      const said: string[] = [];
      const saved = [console.log, console.info];
      console.log = console.info = (...m: unknown[]) => said.push(m.join(" "));
      try {
        await runProgram(config, env);
      } finally {
        [console.log, console.info] = saved;
      }
      return said.join("\n");
    };
    const text = await logged({ nodes: "2", verbose: "true" }, { FAME_VCPUS: "3" });
    assert.match(text, /fame: nodes = "2" \(stack\)/);
    assert.match(text, /fame: vcpus = "3" \(FAME_VCPUS\)/);
    assert.match(text, /fame: user = "l4mdc" \(default\)/);
    assert.match(text, /fame: dir = "\/var\/lib\/fame\/fame-test" \(computed\)/);
    assert.doesNotMatch(
      await logged({ nodes: "2" }),
      /fame: nodes = /,
      "quiet without fame:verbose",
    );
  });

  it("honours the accelerator override", async () => {
    const run = await runProgram({ nodes: "1", accel: "kvm" });
    assert.equal(run.ofType(T("Domain"))[0]?.inputs.type, "kvm");
    assert.equal(run.exports.accelerator, "kvm");
  });

  it("changing the node count leaves the golden image and the other nodes' inputs as they were", async () => {
    const three = await runProgram({ nodes: "3" });
    const four = await runProgram({ nodes: "4" });
    assert.equal(
      three.ofType(T("GoldenImage"))[0]?.inputs.key,
      four.ofType(T("GoldenImage"))[0]?.inputs.key,
    );
    const strip = (i: Record<string, unknown>) => ({ ...i, __provider: undefined });
    for (let k = 0; k < 3; k++) {
      assert.deepEqual(
        strip(three.ofType(T("Domain"))[k]!.inputs),
        strip(four.ofType(T("Domain"))[k]!.inputs),
      );
      assert.deepEqual(
        strip(three.ofType(T("NodeDisk"))[k]!.inputs),
        strip(four.ofType(T("NodeDisk"))[k]!.inputs),
      );
    }
  });

  it("refuses a fame: key it does not know, naming it and the closest key, registering nothing", async () => {
    // `pulumi config set fame:famsize 64G` used to leave the 16G default in force without a word.
    const { error, resources } = await runProgramRefused({ famsize: "64G", nodes: "2" });
    assert.match(
      error.message,
      /invalid fame configuration \(nothing was changed\):\n {2}- fame:famsize = "64G": unknown key, .*did you mean fame:famSize\?/,
    );
    assert.deepEqual(resources, []);
    // Together with the value problems, in one message.
    const both = await runProgramRefused({ famsize: "64G", nodes: "0" });
    assert.match(both.error.message, /fame:famsize = "64G": unknown key/);
    assert.match(both.error.message, /fame:nodes = "0": must be an integer from 1 to 253/);
  });

  it("refuses a non-secret key set with --secret, and a password set without it, never showing the value", async () => {
    const nodes = await runProgramRefused({ nodes: { secret: "2" } });
    assert.match(
      nodes.error.message,
      /fame:nodes is set as a secret, but fame writes it to plain files, resource inputs and outputs.*`pulumi config set fame:nodes <value>`/,
    );
    assert.deepEqual(nodes.resources, []);
    const plain = await runProgramRefused({ password: "hunter2-plain" });
    assert.match(
      plain.error.message,
      /fame:password is stored in plain text .*`pulumi config set --secret fame:password <value>`/,
    );
    assert.doesNotMatch(plain.error.message, /hunter2-plain/);
  });

  it("a default cluster says no warning, and exports no Librarian outputs with the Librarian off", async () => {
    const run = await runProgram({});
    assert.deepEqual(run.warnings, []);
    assert.equal(run.ofType(T("Domain")).length, 4);
    for (const k of ["librarianDb", "librarianUnit", "librarianMonitorUrl"])
      assert.ok(!(k in run.exports), k);
    assert.ok(Object.values(run.exports).every((v) => v !== undefined && v !== null));
    // The capture works: a warning the user should act on still gets through.
    const large = await runProgram({ nodes: "1", famSize: "512G" });
    assert.match(large.warnings.join("\n"), /fame:famSize = 512G is above 256G/);
  });

  it("refuses bad config with one message naming key, value and rule, registering nothing", async () => {
    await assert.rejects(
      runProgram({ nodes: "254", famSize: "3G" }),
      (e: Error) =>
        /fame:nodes = "254": must be an integer from 1 to 253/.test(e.message) &&
        /fame:famSize = "3G": must be a power of two/.test(e.message),
    );
  });

  it("writes the Librarian INI for the FAM size and node count, and exports it", async () => {
    const run = await runProgram({ nodes: "4", famSize: "16G", dir: "/srv/l" });
    const ini = run
      .ofType(T("ArtifactFile"))
      .find((f) => String(f.inputs.path).endsWith("librarian.ini"));
    const expected = "[global]\nnode_count = 4\nbook_size_bytes = 8M\nnvm_size_per_node = 512B\n";
    assert.equal(ini?.inputs.content, expected);
    assert.equal(run.exports.librarianIni, expected);
    assert.equal(run.exports.librarianIniPath, "/srv/l/librarian.ini");
    const three = await runProgram({ nodes: "3", famSize: "32G" });
    assert.equal(
      three.exports.librarianIni,
      "[global]\nnode_count = 3\nbook_size_bytes = 8M\nnvm_size_per_node = 1364B\n",
    );
  });

  it("warns in preview when no Librarian can serve the node count, LFS cannot read node numbers from MACs, or books stay unused", async () => {
    const warned = async (config: Record<string, string>): Promise<string> => {
      const said: string[] = [];
      const original = console.warn;
      console.warn = (...m: unknown[]) => said.push(m.join(" "));
      try {
        await runProgram(config);
      } finally {
        console.warn = original;
      }
      return said.join("\n");
    };
    const text = await warned({ nodes: "81", famSize: "16G", octets123: "10.0.0" });
    assert.match(text, /81 nodes: the Librarian \(book_register\) supports at most 80 nodes/);
    assert.match(text, /node41 and above: .*MAC only for nodes 01\.\.40/);
    assert.match(
      text,
      /2048 Librarian books of 8M do not divide among 81 nodes.*each node gets 24/,
    );
    assert.doesNotMatch(await warned({ nodes: "4", famSize: "16G" }), /Librarian|LFS/);
  });

  it("records the applied config last, after every node", async () => {
    // Capture the options each ArtifactFile is made with (cluster.ts reads the class from the module).
    const mod =
      require("../../providers/artifactFile") as typeof import("../../providers/artifactFile");
    const Original = mod.ArtifactFile;
    const made: { name: string; dependsOn: pulumi.Resource[] }[] = [];
    mod.ArtifactFile = class extends Original {
      constructor(name: string, args: ArtifactFileArgs, opts?: pulumi.CustomResourceOptions) {
        super(name, args, opts);
        made.push({
          name,
          dependsOn: ([] as pulumi.Resource[]).concat((opts?.dependsOn ?? []) as pulumi.Resource[]),
        });
      }
    };
    let run: Awaited<ReturnType<typeof runProgram>>;
    try {
      run = await runProgram({ nodes: "3", dir: "/srv/a" });
    } finally {
      mod.ArtifactFile = Original;
    }
    const applied = run
      .ofType(T("ArtifactFile"))
      .find((f) => String(f.inputs.path) === "/srv/a/applied.json");
    const content = JSON.parse(String(applied?.inputs.content));
    assert.equal(content.nodes, 3);
    assert.equal(content.imageKey, run.exports.imageKey);
    // "last": it waits for every node (and the FAM and network), so a failed node leaves the old record.
    const deps = made.find((m) => m.name === "fame-applied")?.dependsOn ?? [];
    const typeOf = (r: pulumi.Resource) => (r as unknown as { __pulumiType: string }).__pulumiType;
    const nameOf = (r: pulumi.Resource) => (r as unknown as { __name: string }).__name;
    const nodeDeps = deps.filter((r) => typeOf(r) === "fame:node:FameNode").map(nameOf);
    assert.deepEqual(nodeDeps.sort(), ["fame-node01", "fame-node02", "fame-node03"]);
    assert.ok(deps.some((r) => typeOf(r) === "fame:memory:FabricMemory"));
    assert.ok(deps.some((r) => typeOf(r) === "fame:network:NodeNetwork"));
    assert.deepEqual(
      made.filter((m) => m.name !== "fame-applied" && m.dependsOn.length > 0).map((m) => m.name),
      [],
      "no other artifact waits for the nodes",
    );
  });

  it("refuses a FAM shrink against the FAM file before registering anything; a damaged record is ignored", async () => {
    const dir = scratchDir("applied");
    try {
      const first = await runProgram({ nodes: "2", dir, famSize: "32G" });
      const applied = first
        .ofType(T("ArtifactFile"))
        .find((f) => String(f.inputs.path).endsWith("applied.json"));
      fs.writeFileSync(path.join(dir, "applied.json"), String(applied?.inputs.content));
      fs.writeFileSync(path.join(dir, "FAM"), "");
      fs.truncateSync(path.join(dir, "FAM"), 32 * 2 ** 30);
      await assert.rejects(
        runProgram({ nodes: "2", dir, famSize: "16G" }),
        /would cut 16G \(17179869184 bytes\) of FAM data/,
      );
      // A damaged record neither blocks a valid change nor is believed.
      fs.writeFileSync(path.join(dir, "applied.json"), '{"nodes": "garbage"');
      const grown = await runProgram({ nodes: "2", dir, famSize: "64G" });
      assert.equal(grown.ofType(T("FamFile"))[0]?.inputs.sizeBytes, 64 * 2 ** 30);
      const allowed = await runProgram({ nodes: "2", dir, famSize: "16G", famAllowShrink: "true" });
      assert.equal(allowed.ofType(T("FamFile"))[0]?.inputs.allowShrink, true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fame:suite: a new stack gets trixie; a stack applied before the key keeps bookworm and its image key; the report says which and why", async () => {
    const dir = scratchDir("suite");
    const said: string[] = [];
    const saved = [console.log, console.info];
    const run = async (config: Record<string, string>) => {
      said.length = 0;
      console.log = console.info = (...m: unknown[]) => said.push(m.join(" "));
      try {
        return await runProgram({ nodes: "1", dir, ...config });
      } finally {
        [console.log, console.info] = saved;
      }
    };
    const image = (r: Awaited<ReturnType<typeof run>>) =>
      r.ofType(T("GoldenImage"))[0]?.inputs as { key: string; recipe: { suite: string } };
    const artifact = (r: Awaited<ReturnType<typeof run>>, file: string) =>
      String(
        r.ofType(T("ArtifactFile")).find((f) => String(f.inputs.path) === path.join(dir, file))
          ?.inputs.content,
      );
    try {
      // A new stack (no applied.json): trixie, recorded, in env.sh, and said.
      const fresh = await run({});
      assert.equal(image(fresh).recipe.suite, "trixie");
      assert.match(
        said.join("\n"),
        /fame: the nodes run Debian trixie \(fame:suite unset: a new stack/,
      );
      assert.equal(JSON.parse(artifact(fresh, "applied.json")).suite, "trixie");
      assert.match(artifact(fresh, "env.sh"), /^export FAME_SUITE='trixie'$/m);
      const bookworm = await run({ suite: "bookworm" });
      assert.equal(image(bookworm).recipe.suite, "bookworm");
      assert.notEqual(image(bookworm).key, image(fresh).key, "each release its own image");

      // A record as fame wrote it before fame:suite existed: the bookworm image, no suite field
      // (nor bootArgs, recorded since issue 19).
      const {
        suite: _s,
        bootArgs: _b,
        bootInitrd: _i,
        bootKernel: _k,
        ...old
      } = JSON.parse(artifact(bookworm, "applied.json"));
      assert.equal(old.imageKey, image(bookworm).key);
      fs.writeFileSync(path.join(dir, "applied.json"), JSON.stringify(old));
      const upgraded = await run({});
      assert.equal(image(upgraded).recipe.suite, "bookworm", "an existing stack keeps bookworm");
      assert.equal(image(upgraded).key, old.imageKey, "the same image: no disk is replaced");
      const cmdline = (r: Awaited<ReturnType<typeof run>>) =>
        String(r.ofType(T("Domain"))[0]?.inputs.cmdline);
      // The image and disks are kept; the kernel arguments gain TCG's and the initrd is fame's,
      // in-place updates: the nodes restart on their disks, and the report says so.
      assert.equal(
        cmdline(upgraded),
        `root=/dev/vda rw console=ttyS0 net.ifnames=0 ${TCG} systemd.hostname=node01 fame.node=1`,
      );
      assert.equal(cmdline(fresh), cmdline(upgraded), "IVSHMEM: the same on both releases");
      assert.match(
        said.join("\n"),
        /fame: the nodes run Debian bookworm \(fame:suite unset: this stack was applied before fame had the key.*set fame:suite trixie to upgrade/,
      );
      assert.match(
        said.join("\n"),
        /fame: node01 restart to apply fame's kernel arguments \(\+mitigations=off \+modprobe\.blacklist=floppy,[a-z0-9_,]+\), fame's boot initrd \(the image's -> fame's own \(fame-initrd-v\d+\.img\)\), fame's boot kernel \(the image's vmlinuz -> fame's unpacked one \(fame-vmlinux-v\d+\)\) \(disks and FAM kept\)/,
      );
      assert.equal(
        JSON.parse(artifact(upgraded, "applied.json")).bootArgs,
        `root=/dev/vda rw console=ttyS0 net.ifnames=0 ${TCG}`,
      );
      assert.equal(JSON.parse(artifact(upgraded, "applied.json")).bootInitrd, BOOT_INITRD_FILE);
      assert.equal(JSON.parse(artifact(upgraded, "applied.json")).bootKernel, BOOT_KERNEL_FILE);
      assert.doesNotMatch(upgraded.warnings.join("\n"), /golden image|disk is replaced/);

      // Asking for trixie on that stack: said to replace every disk, naming both releases.
      const moved = await run({ suite: "trixie" });
      assert.equal(image(moved).key, image(fresh).key);
      assert.match(
        moved.warnings.join("\n"),
        /the Debian release: bookworm -> trixie\): .*every node's disk is replaced/,
      );
      // Once applied with trixie, an unset key keeps trixie (the record's release).
      fs.writeFileSync(path.join(dir, "applied.json"), artifact(moved, "applied.json"));
      assert.equal(image(await run({})).recipe.suite, "trixie");
      assert.match(said.join("\n"), /the release this stack was last applied with/);
      // CXL: trixie's kernel gets its two arguments (lib/image SUITE_DIFFERENCES); bookworm's as before.
      assert.match(
        cmdline(await run({ suite: "trixie", famMode: "cxl" })),
        / net\.ifnames=0 pcie_ports=compat clearcpuid=hypervisor mitigations=off modprobe\.blacklist=\S+ systemd\.hostname=node01 /,
      );
      assert.equal(cmdline(await run({ suite: "bookworm", famMode: "cxl" })), cmdline(upgraded));
      // FAME_SUITE fills an unset key; a bad value is refused naming the key.
      const fromEnv = await runProgram({ nodes: "1", dir }, { FAME_SUITE: "bookworm" });
      assert.equal(image(fromEnv).recipe.suite, "bookworm");
      const { error, resources } = await runProgramRefused({ nodes: "1", suite: "buster" });
      assert.match(error.message, /fame:suite = "buster": must be one of bookworm, trixie/);
      assert.equal(resources.length, 0);
    } finally {
      [console.log, console.info] = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps a configured password secret: only on the seed disks, never in outputs or artifacts", async () => {
    const run = await runProgram({ nodes: "1", password: { secret: "hunter2-secret" } });
    const seed = run.ofType(T("SeedDisk"))[0]?.inputs.files as { value: Record<string, string> };
    assert.equal(seed.value.password, "hunter2-secret");
    const everythingElse = JSON.stringify([
      run.exports,
      run.resources
        .filter((r) => r.type !== T("SeedDisk"))
        .map((r) => ({ ...r.inputs, __provider: "" })),
    ]);
    assert.doesNotMatch(everythingElse, /hunter2-secret/);
  });

  it("runs only the listed nodes and lets the FAM stop every node before a resize", async () => {
    const run = await runProgram({ nodes: "4", running: "1,node03", shutdownTimeout: "30" });
    const doms = run.ofType(T("Domain"));
    assert.deepEqual(
      doms.map((d) => d.inputs.running),
      [true, false, true, false],
    );
    assert.ok(doms.every((d) => d.inputs.shutdownTimeoutMs === 30_000));
    const users = run.ofType(T("FamFile"))[0]?.inputs.users as {
      domains: string[];
      shutdownTimeoutMs: number;
    };
    assert.deepEqual(users.domains, ["node01", "node02", "node03", "node04"]);
    assert.equal(users.shutdownTimeoutMs, 30_000);
    await assert.rejects(
      runProgram({ nodes: "2", running: "node05" }),
      /fame:running = "node05": .* is not a node of this cluster/,
    );
  });

  it("opens exactly the FAM path (and FAME-Z socket) to libvirt's QEMU profiles, confinement kept", async () => {
    const run = await runProgram({
      nodes: "1",
      famPath: "/srv/x/FAM",
      famezSocket: "/run/famez.sock",
    });
    const aa = run.ofType(T("AppArmorAccess"));
    assert.equal(aa.length, 1);
    assert.equal(aa[0]?.inputs.file, "/etc/apparmor.d/local/abstractions/libvirt-qemu");
    assert.deepEqual(aa[0]?.inputs.rules, [
      { path: "/srv/x/FAM", perms: "rw" },
      { path: "/run/famez.sock", perms: "rw" },
    ]);
  });

  it("famMode cxl: each node gets its own LSA file and a CXL domain; IVSHMEM gets neither", async () => {
    const run = await runProgram({ nodes: "2", dir: "/srv/c", famMode: "cxl", famSize: "1G" });
    const fams = run.ofType(T("FamFile"));
    assert.deepEqual(fams.map((f) => f.inputs.path).sort(), [
      "/srv/c/FAM",
      "/srv/c/node01.lsa",
      "/srv/c/node02.lsa",
    ]);
    for (const lsa of fams.filter((f) => String(f.inputs.path).endsWith(".lsa"))) {
      assert.equal(lsa.inputs.sizeBytes, 128 * 1024);
      assert.equal(lsa.inputs.group, "libvirt-qemu");
      assert.equal(lsa.inputs.mode, 0o660);
      assert.equal(lsa.inputs.deleteOnDestroy, true, "deleted with its node");
    }
    const doms = run.ofType(T("Domain"));
    const serials = doms.map((d) => (d.inputs.cxl as { serial: number }).serial);
    assert.ok(serials.every((sn) => sn > 0));
    assert.equal(new Set(serials).size, 2);
    assert.deepEqual(
      doms.map((d) => (d.inputs.cxl as { lsaPath: string }).lsaPath),
      ["/srv/c/node01.lsa", "/srv/c/node02.lsa"],
    );
    assert.deepEqual(doms[0]?.inputs.fam, { path: "/srv/c/FAM", sizeBytes: GiB });
    assert.deepEqual(
      ((run.ofType(T("AppArmorAccess"))[0]?.inputs.rules ?? []) as { path: string }[]).map(
        (r) => r.path,
      ),
      ["/srv/c/FAM", "/srv/c/node01.lsa", "/srv/c/node02.lsa"],
    );
    // the same image in both modes: switching never replaces a disk
    const ivshmem = await runProgram({ nodes: "2", dir: "/srv/c", famSize: "1G" });
    assert.equal(ivshmem.ofType(T("FamFile")).length, 1);
    assert.equal(ivshmem.ofType(T("Domain"))[0]?.inputs.cxl, undefined);
    assert.deepEqual(
      ivshmem.ofType(T("NodeDisk")).map((d) => d.inputs.path),
      run.ofType(T("NodeDisk")).map((d) => d.inputs.path),
    );
  });

  it("keeps a proxy's credentials secret: encrypted in state, never in env.sh, applied.json or the image key", async () => {
    const proxy = "http://bob:s3cret@proxy.lan:3128";
    const run = await runProgram({ nodes: "2", proxy });
    const build = run.ofType(T("GoldenImage"))[0]?.inputs.proxy as Record<string, unknown>;
    // Pulumi's secret envelope: the engine stores the value encrypted.
    assert.equal(build["4dabf18193072939515e22adb298388d"], "1b47061264138c4ac30d75fd1eb44270");
    assert.equal(build.value, proxy, "the build reaches the mirror through it");
    const seed = run.ofType(T("SeedDisk"))[0]?.inputs.files as { value: Record<string, string> };
    assert.match(seed.value["apt-proxy.conf"] ?? "", /Proxy "http:\/\/bob:s3cret@proxy.lan:3128"/);
    const plain: unknown[] = Object.values(run.exports);
    for (const r of run.resources) {
      for (const [k, v] of Object.entries(r.inputs)) {
        const secret =
          typeof v === "object" && v !== null && "4dabf18193072939515e22adb298388d" in v;
        if (k !== "__provider" && !secret) plain.push(v);
      }
    }
    assert.doesNotMatch(JSON.stringify(plain), /s3cret|bob:/);
    const env = run
      .ofType(T("ArtifactFile"))
      .find((a) => String(a.inputs.path).endsWith("/env.sh"))?.inputs;
    assert.equal(env?.mode, 0o644, "env.sh holds no secret, so it stays readable");
    assert.match(String(env?.content), /^# FAME_PROXY is not written/m);
    const without = await runProgram({ nodes: "2" });
    assert.equal(run.exports.imageKey, without.exports.imageKey);
  });

  it("secret scan: no private key or password in any plain output, input or artifact", async () => {
    const run = await runProgram({ nodes: "2", password: { secret: "pa55-word-secret" } });
    const plain: unknown[] = [
      run.exports.nodes,
      run.exports.sshConfig,
      run.exports.sshCommands,
      run.exports.envFile,
      run.exports.librarianIni,
    ];
    for (const r of run.resources) {
      for (const [k, v] of Object.entries(r.inputs)) {
        if (k === "__provider") continue;
        const secret =
          typeof v === "object" && v !== null && "4dabf18193072939515e22adb298388d" in v;
        if (!secret) plain.push(v);
      }
    }
    const text = JSON.stringify(plain);
    assert.doesNotMatch(text, /PRIVATE KEY/);
    assert.doesNotMatch(text, /pa55-word-secret/);
    // The private key output exists, but only as a secret of the stack.
    assert.match(String(run.exports.privateKey), /PRIVATE KEY/);
    assert.deepEqual(run.secretExports, ["privateKey"]);
  });

  it("warns loudly before any change when the FAM file was removed outside fame", async () => {
    const dir = scratchDir("famgone");
    try {
      const first = await runProgram({ nodes: "1", dir });
      const applied = first
        .ofType(T("ArtifactFile"))
        .find((f) => String(f.inputs.path).endsWith("applied.json"));
      fs.writeFileSync(path.join(dir, "applied.json"), String(applied?.inputs.content));
      const said: string[] = [];
      // Without an engine, pulumi.log.warn writes through console.warn.
      const original = console.warn;
      console.warn = (...m: unknown[]) => said.push(m.join(" "));
      try {
        await runProgram({ nodes: "1", dir });
      } finally {
        console.warn = original;
      }
      assert.match(
        said.join("\n"),
        new RegExp(
          `the FAM file ${dir}/FAM is gone .*its data is lost; this update creates it again, empty`,
        ),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("QEMU's user must reach fame:dir, fame:famPath and the image cache", () => {
    // Own directories with explicit modes, reachable by QEMU's stand-in (nobody) or not,
    // wherever the checkout is; qemu.conf names the stand-in, read by the real host adapter.
    let tmp: string;
    let host: ProgramHostFacts;
    const mkdir = (name: string, mode: number) => {
      const d = path.join(tmp, name);
      fs.mkdirSync(d, { mode });
      fs.chmodSync(d, mode);
      return d;
    };
    before(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fame-reach-program-"));
      fs.chmodSync(tmp, 0o755);
      fs.writeFileSync(path.join(tmp, "qemu.conf"), 'user = "nobody"\n');
      const nobody = systemQemuUser(path.join(tmp, "qemu.conf"));
      host = { ...TEST_HOST, qemuUser: { system: nobody, session: nobody } };
      mkdir("locked", 0o700);
      mkdir("open", 0o755);
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    for (const [label, config, value, keys] of [
      // The default fame:famPath, <dir>/FAM, is refused with it.
      ["fame:dir", { dir: "locked/fame" }, "locked/fame", ["dir", "famPath"]],
      ["fame:famPath", { dir: "open/fame", famPath: "locked/FAM" }, "locked/FAM", ["famPath"]],
      [
        "fame:imageCache",
        { dir: "open/fame", imageCache: "locked/images" },
        "locked/images",
        ["imageCache"],
      ],
    ] as const) {
      it(`refuses a ${label} under a 0700 directory before registering anything, naming the directory`, async () => {
        const abs = Object.fromEntries(
          Object.entries(config).map(([k, v]) => [k, path.join(tmp, v)]),
        );
        const { error, resources } = await runProgramRefused(
          { nodes: "2", imageCache: path.join(tmp, "open", "images"), ...abs },
          {},
          host,
        );
        assert.deepEqual(resources, []);
        const [head, ...lines] = error.message.split("\n  - ");
        assert.equal(head, "refusing this configuration (nothing was changed):");
        assert.deepEqual(
          lines.map((l) => /^fame:(\w+) = /.exec(l)?.[1]),
          keys,
        );
        const key = keys[0];
        const locked = path.join(tmp, "locked");
        assert.match(
          lines[0] ?? "",
          new RegExp(
            `^fame:${key} = "${path.join(tmp, value)}": QEMU runs as nobody \\(uid \\d+\\), which cannot reach it: ${locked} \\(owner \\S+, mode 0700\\) does not let nobody search it\\. Choose a fame:${key} outside ${locked}, e\\.g\\. /var/\\S+, or let nobody search ${locked}: chmod o\\+x ${locked}, or setfacl -m u:nobody:x ${locked}$`,
          ),
        );
      });
    }

    it("accepts reachable ones", async () => {
      const run = await runProgram(
        {
          nodes: "2",
          dir: path.join(tmp, "open", "fame"),
          imageCache: path.join(tmp, "open", "images"),
        },
        {},
        "test",
        host,
      );
      assert.equal(run.ofType(T("Domain")).length, 2);
    });

    it("judges qemu:///session by the user running pulumi, who owns the 0700 directory", async () => {
      const config = {
        nodes: "2",
        dir: path.join(tmp, "locked", "fame"),
        imageCache: path.join(tmp, "locked", "images"),
      };
      const both = { ...TEST_HOST, qemuUser: { ...host.qemuUser, session: sessionQemuUser() } };
      await runProgramRefused(config, {}, both);
      const run = await runProgram({ ...config, libvirtUri: "qemu:///session" }, {}, "test", both);
      assert.equal(run.ofType(T("Domain")).length, 2);
    });

    it("says so when it cannot judge (no QEMU user on the host) instead of passing silently", async () => {
      const said: string[] = [];
      const original = console.warn;
      console.warn = (...m: unknown[]) => said.push(m.join(" "));
      try {
        const unknown = { unknown: "the test host has no QEMU user" };
        await runProgram({ nodes: "1", dir: path.join(tmp, "locked", "fame") }, {}, "test", {
          ...TEST_HOST,
          qemuUser: { system: unknown, session: unknown },
        });
      } finally {
        console.warn = original;
      }
      assert.match(
        said.join("\n"),
        /cannot check that QEMU can reach fame:dir, fame:famPath and fame:imageCache: the test host has no QEMU user/,
      );
    });
  });
});
