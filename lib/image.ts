/**
 * The golden image recipe: package set, apt sources, and every file written
 * into the image, derived purely from the image inputs. Its content hash is
 * the cache key, so a recipe is built once and reused by every stack that
 * asks for the same thing. Nothing of a stack is in it: the node user, its
 * sudo rule and /etc/hosts come from each node's seed disk at boot
 * (seedScript), so stacks with other users, names or subnets share the image.
 */
import * as crypto from "node:crypto";
import type { DomainType } from "./accel";
import { httpUrlProblem } from "./checks";
import type { FamMode, Suite } from "./config";
import { nodeName, TORMS_NAME } from "./plan";

/** Bump when the build procedure changes in a way the recipe does not show. */
export const RECIPE_VERSION = 3;
export const ROOT_LABEL = "fameroot";
export const SEED_LABEL = "FAMESEED";
/** The seed's /etc/hosts lists every possible node, so changing the node count never rewrites a seed. */
export const HOSTS_NODES = 253;
/** Copied in by the essential hook, before the kernel's initrd is built. */
export const INITRAMFS_CONF = "/etc/initramfs-tools/conf.d/fame";

/**
 * What the image is made of. The proxy is not here: it is how the build
 * reaches the mirror (passed to mmdebstrap at build time) and reaches nodes
 * through their seed disk at boot, so a proxy change never rebuilds the image.
 * Neither are the node user, hostbase and subnet: the seed disk carries them.
 */
export interface ImageInputs {
  /** Debian release (fame:suite). */
  suite: Suite;
  mirror: string;
  l4fame: string;
  kernel: string;
  sizeGbytes: number;
  /** Source of templates/hello_fabric.c, installed for building on the node. */
  helloFabric: string;
  /** Source of templates/image/fame-fam.sh, the boot script that brings FAM up as /dev/fam. */
  famScript: string;
  /** Optional additions (the Librarian File System, lib/lfs.ts); absent: the recipe is unchanged. */
  extras?: { packages: string[]; files: ImageFile[] };
}

export interface ImageFile {
  path: string;
  content: string;
  mode: number;
}

export interface ImageRecipe {
  suite: Suite;
  packages: string[];
  /** One-line apt sources, the first being the Debian mirror. */
  sources: string[];
  files: ImageFile[];
  /** Packages kept back from upgrades (the FAME kernel). */
  hold: string[];
  sizeGbytes: number;
}

/** What differs between two Debian releases (see SUITE_DIFFERENCES). */
export interface SuiteDifferences {
  /** The DHCP client ifupdown runs (a package of the image). */
  dhcpClient: string;
  /** Packages only this release's image has, after the common ones (bookworm: none, its key stays). */
  packages: readonly string[];
  /** Kernel arguments a CXL node of this release boots with (not in the image: no rebuild). */
  cxlCmdline: readonly string[];
  /**
   * Files only this release's image has: its boot trims (README "Boot time").
   * Bookworm has none and keeps none: its recipe is its cache key, so a file
   * added there would give every existing bookworm stack a new image and
   * replace all its node disks.
   */
  bootFiles: readonly ImageFile[];
}

/**
 * trixie's DHCP client configuration: Debian's sample (dhcpcd-base 10.1.0, its
 * settings without the comments) and `noarp`. A node's address is a static
 * reservation on its stack's own network, so the probe for another host
 * holding it (RFC 5227: about 5 s between offer and lease, measured under TCG)
 * finds nothing and only delays SSH.
 */
export const TRIXIE_DHCPCD_CONF = unit([
  "# fame: Debian's sample configuration (dhcpcd-base), and noarp (lib/image.ts).",
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
  "# Each node's address is a static DHCP reservation on the stack's network: no ARP probe.",
  "noarp",
]);

/**
 * Drop-in for ifupdown-pre.service, which otherwise holds networking (and so
 * sshd) until udev has handled every device of the coldplug (`udevadm
 * settle`, 12-25 s under TCG). ifup needs only the NIC: eth0, virtio-net.
 * `udevadm wait` returns once udev has initialized it; settle remains the
 * fallback if it never appears. It pays only where virtio_net is loaded
 * before udev starts (the image's own initrd, as under KVM): under TCG fame's
 * boot initrd loads only the root's drivers, udev loads virtio_net from the
 * NIC's coldplug event and eth0's own event joins the end of the queue, so
 * the wait lasts about as long as a settle (README, "Boot time").
 */
export const TRIXIE_IFUPDOWN_PRE = unit([
  "[Service]",
  "ExecStart=",
  `ExecStart=/bin/sh -c 'if [ "$CONFIGURE_INTERFACES" != "no" ]; then udevadm wait --timeout=60 /sys/class/net/eth0 || udevadm settle; fi'`,
]);

/**
 * Everything that differs between the releases, and only that. The kernel
 * (linux-image-amd64: 6.1 on bookworm, 6.12 on trixie), initramfs-tools,
 * ifupdown and every other package keep their names. The DHCP client does
 * not: trixie deprecates isc-dhcp-client (no longer maintained upstream) for
 * dhcpcd-base, which trixie's ifupdown recommends and runs as `dhcpcd <iface>`.
 * And trixie's kernel needs two arguments to use QEMU 7.2's CXL memory device
 * (6.1 needs neither):
 *  - `pcie_ports=compat`: since 6.3 cxl_pci sets up event-log interrupts when
 *    the OS owns CXL error reporting; QEMU 7.2 reports none ("Failed to get
 *    interrupt for event Info log") and the probe fails, so no memdev. With it
 *    the kernel requests no _OSC control and cxl_pci skips event setup (PCIe
 *    port services, AER, PME, hotplug, DPC, are off: a node uses none).
 *  - `clearcpuid=hypervisor`: since 6.2 committing a region first flushes CPU
 *    caches, which the kernel refuses under a hypervisor ("Failed to
 *    synchronize CPU cache state"); FAM is host memory (a mapped file), which
 *    needs no guest flush. Under KVM the guest also skips its paravirtual
 *    clock (it then believes it runs on bare metal).
 * IVSHMEM nodes (i440fx, no CXL) boot without them.
 */
export const SUITE_DIFFERENCES: Readonly<Record<Suite, SuiteDifferences>> = {
  bookworm: { dhcpClient: "isc-dhcp-client", packages: [], cxlCmdline: [], bootFiles: [] },
  trixie: {
    dhcpClient: "dhcpcd-base",
    // fsck.ext4. e2fsprogs is Priority important since trixie (required in bookworm), so
    // minbase leaves it out; initramfs-tools' fsck hook then copies no fsck.ext4, and the
    // initramfs's check of the root (its only one: systemd skips a root mounted rw) fails
    // ("error 2 ... while executing fsck.ext4") and sleeps 5 s.
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
};

/** The base package list of `suite` (order kept: it is part of the cache key). */
function basePackages(suite: Suite): string[] {
  return [
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "libpam-systemd",
    "kmod",
    "ifupdown",
    SUITE_DIFFERENCES[suite].dhcpClient,
    "iproute2",
    "iputils-ping",
    "netbase",
    "openssh-server",
    "openssh-client",
    "sudo",
    "build-essential",
    "ca-certificates",
    "less",
    // initramfs-tools is set to compress with zstd but does not pull it in.
    "zstd",
    // FAM as CXL memory (fame:famMode cxl): ndctl ships ndctl and cxl; daxctl for devdax.
    // Always installed, so both modes boot the same image.
    "ndctl",
    "daxctl",
    ...SUITE_DIFFERENCES[suite].packages,
  ];
}

/** Written by the fame-fam unit at every boot: "OK mode=... device=..." or "FAILED <reason>". */
export const FAM_STATUS_FILE = "/run/fame/fam.status";
/** The stable path of a node's FAM, whichever way it is presented. */
export const FAM_LINK = "/dev/fam";

const LOCALHOST_LINES = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"];

/** A stack's /etc/hosts (on its seed disks): torms and every possible node of the subnet. */
export function hostsFile(hostbase: string, octets123: string): string {
  const lines = [...LOCALHOST_LINES, `${octets123}.254\t${TORMS_NAME}`];
  for (let i = 1; i <= HOSTS_NODES; i++) lines.push(`${octets123}.${i}\t${nodeName(hostbase, i)}`);
  return `${lines.join("\n")}\n`;
}

function unit(lines: string[]): string {
  return `${lines.join("\n")}\n`;
}

/** sshd reads sshd_config.d in name order and keeps the first value: sorts before fame.conf. */
export const PASSWORD_SSHD_CONF = "/etc/ssh/sshd_config.d/00-fame-password.conf";

/** Where apt finds the file `aptProxyConf` makes, on a node (installed from the seed disk at boot). */
export const APT_PROXY_CONF = "/etc/apt/apt.conf.d/01fame-proxy";
/** Its name on the seed disk. */
export const SEED_APT_PROXY = "apt-proxy.conf";

/** Seed disk file names of the stack's identity (lib/outputs seedFiles writes them). */
export const SEED_USER = "user";
export const SEED_HOSTS = "hosts";
export const SEED_SUDOERS = "sudoers";
/** Where the seed script records the user it set up (a later seed naming another one locks it out). */
export const USER_RECORD = "/etc/fame/user";
export const SUDOERS_FILE = "/etc/sudoers.d/fame-user";

/** The node user's sudo rule (on the seed disk, installed at boot). */
export function sudoersLine(user: string): string {
  return `${user} ALL=(ALL) NOPASSWD:ALL\n`;
}

/**
 * Script run at every boot: sets the node up as its stack's from the seed
 * disk: /etc/hosts, the node user (created once, then kept with its home),
 * its sudo rule, SSH keys, password and apt proxy. Idempotent: a reboot
 * changes nothing a former boot made, unless the seed did.
 */
export function seedScript(): string {
  return unit([
    "#!/bin/sh",
    `# Installs this node's identity and credentials from the fame seed disk (label ${SEED_LABEL}).`,
    "set -eu",
    "mnt=/run/fame-seed",
    `pwconf=${PASSWORD_SSHD_CONF}`,
    "# blkid reads the disks itself: no wait on a .device unit, so a node without a seed boots on.",
    `dev=$(blkid -L ${SEED_LABEL} || true)`,
    `[ -n "$dev" ] || { udevadm settle --timeout=30 || true; dev=$(blkid -L ${SEED_LABEL} || true); }`,
    'if [ -z "$dev" ]; then echo "fame-seed: no seed disk, nothing to install"; exit 0; fi',
    'mkdir -p "$mnt"',
    'mount -t ext4 -o ro,nosuid,nodev,noexec "$dev" "$mnt"',
    "trap 'umount \"$mnt\"' EXIT",
    "# The stack's names: torms and every possible node.",
    `if [ -f "$mnt/${SEED_HOSTS}" ]; then install -m 644 "$mnt/${SEED_HOSTS}" /etc/hosts; fi`,
    `user=$(head -n 1 "$mnt/${SEED_USER}" 2>/dev/null || true)`,
    'case "$user" in',
    "  '' | root | [!a-z_]* | *[!a-z0-9_-]*)",
    `    echo "fame-seed: the seed disk names no valid node user in ${SEED_USER} ('$user')" >&2`,
    "    exit 1",
    "    ;;",
    "esac",
    `prev=$(head -n 1 ${USER_RECORD} 2>/dev/null || true)`,
    "# Created at the first boot that names it, then kept with its home and files.",
    'if ! getent passwd "$user" >/dev/null; then',
    "  useradd --create-home --shell /bin/bash --groups sudo --password '!' \"$user\"",
    'elif [ "$(id -u "$user")" -lt 1000 ]; then',
    '  echo "fame-seed: $user is a system account (uid $(id -u "$user")): not made the node user" >&2',
    "  exit 1",
    "fi",
    'if [ "$prev" != "$user" ]; then',
    "  # The seed names another user than an earlier boot: the old one keeps its home but may no longer log in.",
    '  if [ -n "$prev" ] && getent passwd "$prev" >/dev/null; then usermod --expiredate 1970-01-02 "$prev"; fi',
    "  usermod --expiredate '' \"$user\"",
    `  mkdir -p ${USER_RECORD.slice(0, USER_RECORD.lastIndexOf("/"))}`,
    `  printf '%s\\n' "$user" >${USER_RECORD}`,
    "fi",
    "# Checked before it is put in place: a broken sudoers file would lock sudo for everyone.",
    `if [ -f "$mnt/${SEED_SUDOERS}" ]; then`,
    // sudo ignores files in sudoers.d whose names contain a dot.
    `  install -m 440 -o root -g root "$mnt/${SEED_SUDOERS}" ${SUDOERS_FILE}.new`,
    `  if visudo -c -q -f ${SUDOERS_FILE}.new; then mv -f ${SUDOERS_FILE}.new ${SUDOERS_FILE}; else`,
    `    rm -f ${SUDOERS_FILE}.new`,
    '    echo "fame-seed: the seed\'s sudoers rule does not parse: sudo unchanged" >&2',
    "    exit 1",
    "  fi",
    "fi",
    'home=$(getent passwd "$user" | cut -d: -f6)',
    'group=$(id -gn "$user")',
    '[ -d "$home" ] || install -d -m 750 -o "$user" -g "$group" "$home"',
    'install -d -m 700 -o "$user" -g "$group" "$home/.ssh"',
    'for f in authorized_keys id_ed25519.pub; do [ -f "$mnt/$f" ] && install -m 644 -o "$user" -g "$group" "$mnt/$f" "$home/.ssh/$f"; done',
    '[ -f "$mnt/id_ed25519" ] && install -m 600 -o "$user" -g "$group" "$mnt/id_ed25519" "$home/.ssh/id_ed25519"',
    'printf "Host *\\n  StrictHostKeyChecking accept-new\\n" > "$home/.ssh/config"',
    'chown "$user:$group" "$home/.ssh/config"',
    'chmod 600 "$home/.ssh/config"',
    'if [ -s "$mnt/password-hash" ]; then',
    '  usermod -p "$(head -n 1 "$mnt/password-hash")" "$user"',
    '  echo "PasswordAuthentication yes" > "$pwconf"',
    'elif [ -e "$pwconf" ]; then',
    "  # The seed set a password at an earlier boot and no longer does: revoke only that one.",
    '  usermod -p "!" "$user"',
    '  rm -f "$pwconf"',
    "fi",
    "# apt's proxy comes from the seed, so changing it never rebuilds the image.",
    `if [ -f "$mnt/${SEED_APT_PROXY}" ]; then`,
    `  install -m 644 "$mnt/${SEED_APT_PROXY}" ${APT_PROXY_CONF}`,
    "else",
    `  rm -f ${APT_PROXY_CONF}`,
    "fi",
    'echo "fame-seed: user $user, names and credentials installed from $dev"',
  ]);
}

/** Throws when `value` is not a URL that is safe to write into apt's sources or configuration. */
function safeUrl(what: string, value: string): string {
  const problem = httpUrlProblem(value);
  if (problem) throw new RangeError(`${what} ${JSON.stringify(value)}: ${problem}`);
  return value;
}

/** apt configuration that sends http and https through `proxy` (refuses anything but a plain URL). */
export function aptProxyConf(proxy: string): string {
  const p = safeUrl("proxy", proxy);
  return `Acquire::http::Proxy "${p}";\nAcquire::https::Proxy "${p}";\n`;
}

export function imageRecipe(inputs: ImageInputs): ImageRecipe {
  const l4fame = inputs.l4fame.trim();
  if (!Object.hasOwn(SUITE_DIFFERENCES, inputs.suite))
    throw new RangeError(`suite ${JSON.stringify(inputs.suite)}: not a supported Debian release`);
  const sources = [`deb ${safeUrl("mirror", inputs.mirror)} ${inputs.suite} main`];
  if (l4fame) sources.push(`deb [trusted=yes] ${safeUrl("l4fame", l4fame)} testing main`);
  const kernelPackages = l4fame ? [inputs.kernel, "l4fame-node"] : ["linux-image-amd64"];

  const files: ImageFile[] = [
    // Replaced at boot by the stack's own from the seed disk (torms and the nodes).
    { path: "/etc/hosts", content: unit(LOCALHOST_LINES), mode: 0o644 },
    // Tells initramfs-tools the root type (it would probe the build host), so fsck runs at boot.
    { path: INITRAMFS_CONF, content: "FSTYPE=ext4\n", mode: 0o644 },
    { path: "/etc/fstab", content: "/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n", mode: 0o644 },
    {
      path: "/etc/network/interfaces",
      // net.ifnames=0 on the kernel command line keeps the NIC named eth0.
      content: unit([
        "source /etc/network/interfaces.d/*",
        "",
        "auto lo",
        "iface lo inet loopback",
        "",
        "auto eth0",
        "iface eth0 inet dhcp",
      ]),
      mode: 0o644,
    },
    { path: "/etc/apt/sources.list", content: unit(sources), mode: 0o644 },
    {
      path: "/etc/ssh/sshd_config.d/fame.conf",
      content: unit([
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "HostKey /etc/ssh/ssh_host_ecdsa_key",
      ]),
      mode: 0o644,
    },
    {
      path: "/etc/systemd/system/fame-ssh-hostkeys.service",
      content: unit([
        "[Unit]",
        "Description=Generate this node's own SSH host keys on first boot",
        "Before=ssh.service",
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key",
        "",
        "[Service]",
        "Type=oneshot",
        "# ECDSA and Ed25519 only (see HostKey in fame.conf): an RSA key costs ~20 s of emulated CPU.",
        "# The Ed25519 key, the condition above, is written last: an interrupted run is redone.",
        "ExecStart=/bin/rm -f /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/ssh_host_ed25519_key.pub",
        'ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key',
        'ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key',
        "RemainAfterExit=yes",
        "",
        "[Install]",
        "WantedBy=ssh.service",
      ]),
      mode: 0o644,
    },
    {
      path: "/etc/systemd/system/fame-seed.service",
      content: unit([
        "[Unit]",
        "Description=Install this node's user, names and credentials from the fame seed disk",
        "After=systemd-udev-trigger.service local-fs.target",
        "Before=ssh.service systemd-user-sessions.service",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/local/sbin/fame-seed",
        "RemainAfterExit=yes",
        // On the serial console log too: a node nobody can log in to says why there.
        "StandardOutput=journal+console",
        "StandardError=journal+console",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
      ]),
      mode: 0o644,
    },
    { path: "/usr/local/sbin/fame-seed", content: seedScript(), mode: 0o755 },
    {
      path: "/etc/systemd/system/fame-fam.service",
      content: unit([
        "[Unit]",
        `Description=Bring up fabric-attached memory (IVSHMEM or CXL) as ${FAM_LINK}`,
        "After=systemd-udev-trigger.service systemd-modules-load.service",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/local/sbin/fame-fam",
        "ExecStop=/usr/local/sbin/fame-fam stop",
        "RemainAfterExit=yes",
        "StandardOutput=journal+console",
        "StandardError=journal+console",
        "TimeoutStartSec=300",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
      ]),
      mode: 0o644,
    },
    { path: "/usr/local/sbin/fame-fam", content: inputs.famScript, mode: 0o755 },
    { path: "/usr/local/share/fame/hello_fabric.c", content: inputs.helloFabric, mode: 0o644 },
    ...(inputs.extras?.files ?? []),
    // Last, and none for bookworm: its recipe (and so its key) stays what it was.
    ...SUITE_DIFFERENCES[inputs.suite].bootFiles,
  ];

  return {
    suite: inputs.suite,
    packages: [
      ...basePackages(inputs.suite),
      ...kernelPackages,
      ...(inputs.extras?.packages ?? []),
    ],
    sources,
    files,
    hold: l4fame ? [inputs.kernel] : [],
    sizeGbytes: inputs.sizeGbytes,
  };
}

/** Content hash of the recipe (and the hook that applies it): the image's cache key. */
export function imageKey(recipe: ImageRecipe, hook: string): string {
  const canonical = JSON.stringify({ v: RECIPE_VERSION, recipe, hook }, (_k, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );
  return crypto.createHash("sha256").update(canonical).digest("hex").slice(0, 24);
}

/** Where the build keeps the generated files and the customize hook. */
export interface BuildPaths {
  /** Directory holding the recipe's files at their image paths. */
  overlayDir: string;
  /** The customize hook (templates/image/customize.sh) written to disk. */
  hookFile: string;
  /**
   * The build's apt proxy configuration (`aptProxyConf`), a file of mode 600:
   * the proxy may carry credentials, so it is never an argument (any local
   * user can read a command line). Absent: no proxy.
   */
  aptProxyFile?: string;
}

const INITRAMFS_CONF_DIR = INITRAMFS_CONF.slice(0, INITRAMFS_CONF.lastIndexOf("/"));
/**
 * mmdebstrap runs hooks as `sh -c <hook> exec <root>`. The hooks are constant
 * text: every path reaches them through the environment (FAME_OVERLAY,
 * FAME_HOOK), quoted, so no configured value is ever parsed by a shell.
 */
export const ESSENTIAL_HOOK = `mkdir -p "$1${INITRAMFS_CONF_DIR}" && cp "$FAME_OVERLAY${INITRAMFS_CONF}" "$1${INITRAMFS_CONF}"`;
export const CUSTOMIZE_HOOK = 'sh "$FAME_HOOK" "$1" "$FAME_OVERLAY"';
/** Where mmdebstrap keeps --aptopt options, inside the root; it stays there unless removed. */
export const MMDEBSTRAP_APT_CONF = "/etc/apt/apt.conf.d/99mmdebstrap";
/** Right after mmdebstrap writes it: readable by root only while the build runs. */
export const PROXY_PRIVATE_HOOK = `chmod 600 "$1${MMDEBSTRAP_APT_CONF}"`;
/**
 * After the last customize hook: the build's proxy leaves the image (nodes
 * get theirs from the seed disk; this file would override it, sorting after
 * 01fame-proxy, and would show a credential to every stack sharing the cache).
 */
export const PROXY_REMOVE_HOOK = `rm -f "$1${MMDEBSTRAP_APT_CONF}"`;

/** mmdebstrap's arguments and environment that build the recipe's root file system into `rootDir`. */
export function mmdebstrapCommand(
  recipe: ImageRecipe,
  rootDir: string,
  paths: BuildPaths,
): { args: string[]; env: Record<string, string> } {
  const proxy = paths.aptProxyFile;
  return {
    args: [
      "--variant=minbase",
      "--mode=root",
      `--include=${recipe.packages.join(",")}`,
      // mmdebstrap copies an existing file given as --aptopt into the root's 99mmdebstrap.
      ...(proxy ? [`--aptopt=${proxy}`, `--setup-hook=${PROXY_PRIVATE_HOOK}`] : []),
      // Before apt installs the kernel: its one initrd build must see the config.
      `--essential-hook=${ESSENTIAL_HOOK}`,
      `--customize-hook=${CUSTOMIZE_HOOK}`,
      ...(proxy ? [`--customize-hook=${PROXY_REMOVE_HOOK}`] : []),
      recipe.suite,
      rootDir,
      ...recipe.sources,
    ],
    env: {
      FAME_OVERLAY: paths.overlayDir,
      FAME_HOOK: paths.hookFile,
      FAME_HOLD: recipe.hold.join(" "),
    },
  };
}

/** The arguments every node has booted with since the first fame. */
const BASE_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0";

/**
 * Added under TCG only (domain type "qemu"), both releases (bench/boot.ts,
 * README "Boot time"): `mitigations=off`. The guest's Spectre-class
 * mitigations (return thunks, IBPB, buffer clearing) guard against a CPU's
 * speculation, which TCG does not emulate: translated guest code does not
 * speculate as the guest CPU model would, so they cost emulated time and
 * protect nothing. Under KVM the guest runs on the real CPU and keeps them.
 */
export const TCG_CMDLINE: readonly string[] = [
  "mitigations=off",
  // Drivers for board devices of QEMU's pc machine a node never uses (floppy, PC speaker,
  // PS/2 mouse, IDE, SMBus), for what TCG cannot offer (KVM in the guest, the AMD crypto
  // coprocessor) and for radios a node has none of (cfg80211, which trixie's networking
  // loads and then looks for a regulatory database): each costs emulated time at every
  // boot. evdev and button stay (the ACPI power button of a graceful shutdown).
  "modprobe.blacklist=floppy,pcspkr,psmouse,serio_raw,kvm,kvm_amd,kvm_intel,ccp,drm,ata_piix,ata_generic,i2c_piix4,cfg80211",
];

/**
 * Whether nodes boot fame's boot files instead of the image's: fame's boot
 * initrd (lib/bootinitrd) and the image's kernel unpacked for a PVH boot
 * (lib/bootkernel). Under TCG, on the image's own kernel (not L4FAME's, not
 * fame:kernelPath's). With the blacklist above the initrd shortens a boot by
 * about a quarter (either alone did not measurably); the unpacked kernel
 * saves the emulated CPU unpacking it (README "Boot time").
 */
export function bootsFameBoot(
  domainType: DomainType,
  config: { l4fame: string; kernelPath: string },
): boolean {
  return domainType === "qemu" && config.l4fame === "" && config.kernelPath === "";
}

/**
 * Kernel command line for a node booting the golden image of `suite`, seeing
 * FAM as `famMode`, in a domain of `domainType`. Not part of the image: a
 * change updates each domain in place (the node restarts on its own disk).
 */
export function imageCmdline(suite: Suite, famMode: FamMode, domainType: DomainType): string {
  const extra = famMode === "cxl" ? SUITE_DIFFERENCES[suite].cxlCmdline : [];
  return [BASE_CMDLINE, ...extra, ...(domainType === "qemu" ? TCG_CMDLINE : [])].join(" ");
}

/**
 * What imageCmdline gave before it had TCG_CMDLINE (fame up to issue 19): what
 * a node applied by that fame booted with, for the change report when its
 * record (applied.json) has no `bootArgs`.
 */
export function legacyImageCmdline(suite: Suite, famMode: FamMode): string {
  const extra = famMode === "cxl" ? SUITE_DIFFERENCES[suite].cxlCmdline : [];
  return [BASE_CMDLINE, ...extra].join(" ");
}
