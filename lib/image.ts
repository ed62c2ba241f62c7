/**
 * The golden image recipe: package set, apt sources, and every file written
 * into the image, derived purely from the image inputs. Its content hash is
 * the cache key, so a recipe is built once and reused by every stack that
 * asks for the same thing.
 */
import * as crypto from "node:crypto";
import { nodeName, TORMS_NAME } from "./plan";

/** Bump when the build procedure changes in a way the recipe does not show. */
export const RECIPE_VERSION = 1;
export const SUITE = "bookworm";
export const ROOT_LABEL = "fameroot";
export const SEED_LABEL = "FAMESEED";
/** /etc/hosts lists every possible node, so changing the node count never rebuilds the image. */
export const HOSTS_NODES = 253;

export interface ImageInputs {
  mirror: string;
  proxy: string;
  l4fame: string;
  kernel: string;
  user: string;
  hostbase: string;
  octets123: string;
  sizeGbytes: number;
  /** Source of templates/hello_fabric.c, installed for building on the node. */
  helloFabric: string;
}

export interface ImageFile {
  path: string;
  content: string;
  mode: number;
}

export interface ImageRecipe {
  suite: string;
  packages: string[];
  /** One-line apt sources, the first being the Debian mirror. */
  sources: string[];
  /** apt options for the build (proxy). */
  aptOptions: string[];
  files: ImageFile[];
  /** Packages kept back from upgrades (the FAME kernel). */
  hold: string[];
  user: string;
  sizeGbytes: number;
}

const BASE_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "udev",
  "dbus",
  "libpam-systemd",
  "kmod",
  "ifupdown",
  "isc-dhcp-client",
  "iproute2",
  "iputils-ping",
  "netbase",
  "openssh-server",
  "openssh-client",
  "sudo",
  "build-essential",
  "ca-certificates",
  "less",
];

export function hostsFile(hostbase: string, octets123: string): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    `${octets123}.254\t${TORMS_NAME}`,
  ];
  for (let i = 1; i <= HOSTS_NODES; i++) lines.push(`${octets123}.${i}\t${nodeName(hostbase, i)}`);
  return `${lines.join("\n")}\n`;
}

function unit(lines: string[]): string {
  return `${lines.join("\n")}\n`;
}

/** Script run at every boot: installs the node's credentials from the seed disk. */
export function seedScript(user: string): string {
  return unit([
    "#!/bin/sh",
    "# Installs this node's credentials from the fame seed disk (label FAMESEED).",
    "set -eu",
    `user=${user}`,
    `dev=/dev/disk/by-label/${SEED_LABEL}`,
    "mnt=/run/fame-seed",
    'if [ ! -e "$dev" ]; then echo "fame-seed: no seed disk, nothing to install"; exit 0; fi',
    'mkdir -p "$mnt"',
    'mount -o ro "$dev" "$mnt"',
    "trap 'umount \"$mnt\"' EXIT",
    'home=$(getent passwd "$user" | cut -d: -f6)',
    'install -d -m 700 -o "$user" -g "$user" "$home/.ssh"',
    'for f in authorized_keys id_ed25519.pub; do [ -f "$mnt/$f" ] && install -m 644 -o "$user" -g "$user" "$mnt/$f" "$home/.ssh/$f"; done',
    '[ -f "$mnt/id_ed25519" ] && install -m 600 -o "$user" -g "$user" "$mnt/id_ed25519" "$home/.ssh/id_ed25519"',
    'printf "Host *\\n  StrictHostKeyChecking accept-new\\n" > "$home/.ssh/config"',
    'chown "$user:$user" "$home/.ssh/config"',
    'chmod 600 "$home/.ssh/config"',
    'if [ -f "$mnt/password-hash" ]; then',
    '  usermod -p "$(cat "$mnt/password-hash")" "$user"',
    '  echo "PasswordAuthentication yes" > /etc/ssh/sshd_config.d/fame-password.conf',
    "else",
    '  usermod -p "!" "$user"',
    "  rm -f /etc/ssh/sshd_config.d/fame-password.conf",
    "fi",
    'echo "fame-seed: credentials installed for $user"',
  ]);
}

export function imageRecipe(inputs: ImageInputs): ImageRecipe {
  const l4fame = inputs.l4fame.trim();
  const sources = [`deb ${inputs.mirror} ${SUITE} main`];
  if (l4fame) sources.push(`deb [trusted=yes] ${l4fame} testing main`);
  const kernelPackages = l4fame ? [inputs.kernel, "l4fame-node"] : ["linux-image-amd64"];
  const proxyConf = inputs.proxy
    ? [`Acquire::http::Proxy "${inputs.proxy}";`, `Acquire::https::Proxy "${inputs.proxy}";`]
    : [];

  const files: ImageFile[] = [
    { path: "/etc/hosts", content: hostsFile(inputs.hostbase, inputs.octets123), mode: 0o644 },
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
    ...(proxyConf.length > 0
      ? [{ path: "/etc/apt/apt.conf.d/01fame-proxy", content: unit(proxyConf), mode: 0o644 }]
      : []),
    {
      path: "/etc/sudoers.d/fame-user",
      content: `${inputs.user} ALL=(ALL) NOPASSWD:ALL\n`,
      mode: 0o440,
    },
    { path: "/etc/fame/user", content: `${inputs.user}\n`, mode: 0o644 },
    {
      path: "/etc/ssh/sshd_config.d/fame.conf",
      content: unit([
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
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
        "ExecStart=/usr/bin/ssh-keygen -A",
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
        "Description=Install this node's credentials from the fame seed disk",
        `Wants=dev-disk-by\\x2dlabel-${SEED_LABEL}.device`,
        `After=dev-disk-by\\x2dlabel-${SEED_LABEL}.device local-fs.target`,
        "Before=ssh.service",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/local/sbin/fame-seed",
        "RemainAfterExit=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
      ]),
      mode: 0o644,
    },
    { path: "/usr/local/sbin/fame-seed", content: seedScript(inputs.user), mode: 0o755 },
    { path: "/usr/local/share/fame/hello_fabric.c", content: inputs.helloFabric, mode: 0o644 },
  ];

  return {
    suite: SUITE,
    packages: [...BASE_PACKAGES, ...kernelPackages],
    sources,
    aptOptions: proxyConf,
    files,
    hold: l4fame ? [inputs.kernel] : [],
    user: inputs.user,
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

/** mmdebstrap arguments that build the recipe's root file system into `rootDir`. */
export function mmdebstrapArgs(
  recipe: ImageRecipe,
  rootDir: string,
  customizeHook: string,
): string[] {
  return [
    "--variant=minbase",
    "--mode=root",
    `--include=${recipe.packages.join(",")}`,
    ...recipe.aptOptions.map((o) => `--aptopt=${o}`),
    `--customize-hook=${customizeHook}`,
    recipe.suite,
    rootDir,
    ...recipe.sources,
  ];
}

/** Kernel command line for a node booting the golden image. */
export function imageCmdline(): string {
  return "root=/dev/vda rw console=ttyS0 net.ifnames=0";
}
