import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { imageArgs } from "../../components/cluster";
import { goldenImageRecipe } from "../../components/goldenImage";
import { resolveRaw, validateConfig } from "../../lib/config";
import {
  aptProxyConf,
  bootsFameBoot,
  hostsFile,
  type ImageInputs,
  INITRAMFS_CONF,
  imageCmdline,
  imageKey,
  imageRecipe,
  legacyImageCmdline,
  mmdebstrapCommand,
  SUITE_DIFFERENCES,
  seedScript,
  sudoersLine,
  TCG_CMDLINE,
  TRIXIE_DHCPCD_CONF,
  TRIXIE_IFUPDOWN_PRE,
} from "../../lib/image";

import { imageInputs } from "../helpers/fixtures";

const base = imageInputs({
  helloFabric: "int main(void) { return 0; }\n",
  famScript: "#!/bin/sh\n",
});

const file = (inputs: ImageInputs, p: string) =>
  imageRecipe(inputs).files.find((f) => f.path === p);

describe("golden image recipe", () => {
  it("installs what a node needs: systemd, dbus/logind, DHCP, sshd, sudo, gcc/make, a kernel", () => {
    const pkgs = imageRecipe(base).packages;
    for (const p of [
      "systemd",
      "systemd-sysv",
      "udev",
      "dbus",
      "libpam-systemd",
      "ifupdown",
      "isc-dhcp-client",
      "openssh-server",
      "sudo",
      "build-essential",
      "linux-image-amd64",
    ]) {
      assert.ok(pkgs.includes(p), p);
    }
    assert.ok(!pkgs.includes("l4fame-node"));
  });

  it("adds the L4FAME repository, its kernel (held) and l4fame-node when configured", () => {
    const r = imageRecipe({
      ...base,
      l4fame: "http://l4fame.example/Debian",
      kernel: "linux-image-4.14.0-l4fame",
    });
    assert.deepEqual(r.sources, [
      "deb http://deb.debian.org/debian bookworm main",
      "deb [trusted=yes] http://l4fame.example/Debian testing main",
    ]);
    assert.ok(r.packages.includes("linux-image-4.14.0-l4fame"));
    assert.ok(r.packages.includes("l4fame-node"));
    assert.ok(!r.packages.includes("linux-image-amd64"));
    assert.deepEqual(r.hold, ["linux-image-4.14.0-l4fame"]);
    assert.match(
      file({ ...base, l4fame: "http://l4fame.example/Debian" }, "/etc/apt/sources.list")?.content ??
        "",
      /\[trusted=yes\] http:\/\/l4fame.example\/Debian testing main/,
    );
  });

  it("points apt at the mirror and keeps the proxy out of the image (nodes get it from the seed disk)", () => {
    assert.equal(
      file(base, "/etc/apt/sources.list")?.content,
      "deb http://deb.debian.org/debian bookworm main\n",
    );
    assert.equal(file(base, "/etc/apt/apt.conf.d/01fame-proxy"), undefined);
    assert.ok(!JSON.stringify(imageRecipe(base)).includes("Proxy"));
    // the seed script installs the seed's apt proxy file, or removes a stale one
    const seed = seedScript();
    assert.match(
      seed,
      /install -m 644 "\$mnt\/apt-proxy.conf" \/etc\/apt\/apt.conf.d\/01fame-proxy/,
    );
    assert.match(seed, /rm -f \/etc\/apt\/apt.conf.d\/01fame-proxy/);
  });

  it("turns root and password SSH logins off; holds no node user, sudo rule or stack names", () => {
    const sshd = file(base, "/etc/ssh/sshd_config.d/fame.conf")?.content ?? "";
    assert.match(sshd, /^PermitRootLogin no$/m);
    assert.match(sshd, /^PasswordAuthentication no$/m);
    // the seed disk carries them (lib/outputs seedFiles), installed by fame-seed at boot
    assert.equal(file(base, "/etc/sudoers.d/fame-user"), undefined);
    assert.equal(file(base, "/etc/fame/user"), undefined);
    assert.equal(
      file(base, "/etc/hosts")?.content,
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    const text = JSON.stringify(imageRecipe(base));
    assert.doesNotMatch(text, /l4mdc|\\ttorms|192\.168\.42|NOPASSWD/);
    const hook = fs.readFileSync(
      path.join(__dirname, "..", "..", "templates", "image", "customize.sh"),
      "utf8",
    );
    assert.doesNotMatch(hook, /useradd|FAME_USER/);
    assert.match(hook, /passwd --lock root/);
  });

  it("names torms and every possible node in a stack's /etc/hosts (for its seed disks)", () => {
    const hosts = hostsFile("tm", "10.1.2");
    assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
    assert.match(hosts, /^10\.1\.2\.254\ttorms$/m);
    assert.match(hosts, /^10\.1\.2\.1\ttm01$/m);
    assert.match(hosts, /^10\.1\.2\.253\ttm253$/m);
    assert.equal(sudoersLine("dev"), "dev ALL=(ALL) NOPASSWD:ALL\n");
  });

  it("sets the node user up from the seed at boot: created once, kept after, a replaced one locked out", () => {
    const seed = seedScript();
    assert.doesNotMatch(seed, /^user=[a-z]/m, "no user name is baked into the script");
    assert.match(seed, /^user=\$\(head -n 1 "\$mnt\/user" /m);
    // refused: no name, root, or anything but a Linux user name
    assert.match(seed, /'' \| root \| \[!a-z_\]\* \| \*\[!a-z0-9_-\]\*\)/);
    // created only when absent (idempotent: an existing user keeps its home and files)
    assert.match(
      seed,
      /if ! getent passwd "\$user" >\/dev\/null; then\n {2}useradd --create-home --shell \/bin\/bash --groups sudo --password '!' "\$user"\n/,
    );
    assert.match(seed, /-lt 1000 .*\n.*system account/);
    // a seed naming another user: the old one may no longer log in
    assert.match(seed, /prev=\$\(head -n 1 \/etc\/fame\/user /);
    assert.match(seed, /usermod --expiredate 1970-01-02 "\$prev"/);
    assert.match(seed, /printf '%s\\n' "\$user" >\/etc\/fame\/user/);
    // the stack's names and sudo rule, the latter checked before it is put in place
    assert.match(seed, /install -m 644 "\$mnt\/hosts" \/etc\/hosts/);
    assert.match(
      seed,
      /install -m 440 -o root -g root "\$mnt\/sudoers" \/etc\/sudoers.d\/fame-user.new\n.*visudo -c -q -f \/etc\/sudoers.d\/fame-user.new; then mv -f/,
    );
    // the user's keys in its own home, group from the account (not assumed)
    assert.match(seed, /group=\$\(id -gn "\$user"\)/);
    assert.match(seed, /install -d -m 700 -o "\$user" -g "\$group" "\$home\/.ssh"/);
    const unit = file(base, "/etc/systemd/system/fame-seed.service")?.content ?? "";
    assert.match(unit, /^Before=ssh.service systemd-user-sessions.service$/m);
    assert.match(unit, /^StandardOutput=journal\+console$/m);
  });

  it("makes host keys on first boot and installs credentials from the seed disk", () => {
    const keys = file(base, "/etc/systemd/system/fame-ssh-hostkeys.service")?.content ?? "";
    assert.match(keys, /ConditionPathExists=!\/etc\/ssh\/ssh_host_ed25519_key/);
    assert.match(keys, /Before=ssh.service/);
    assert.match(keys, /ssh-keygen -q -t ed25519/);
    assert.doesNotMatch(keys, /-t rsa|ssh-keygen -A/);
    assert.match(
      file(base, "/etc/ssh/sshd_config.d/fame.conf")?.content ?? "",
      /^HostKey \/etc\/ssh\/ssh_host_ed25519_key$/m,
    );
    assert.equal(file(base, "/etc/initramfs-tools/conf.d/fame")?.content, "FSTYPE=ext4\n");
    const seed = seedScript();
    assert.match(seed, /^set -eu$/m);
    assert.match(seed, /blkid -L FAMESEED/);
    assert.match(seed, /00-fame-password.conf/);
    assert.match(seed, /password-hash/);
    assert.equal(file(base, "/usr/local/sbin/fame-seed")?.mode, 0o755);
    assert.equal(file(base, "/usr/local/share/fame/hello_fabric.c")?.content, base.helloFabric);
  });

  it("writes shell scripts that sh accepts (the seed script and the customize hook)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-sh-"));
    try {
      fs.writeFileSync(path.join(dir, "fame-seed"), seedScript());
      execFileSync("sh", ["-n", path.join(dir, "fame-seed")]);
      for (const script of ["customize.sh", "fame-fam.sh"]) {
        execFileSync("sh", ["-n", path.join(__dirname, "..", "..", "templates", "image", script)]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("builds the mmdebstrap command line: constant hooks, paths in the environment, the proxy as an apt option file", () => {
    const cmd = mmdebstrapCommand(imageRecipe(base), "/c/root/", {
      overlayDir: "/o",
      hookFile: "/c/customize.sh",
      aptProxyFile: "/c/apt-proxy.conf",
    });
    const args = cmd.args;
    assert.ok(
      args.includes(
        '--essential-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" && cp "$FAME_OVERLAY/etc/initramfs-tools/conf.d/fame" "$1/etc/initramfs-tools/conf.d/fame"',
      ),
    );
    assert.ok(args.includes('--customize-hook=sh "$FAME_HOOK" "$1" "$FAME_OVERLAY"'));
    assert.deepEqual(cmd.env, {
      FAME_OVERLAY: "/o",
      FAME_HOOK: "/c/customize.sh",
      FAME_HOLD: "",
    });
    assert.equal(args[0], "--variant=minbase");
    // The proxy (it may carry credentials) is a file's content, never an argument.
    assert.deepEqual(
      args.filter((a) => a.startsWith("--aptopt")),
      ["--aptopt=/c/apt-proxy.conf"],
    );
    assert.ok(args.includes('--setup-hook=chmod 600 "$1/etc/apt/apt.conf.d/99mmdebstrap"'));
    // Removed after fame's own customize hook, the last one that may still need apt.
    assert.deepEqual(
      args.filter((a) => a.startsWith("--customize-hook=")),
      [
        '--customize-hook=sh "$FAME_HOOK" "$1" "$FAME_OVERLAY"',
        '--customize-hook=rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap"',
      ],
    );
    const plain = mmdebstrapCommand(imageRecipe(base), "/r/", { overlayDir: "/o", hookFile: "/h" });
    assert.ok(!plain.args.some((a) => /^--(aptopt|setup-hook)/.test(a)));
    assert.equal(plain.args.filter((a) => a.startsWith("--customize-hook=")).length, 1);
    assert.ok(args.some((a) => a.startsWith("--include=systemd,")));
    assert.deepEqual(args.slice(-3), [
      "bookworm",
      "/c/root/",
      "deb http://deb.debian.org/debian bookworm main",
    ]);
  });
});

describe("golden image: the Debian release (fame:suite)", () => {
  const bookworm = imageRecipe({ ...base, suite: "bookworm" });
  const trixie = imageRecipe({ ...base, suite: "trixie" });

  it("builds the release it is given: mmdebstrap's suite and apt's sources name it", () => {
    assert.equal(trixie.suite, "trixie");
    assert.deepEqual(trixie.sources, ["deb http://deb.debian.org/debian trixie main"]);
    const args = mmdebstrapCommand(trixie, "/r/", { overlayDir: "/o", hookFile: "/h" }).args;
    assert.deepEqual(args.slice(-3), [
      "trixie",
      "/r/",
      "deb http://deb.debian.org/debian trixie main",
    ]);
    const sources = trixie.files.find((f) => f.path === "/etc/apt/sources.list");
    assert.equal(sources?.content, "deb http://deb.debian.org/debian trixie main\n");
    assert.throws(
      () => imageRecipe({ ...base, suite: "sid" as never }),
      /suite "sid": not a supported Debian release/,
    );
  });

  it("differs between releases only by the table: the DHCP client (ifupdown runs dhclient or dhcpcd), kernel arguments and trixie's boot files", () => {
    assert.deepEqual(SUITE_DIFFERENCES, {
      bookworm: { dhcpClient: "isc-dhcp-client", packages: [], cxlCmdline: [], bootFiles: [] },
      trixie: {
        dhcpClient: "dhcpcd-base",
        packages: ["e2fsprogs"],
        cxlCmdline: ["pcie_ports=compat", "clearcpuid=hypervisor"],
        bootFiles: [
          { path: "/etc/dhcpcd.conf", content: TRIXIE_DHCPCD_CONF, mode: 0o644 },
          {
            path: "/etc/systemd/system/ifupdown-pre.service.d/fame.conf",
            content: TRIXIE_IFUPDOWN_PRE,
            mode: 0o644,
          },
        ],
      },
    });
    assert.ok(trixie.packages.includes("dhcpcd-base"));
    assert.ok(!trixie.packages.includes("isc-dhcp-client"), "deprecated in trixie");
    assert.deepEqual(
      trixie.packages
        .filter((p) => !SUITE_DIFFERENCES.trixie.packages.includes(p))
        .map((p) => (p === "dhcpcd-base" ? "isc-dhcp-client" : p)),
      bookworm.packages,
    );
    for (const p of ["ifupdown", "linux-image-amd64", "zstd", "ndctl", "daxctl"])
      assert.ok(trixie.packages.includes(p), p);
    const other = (f: { path: string }) => f.path !== "/etc/apt/sources.list";
    const boot = new Set(SUITE_DIFFERENCES.trixie.bootFiles.map((f) => f.path));
    assert.deepEqual(
      trixie.files.filter((f) => other(f) && !boot.has(f.path)),
      bookworm.files.filter(other),
    );
    assert.deepEqual(trixie.files.slice(-2), SUITE_DIFFERENCES.trixie.bootFiles, "written last");
    for (const f of SUITE_DIFFERENCES.trixie.bootFiles)
      assert.ok(!bookworm.files.some((b) => b.path === f.path), `${f.path}: trixie only`);
    assert.deepEqual(
      { ...trixie, suite: "", packages: [], sources: [], files: [] },
      { ...bookworm, suite: "", packages: [], sources: [], files: [] },
    );
  });

  it("has fsck.ext4 on trixie (e2fsprogs, no longer Priority required), installed with the kernel, so its initrd checks the root", () => {
    // Bookworm's minbase has e2fsprogs (Priority required there): its package list stays as it was.
    assert.ok(!bookworm.packages.includes("e2fsprogs"));
    // In the one apt run of --include that installs the kernel, whose initrd is built at its end.
    const include = mmdebstrapCommand(trixie, "/r/", { overlayDir: "/o", hookFile: "/h" })
      .args.find((a) => a.startsWith("--include="))
      ?.slice("--include=".length)
      .split(",");
    assert.ok(include?.includes("e2fsprogs"));
    assert.ok(include?.includes("linux-image-amd64"));
    // initramfs-tools' fsck hook takes the type from FSTYPE (no fstab then): fsck.ext4.
    const conf = trixie.files.find((f) => f.path === INITRAMFS_CONF);
    assert.equal(conf?.content, "FSTYPE=ext4\n");
  });

  it("trims trixie's boot: dhcpcd skips the ARP probe, networking waits for eth0 alone", () => {
    const lines = TRIXIE_DHCPCD_CONF.split("\n").filter((l) => l && !l.startsWith("#"));
    // Debian's sample settings, all kept, and noarp.
    assert.deepEqual(lines, [
      "hostname",
      "duid",
      "persistent",
      "vendorclassid",
      "option domain_name_servers, domain_name, domain_search",
      "option classless_static_routes",
      "option interface_mtu",
      "option host_name",
      "option ntp_servers",
      "require dhcp_server_identifier",
      "slaac private",
      "noarp",
    ]);
    // The drop-in replaces ifupdown-pre's one command (an empty ExecStart= first), keeps
    // CONFIGURE_INTERFACES=no meaning "do nothing" and falls back on a full settle.
    assert.deepEqual(TRIXIE_IFUPDOWN_PRE.trim().split("\n"), [
      "[Service]",
      "ExecStart=",
      `ExecStart=/bin/sh -c 'if [ "$CONFIGURE_INTERFACES" != "no" ]; then udevadm wait --timeout=60 /sys/class/net/eth0 || udevadm settle; fi'`,
    ]);
    const sh = TRIXIE_IFUPDOWN_PRE.split("\n")[2]?.match(/-c '(.*)'$/)?.[1] ?? "";
    execFileSync("sh", ["-n", "-c", sh]);
  });

  it("boots trixie's CXL nodes with the two arguments its kernel needs on QEMU 7.2; IVSHMEM and bookworm command lines are unchanged", () => {
    const base = "root=/dev/vda rw console=ttyS0 net.ifnames=0";
    assert.equal(imageCmdline("bookworm", "ivshmem", "kvm"), base);
    assert.equal(imageCmdline("bookworm", "cxl", "kvm"), base);
    assert.equal(imageCmdline("trixie", "ivshmem", "kvm"), base);
    assert.equal(
      imageCmdline("trixie", "cxl", "kvm"),
      `${base} pcie_ports=compat clearcpuid=hypervisor`,
    );
  });

  it("boots fame's boot initrd under TCG on the image's own kernel only", () => {
    const stock = { l4fame: "", kernelPath: "" };
    assert.equal(bootsFameBoot("qemu", stock), true);
    assert.equal(bootsFameBoot("kvm", stock), false);
    assert.equal(bootsFameBoot("qemu", { ...stock, l4fame: "http://x/l4fame" }), false);
    assert.equal(bootsFameBoot("qemu", { ...stock, kernelPath: "/boot/vmlinuz" }), false);
  });

  it("turns the guest's speculation mitigations and unused board drivers off under TCG only, on both releases", () => {
    const base = "root=/dev/vda rw console=ttyS0 net.ifnames=0";
    const tcg =
      "mitigations=off modprobe.blacklist=floppy,pcspkr,psmouse,serio_raw,kvm,kvm_amd,kvm_intel,ccp,drm,ata_piix,ata_generic,i2c_piix4,cfg80211";
    assert.equal(TCG_CMDLINE.join(" "), tcg);
    assert.equal(imageCmdline("bookworm", "ivshmem", "qemu"), `${base} ${tcg}`);
    assert.equal(imageCmdline("trixie", "ivshmem", "qemu"), `${base} ${tcg}`);
    assert.equal(
      imageCmdline("trixie", "cxl", "qemu"),
      `${base} pcie_ports=compat clearcpuid=hypervisor ${tcg}`,
    );
    // What a graceful ACPI shutdown needs (the power button's input device) stays.
    assert.doesNotMatch(tcg, /[=,](evdev|button)(,|$)/);
    // Under KVM the guest runs on the real CPU: its mitigations and drivers stay.
    for (const suite of ["bookworm", "trixie"] as const)
      for (const mode of ["ivshmem", "cxl"] as const)
        assert.doesNotMatch(imageCmdline(suite, mode, "kvm"), /mitigations|blacklist/);
    // What fame booted before (the change report's reference for a record without bootArgs).
    assert.equal(legacyImageCmdline("bookworm", "cxl"), base);
    assert.equal(legacyImageCmdline("trixie", "ivshmem"), base);
    assert.equal(
      legacyImageCmdline("trixie", "cxl"),
      `${base} pcie_ports=compat clearcpuid=hypervisor`,
    );
  });

  it("gives each release its own cache key, and bookworm's exactly the key of the code before fame:suite", () => {
    // A literal recipe input, hashed by the code before fame:suite (main at a47b246, recipe version 3): an existing
    // stack's bookworm image (and so every node disk on it) must keep its key through the upgrade.
    const fixed: ImageInputs = {
      suite: "bookworm",
      mirror: "http://deb.debian.org/debian",
      l4fame: "",
      kernel: "linux-image-4.14.0-l4fame",
      sizeGbytes: 6,
      helloFabric: "int main(void) { return 0; }\n",
      famScript: "#!/bin/sh\n",
    };
    assert.equal(imageKey(imageRecipe(fixed), "hook"), "fc4ade68537927d3d7b98ef5");
    const l4fame = { ...fixed, l4fame: "http://l4fame.example/Debian" };
    assert.equal(imageKey(imageRecipe(l4fame), "hook"), "a3254a2e4d3a76f136d216e2");
    const t = imageKey(imageRecipe({ ...fixed, suite: "trixie" }), "hook");
    assert.notEqual(t, "fc4ade68537927d3d7b98ef5");
    assert.match(t, /^[0-9a-f]{24}$/);
  });
});

describe("golden image build: the proxy stays out of the image", () => {
  it("keeps mmdebstrap's copy of the proxy root-only during the build and removes it before the image is made", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fame-proxyhooks-"));
    try {
      const root = path.join(dir, "root");
      const conf = path.join(root, "etc/apt/apt.conf.d/99mmdebstrap");
      const cmd = mmdebstrapCommand(imageRecipe(base), `${root}/`, {
        overlayDir: path.join(dir, "overlay"),
        hookFile: path.join(dir, "customize.sh"),
        aptProxyFile: path.join(dir, "apt-proxy.conf"),
      });
      const hook = (flag: string, nth = 0) =>
        cmd.args.filter((a) => a.startsWith(flag)).map((a) => a.slice(flag.length))[nth] ?? "";
      // mmdebstrap: sh -c <hook> exec <rootdir>
      const runHook = (h: string) => execFileSync("sh", ["-c", h, "exec", `${root}/`]);
      // What mmdebstrap writes from --aptopt=<file> (mode from its umask) before the setup hooks.
      fs.mkdirSync(path.dirname(conf), { recursive: true });
      fs.writeFileSync(conf, aptProxyConf("http://bob:s3cret@proxy.lan:3128"), { mode: 0o644 });
      runHook(hook("--setup-hook="));
      assert.equal(fs.statSync(conf).mode & 0o777, 0o600);
      runHook(hook("--customize-hook=", 1));
      assert.ok(!fs.existsSync(conf), "the build's proxy is not in the image");
      assert.deepEqual(fs.readdirSync(path.dirname(conf)), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("golden image: FAM boot unit (both presentations)", () => {
  it("installs ndctl (with the cxl tool) and daxctl in every image, whatever the FAM mode", () => {
    const pkgs = imageRecipe(base).packages;
    assert.ok(pkgs.includes("ndctl"));
    assert.ok(pkgs.includes("daxctl"));
    assert.ok(imageRecipe({ ...base, l4fame: "http://l4fame/Debian" }).packages.includes("ndctl"));
  });

  it("runs fame-fam at every boot, its output on the console, and installs the script", () => {
    const svc = file(base, "/etc/systemd/system/fame-fam.service")?.content ?? "";
    assert.match(svc, /^ExecStart=\/usr\/local\/sbin\/fame-fam$/m);
    assert.match(svc, /^Type=oneshot$/m);
    // a guest reboot keeps QEMU's CXL device state: release it at shutdown
    assert.match(svc, /^ExecStop=\/usr\/local\/sbin\/fame-fam stop$/m);
    assert.match(svc, /^StandardError=journal\+console$/m);
    assert.match(svc, /^WantedBy=multi-user.target$/m);
    assert.deepEqual(file(base, "/usr/local/sbin/fame-fam"), {
      path: "/usr/local/sbin/fame-fam",
      content: base.famScript,
      mode: 0o755,
    });
    const hook = fs.readFileSync(
      path.join(__dirname, "..", "..", "templates", "image", "customize.sh"),
      "utf8",
    );
    assert.match(hook, /systemctl enable [^\n]*fame-fam\.service/);
  });

  it("brings CXL up as the issue's verified recipe says and refuses loudly otherwise", () => {
    const script = fs.readFileSync(
      path.join(__dirname, "..", "..", "templates", "image", "fame-fam.sh"),
      "utf8",
    );
    assert.match(
      script,
      /modprobe -a cxl_acpi cxl_pci cxl_mem cxl_pmem nd_pmem dax_pmem device_dax/,
    );
    assert.match(script, /cxl create-region -t pmem -d decoder0.0 -m -w 1 mem0/);
    // raw: a devdax namespace would write its info block into the shared FAM.
    assert.match(script, /ndctl create-namespace -r "\$region" -m raw/);
    assert.doesNotMatch(script, /-m devdax|-m fsdax/);
    assert.match(script, /\/run\/fame/);
    assert.match(script, /FAILED/);
    assert.match(script, /\/dev\/console/);
    assert.match(script, /cxl disable-memdev -f mem0/);
    assert.match(script, /ln -sfn "\$ivdev\/resource2" \/dev\/fam/);
  });
});

describe("golden image cache key", () => {
  const key = (i: ImageInputs, hook = "hook") => imageKey(imageRecipe(i), hook);

  it("is stable for the same inputs", () => {
    assert.equal(key(base), key({ ...base }));
    assert.match(key(base), /^[0-9a-f]{24}$/);
  });

  it("changes when any input changes", () => {
    const variants: Partial<ImageInputs>[] = [
      { suite: "trixie" },
      { mirror: "http://other/debian" },
      { l4fame: "http://l4fame/Debian" },
      { sizeGbytes: 8 },
      { helloFabric: "changed" },
      { famScript: "changed" },
    ];
    const keys = new Set([key(base), ...variants.map((v) => key({ ...base, ...v }))]);
    assert.equal(keys.size, variants.length + 1);
    assert.notEqual(key(base, "hook v2"), key(base));
  });

  it("is one image for every stack: user, hostbase and subnet are no image inputs", () => {
    // What a stack passes for its image (components/cluster imageArgs), for two different stacks.
    const image = (user: string, hostbase: string, octets123: string) =>
      goldenImageRecipe(
        imageArgs(
          validateConfig(
            resolveRaw(
              (k) => ({ user, hostbase, octets123 })[k as string],
              {},
              {
                project: "fame",
                stack: hostbase,
              },
            ),
          ).config,
        ),
      );
    const a = image("l4mdc", "node", "192.168.42");
    const b = image("dev", "tm", "10.77.1");
    assert.equal(a.key, b.key);
    assert.deepEqual(a.recipe, b.recipe);
    assert.deepEqual(a.inputs, b.inputs);
  });

  it("changes whenever the recipe does: any file, package, source or hold", () => {
    const r = imageRecipe(base);
    const k = imageKey(r, "hook");
    const seed = r.files.findIndex((f) => f.path === "/usr/local/sbin/fame-seed");
    const changed = [
      {
        ...r,
        files: r.files.map((f, i) => (i === seed ? { ...f, content: `${f.content}#\n` } : f)),
      },
      { ...r, files: r.files.map((f, i) => (i === seed ? { ...f, mode: 0o700 } : f)) },
      { ...r, packages: [...r.packages, "vim"] },
      { ...r, sources: [...r.sources, "deb http://x/ bookworm main"] },
      { ...r, hold: ["zstd"] },
    ];
    const keys = new Set([k, ...changed.map((c) => imageKey(c, "hook"))]);
    assert.equal(keys.size, changed.length + 1);
  });

  it("does not depend on the proxy (it is not an image input)", () => {
    const a = goldenImageRecipe({
      suite: base.suite,
      mirror: base.mirror,
      helloFabric: "x",
      hook: "h",
    });
    const b = goldenImageRecipe({
      suite: base.suite,
      mirror: base.mirror,
      helloFabric: "x",
      hook: "h",
      proxy: "http://p:3128",
    });
    assert.equal(a.key, b.key);
    // nor on its credentials, which are nowhere in the recipe or hook
    const c = goldenImageRecipe({
      suite: base.suite,
      mirror: base.mirror,
      helloFabric: "x",
      hook: "h",
      proxy: "http://bob:s3cret@p:3128",
    });
    assert.equal(c.key, a.key);
    assert.doesNotMatch(JSON.stringify([c.recipe, c.hook, c.inputs]), /s3cret/);
  });

  it("ignores the L4FAME kernel name while L4FAME is off (it is not used)", () => {
    assert.equal(key({ ...base, kernel: "linux-image-5.0-x" }), key(base));
    const l4 = { ...base, l4fame: "http://l4fame/Debian" };
    assert.notEqual(key({ ...l4, kernel: "linux-image-5.0-x" }), key(l4));
  });
});
