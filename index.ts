/**
 * fame: Fabric-Attached Memory Emulation. Reads the `fame:` stack config
 * (falling back to the original FAME_* variables), validates it before any
 * change, and builds one FameCluster.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { APPLIED_FILE, FameCluster, imageArgs } from "./components/cluster";
import { goldenImageRecipe } from "./components/goldenImage";
import { domainTypeFor, kvmAccessWarning, usesHostSystemLibvirtd } from "./lib/accel";
import { appliedConfig, describeChanges, parseApplied } from "./lib/changes";
import { ConfigError, resolveRaw, validateConfig } from "./lib/config";
import { hostFacts } from "./lib/host/hostfacts";
import { librarianDbRefusal } from "./lib/host/librarian";
import { ownershipFacts } from "./lib/host/ownership";
import { librarianIni as makeLibrarianIni } from "./lib/librarian";
import { ownershipProblems } from "./lib/ownership";
import { formatSize } from "./lib/units";

const project = pulumi.getProject();
const stack = pulumi.getStack();
const stackConfig = new pulumi.Config("fame");

const raw = resolveRaw((key) => stackConfig.get(key), process.env, { project, stack });
const password = stackConfig.getSecret("password");
const host = hostFacts.read();
let validated: ReturnType<typeof validateConfig>;
try {
  validated = validateConfig(raw, { memTotalKiB: host.memTotalKiB });
} catch (e) {
  // One clear message, no stack trace, before any resource is registered.
  if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
  throw e;
}
const { config, warnings } = validated;
for (const w of warnings) pulumi.log.warn(w);

const domainType = domainTypeFor(config.accel, host.cpuinfo, host.kvmDevice);
// Said in preview: a /dev/kvm the qemu user cannot open makes every define and start slow.
const kvmWarning = usesHostSystemLibvirtd(config.libvirtUri) ? kvmAccessWarning(host) : undefined;
if (kvmWarning) pulumi.log.warn(`fame: ${kvmWarning}`);

// What this change will do, said before anything happens (and refused when it would cut FAM data).
const owner = `${project}/${stack}`;
// Another stack's directory or FAM file is never written, adopted or deleted.
const foreign = ownershipProblems(ownershipFacts(config.dir, config.famPath), owner);
if (foreign.length > 0) {
  throw new pulumi.RunError(
    `refusing this change (nothing was changed):\n  - ${foreign.join("\n  - ")}`,
  );
}
const appliedFile = path.join(config.dir, APPLIED_FILE);
const appliedText = fs.existsSync(appliedFile) ? fs.readFileSync(appliedFile, "utf8") : undefined;
const parsed = appliedText === undefined ? undefined : parseApplied(appliedText, owner);
if (parsed && "problem" in parsed) {
  pulumi.log.warn(
    `fame: ignoring ${appliedFile} (${parsed.problem}): no account of consequences this time; the preview's resource list is complete`,
  );
}
const previous = parsed && "applied" in parsed ? parsed.applied : undefined;
// With the Librarian on this reads tm-librarian (fetching a git source once): refused before any change.
let image: ReturnType<typeof imageArgs>;
try {
  image = imageArgs(config);
} catch (e) {
  throw new pulumi.RunError(
    `invalid fame configuration (nothing was changed):\n  - ${(e as Error).message}`,
  );
}
const famStat = fs.statSync(config.famPath, { throwIfNoEntry: false });
const report = describeChanges(
  previous,
  appliedConfig(config, goldenImageRecipe(image).key, owner),
  config.famAllowShrink,
  famStat?.isFile() ? famStat.size : undefined,
);
if (report.errors.length > 0) {
  throw new pulumi.RunError(
    `refusing this change (nothing was changed):\n  - ${report.errors.join("\n  - ")}`,
  );
}
// The Librarian database is user data: a FAM size or node count change that needs a new one is refused
// here, before any change (the database resource's check says the same in preview), unless opted into.
if (config.librarian) {
  const refusal = librarianDbRefusal(
    path.join(config.dir, "librarian.db"),
    makeLibrarianIni(config.famSizeBytes, config.nodes),
    config.librarianReset,
  );
  if (refusal)
    throw new pulumi.RunError(`refusing this change (nothing was changed):\n  - ${refusal}`);
}
for (const line of report.info) pulumi.log.info(`fame: ${line}`);
if (previous?.famPath === config.famPath && !fs.existsSync(config.famPath)) {
  // Loud: the file was user data. The FAM resource's refresh sees it too and preview shows a create.
  pulumi.log.warn(
    `fame: the FAM file ${config.famPath} is gone (removed outside fame): its data is lost; this update creates it again, empty`,
  );
}
if (config.verbose) {
  for (const [key, value] of Object.entries(raw)) {
    pulumi.log.info(
      `fame: ${key} = ${JSON.stringify(value.value)} (${value.envVar ?? value.source})`,
    );
  }
}
for (const line of report.warnings) pulumi.log.warn(`fame: ${line}`);

const cluster = new FameCluster("fame", {
  config,
  domainType,
  owner,
  stack,
  ...(password ? { password } : {}),
  image,
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
export const librarianIni = cluster.librarianIni;
export const librarianIniPath = cluster.librarianIniPath;
export const librarianDb = cluster.librarianDb;
export const librarianUnit = cluster.librarianUnit;
