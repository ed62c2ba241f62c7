/** Text the stack hands to its user: SSH config, ssh commands, env.sh. Pure. */
import * as crypto from "node:crypto";
import { hasUserinfo } from "./checks";
import type { FameConfig } from "./config";
import {
  aptProxyConf,
  hostsFile,
  SEED_APT_PROXY,
  SEED_HOSTS,
  SEED_SUDOERS,
  SEED_USER,
  sudoersLine,
} from "./image";
import type { NodePlan } from "./plan";
import { formatSize } from "./units";

/** Where the README tells users to save the stack's private key. */
export function keyFileFor(stack: string): string {
  return `~/.ssh/fame-${stack}`;
}

export function sshCommand(node: NodePlan, user: string, keyFile: string): string {
  return `ssh -i ${keyFile} -o IdentitiesOnly=yes ${user}@${node.ip}`;
}

export function sshConfig(nodes: NodePlan[], user: string, keyFile: string): string {
  return nodes
    .map((n) =>
      [
        `Host ${n.name}`,
        `  HostName ${n.ip}`,
        `  User ${user}`,
        `  IdentityFile ${keyFile}`,
        "  IdentitiesOnly yes",
        "  StrictHostKeyChecking accept-new",
      ].join("\n"),
    )
    .join("\n\n")
    .concat("\n");
}

/** Single-quotes a value for POSIX sh. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The effective FAME_* values as the original's env.sh had them, so the
 * original tools (or a user's shell) can source them. Secrets are never
 * written: a proxy with credentials is left out (a redacted URL would be a
 * wrong proxy for whoever sources the file), and a comment says so.
 */
export function envSh(config: FameConfig, owner: string): string {
  const proxySecret = hasUserinfo(config.proxy);
  const vars: [string, string][] = [
    ["FAME_DIR", config.dir],
    ["FAME_FAM", config.famPath],
    ["FAME_FAM_SIZE", formatSize(config.famSizeBytes)],
    ["FAME_FAM_MODE", config.famMode],
    ["FAME_NODES", String(config.nodes)],
    ["FAME_VCPUS", String(config.vcpus)],
    ["FAME_VDRAM", String(config.vdramKiB)],
    ["FAME_VFS_GBYTES", String(config.vfsGbytes)],
    ["FAME_USER", config.user],
    ["FAME_SUITE", config.suite],
    ["FAME_MIRROR", config.mirror],
    ...(proxySecret ? [] : [["FAME_PROXY", config.proxy] as [string, string]]),
    ["FAME_L4FAME", config.l4fame],
    ["FAME_KERNEL", config.kernel],
    ["FAME_HOSTBASE", config.hostbase],
    ["FAME_OCTETS123", config.octets123],
    ["FAME_LIBVIRT_URI", config.libvirtUri],
    ["FAME_ACCEL", config.accel],
    ["FAME_IVSHMSG", config.famezSocket],
    ["FAME_VERBOSE", config.verbose ? "yes" : ""],
  ];
  const lines = [
    `# Effective FAME settings of the fame stack ${owner}, written by fame.`,
    "# Source it (. ./env.sh) to reuse them; fame reads these variables as defaults.",
    ...vars.map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    ...(proxySecret
      ? [
          "# FAME_PROXY is not written: fame:proxy carries credentials (user:password@), which fame",
          "# keeps out of its files; set FAME_PROXY yourself where you need it.",
        ]
      : []),
  ];
  return `${lines.join("\n")}\n`;
}

/** What makes a node its stack's, beyond its credentials: set up from the seed disk at boot. */
export interface SeedIdentity {
  user: string;
  hostbase: string;
  octets123: string;
}

/** The seed's identity files: the node user, its sudo rule and the stack's /etc/hosts. */
function identityFiles(id: SeedIdentity): Record<string, string> {
  return {
    [SEED_USER]: `${id.user}\n`,
    [SEED_SUDOERS]: sudoersLine(id.user),
    [SEED_HOSTS]: hostsFile(id.hostbase, id.octets123),
  };
}

/**
 * The files of a node's seed disk: the stack's identity (user, sudo rule,
 * /etc/hosts), the stack's key pair for the node user (authorized and usable
 * for node-to-node SSH) and, when set, the password and the apt proxy.
 */
export function seedFiles(
  identity: SeedIdentity,
  publicKey: string,
  privateKey: string,
  password = "",
  proxy = "",
): Record<string, string> {
  return {
    ...identityFiles(identity),
    authorized_keys: `${publicKey}\n`,
    "id_ed25519.pub": `${publicKey}\n`,
    id_ed25519: privateKey,
    ...(password ? { password } : {}),
    // The nodes' apt proxy, installed at boot (so a proxy change never rebuilds the image).
    ...(proxy ? { [SEED_APT_PROXY]: aptProxyConf(proxy) } : {}),
  };
}

/**
 * The seed disk's serial in the domain: names the identity it carries (not
 * the secrets), so a new user or subnet restarts the node to set it up at
 * boot, while a new password or proxy waits for the next boot.
 */
export function seedSerial(identity: SeedIdentity): string {
  const h = crypto.createHash("sha256");
  for (const [name, content] of Object.entries(identityFiles(identity)))
    h.update(`${name}\0${content}\0`);
  return h.digest("hex").slice(0, 20);
}
