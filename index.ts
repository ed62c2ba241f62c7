/**
 * fame: Fabric-Attached Memory Emulation. Reads the `fame:` stack config
 * (falling back to the original FAME_* variables), validates it before any
 * change, and builds one FameCluster.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as pulumi from "@pulumi/pulumi";
import { FameCluster } from "./components/cluster";
import { domainTypeFor } from "./lib/accel";
import { ConfigError, resolveRaw, validateConfig } from "./lib/config";
import { formatSize } from "./lib/units";

const project = pulumi.getProject();
const stack = pulumi.getStack();
const stackConfig = new pulumi.Config("fame");

const raw = resolveRaw((key) => stackConfig.get(key), process.env, { project, stack });
const password = stackConfig.getSecret("password");
let validated: ReturnType<typeof validateConfig>;
try {
  validated = validateConfig(raw, { memTotalKiB: Math.floor(os.totalmem() / 1024) });
} catch (e) {
  // One clear message, no stack trace, before any resource is registered.
  if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
  throw e;
}
const { config, warnings } = validated;
for (const w of warnings) pulumi.log.warn(w);

const cpuinfo = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "";
const domainType = domainTypeFor(config.accel, cpuinfo, fs.existsSync("/dev/kvm"));

const cluster = new FameCluster("fame", {
  config,
  domainType,
  owner: `${project}/${stack}`,
  stack,
  ...(password ? { password } : {}),
});

export const nodes = cluster.nodes;
export const nodeNames = cluster.nodes.map((n) => n.name);
export const macs = cluster.nodes.map((n) => n.mac);
export const ips = cluster.nodes.map((n) => n.ip);
export const nodeStates = cluster.nodeStates;
export const famPath = cluster.famPath;
export const famSizeBytes = cluster.famSizeBytes;
export const famSize = cluster.famSizeBytes.apply(formatSize);
export const networkName = cluster.networkName;
export const libvirtUri = cluster.libvirtUri;
export const accelerator = domainType === "kvm" ? "kvm" : "tcg";
export const publicKey = cluster.publicKey;
/** Save it: pulumi stack output --show-secrets privateKey > ~/.ssh/fame-<stack> */
export const privateKey = cluster.privateKey;
export const sshConfig = cluster.sshConfig;
export const sshCommands = cluster.sshCommands;
export const imageKey = cluster.imageKey;
export const imagePackages = cluster.imagePackages;
export const envFile = cluster.envFile;
