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
import {
  ConfigError,
  defaultDir,
  resolveRaw,
  type StackConfig,
  type SuiteHistory,
  shownValue,
  validateConfig,
} from "./lib/config";
import { hostFacts } from "./lib/host/hostfacts";
import { librarianDbRefusal } from "./lib/host/librarian";
import { ownershipFacts } from "./lib/host/ownership";
import { qemuUserFor, reachRefusals } from "./lib/host/reach";
import { bootsFameBoot } from "./lib/image";
import { fameBootArgs } from "./lib/lfs";
import { librarianIni as makeLibrarianIni } from "./lib/librarian";
import { ownershipProblems } from "./lib/ownership";
import { reachTargets } from "./lib/reach";
import { SCHEMA } from "./lib/schema";
import { formatSize } from "./lib/units";

const project = pulumi.getProject();
const stack = pulumi.getStack();
const stackConfig = new pulumi.Config("fame");

const raw = resolveRaw((key) => stackConfig.get(key), process.env, { project, stack });
const password = stackConfig.getSecret("password");
const host = hostFacts.read();

/** The whole stack config and its secret keys, so that unknown or mis-secreted `fame:` keys are refused. */
function stackConfigKeys(): StackConfig {
  const values = pulumi.runtime.allConfig();
  // isConfigSecret is exported by the SDK's runtime but left out of its typings. Without it, read the
  // language host's PULUMI_CONFIG_SECRET_KEYS, which is what it sees under the CLI.
  const isConfigSecret = (pulumi.runtime as { isConfigSecret?: (key: string) => boolean })
    .isConfigSecret;
  const fromEnv = (): string[] => {
    const list: unknown = JSON.parse(process.env.PULUMI_CONFIG_SECRET_KEYS || "[]");
    return Array.isArray(list) ? list.map(String) : [];
  };
  // allConfig drops the older "<namespace>:config:" spelling; the secret list may keep it.
  const secretKeys = isConfigSecret
    ? Object.keys(values).filter(
        (k) => isConfigSecret(k) || isConfigSecret(k.replace(/^([^:]+):/, "$1:config:")),
      )
    : fromEnv();
  return { values, secretKeys };
}

const owner = `${project}/${stack}`;
// The last applied record: what this change is compared with, and (fame:suite unset) the release the
// stack keeps. Read from fame:dir as validation will normalize it; a bad dir is refused there.
const appliedFile = path.posix.isAbsolute(raw.dir.value)
  ? path.join(path.posix.normalize(raw.dir.value), APPLIED_FILE)
  : undefined;
const appliedText =
  appliedFile && fs.existsSync(appliedFile) ? fs.readFileSync(appliedFile, "utf8") : undefined;
const parsed = appliedText === undefined ? undefined : parseApplied(appliedText, owner);
const suiteHistory: SuiteHistory =
  parsed === undefined
    ? { record: "none" }
    : "applied" in parsed
      ? { record: "applied", ...(parsed.applied.suite ? { suite: parsed.applied.suite } : {}) }
      : { record: "unreadable" };

let validated: ReturnType<typeof validateConfig>;
try {
  validated = validateConfig(
    raw,
    { memTotalKiB: host.memTotalKiB },
    stackConfigKeys(),
    suiteHistory,
  );
} catch (e) {
  // One clear message, no stack trace, before any resource is registered.
  if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
  throw e;
}
const { config, warnings, suiteReason } = validated;
for (const w of warnings) pulumi.log.warn(w);

const domainType = domainTypeFor(config.accel, host.cpuinfo, host.kvmDevice);
// Said in preview: a /dev/kvm the qemu user cannot open makes every define and start slow.
const systemQemu = host.qemuUser.system;
const kvmWarning = usesHostSystemLibvirtd(config.libvirtUri)
  ? kvmAccessWarning(host, "user" in systemQemu ? systemQemu.user : undefined)
  : undefined;
if (kvmWarning) pulumi.log.warn(`fame: ${kvmWarning}`);

// Another stack's directory or FAM file is never written, adopted or deleted.
const foreign = ownershipProblems(ownershipFacts(config.dir, config.famPath), owner);
if (foreign.length > 0) {
  throw new pulumi.RunError(
    `refusing this change (nothing was changed):\n  - ${foreign.join("\n  - ")}`,
  );
}
// What this change will do, said before anything happens (and refused when it would cut FAM data).
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
const goldenKey = goldenImageRecipe(image).key;
// QEMU runs as libvirt's user, which must search every directory on the way to what it opens;
// libvirt finds out only when a node starts ("Permission denied"), after the rest was built.
const qemu = qemuUserFor(config.libvirtUri, host.qemuUser);
if ("unknown" in qemu) {
  pulumi.log.warn(
    `fame: cannot check that QEMU can reach fame:dir, fame:famPath and fame:imageCache: ${qemu.unknown}`,
  );
} else {
  const targets = reachTargets(
    config,
    goldenKey,
    defaultDir({ project, stack }),
    SCHEMA.imageCache.default,
  );
  const { refusals, unjudged } = reachRefusals(targets, qemu.user);
  if (refusals.length > 0) {
    throw new pulumi.RunError(
      `refusing this configuration (nothing was changed):\n  - ${refusals.join("\n  - ")}`,
    );
  }
  for (const line of unjudged) pulumi.log.warn(`fame: ${line}`);
}
const famStat = fs.statSync(config.famPath, { throwIfNoEntry: false });
// Asked without the opt-in, so the report can say whether this update rebuilds the database.
const librarianRefusal = config.librarian
  ? librarianDbRefusal(
      path.join(config.dir, "librarian.db"),
      makeLibrarianIni(config.famSizeBytes, config.nodes),
      false,
    )
  : undefined;
const report = describeChanges(
  previous,
  appliedConfig(
    config,
    goldenKey,
    owner,
    fameBootArgs(config, domainType),
    bootsFameBoot(domainType, config),
  ),
  config.famAllowShrink,
  famStat?.isFile() ? famStat.size : undefined,
  { librarianReset: config.librarianReset, librarianRebuild: librarianRefusal !== undefined },
);
if (report.errors.length > 0) {
  throw new pulumi.RunError(
    `refusing this change (nothing was changed):\n  - ${report.errors.join("\n  - ")}`,
  );
}
// The Librarian database is user data: a FAM size or node count change that needs a new one is refused
// here, before any change (the database resource's check says the same in preview), unless opted into.
if (librarianRefusal && !config.librarianReset) {
  throw new pulumi.RunError(`refusing this change (nothing was changed):\n  - ${librarianRefusal}`);
}
pulumi.log.info(`fame: the nodes run Debian ${config.suite} (${suiteReason})`);
for (const line of report.info) pulumi.log.info(`fame: ${line}`);
if (previous?.famPath === config.famPath && !fs.existsSync(config.famPath)) {
  // Loud: the file was user data. The FAM resource's refresh sees it too and preview shows a create.
  pulumi.log.warn(
    `fame: the FAM file ${config.famPath} is gone (removed outside fame): its data is lost; this update creates it again, empty`,
  );
}
if (config.verbose) {
  for (const [key, value] of Object.entries(raw)) {
    // A proxy's credentials stay out of the log.
    pulumi.log.info(`fame: ${key} = ${shownValue(value.value)} (${value.envVar ?? value.source})`);
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
  ...(previous && previous.hostbase !== config.hostbase
    ? { previousHostbase: previous.hostbase }
    : {}),
});

// The stack outputs. One object, not `export const`s: an output that is undefined (the Librarian's, with
// it off) is left out instead of exported as undefined, which Pulumi warns about on every run.
export = {
  nodes: cluster.nodes,
  nodeNames: cluster.nodes.map((n) => n.name),
  macs: cluster.nodes.map((n) => n.mac),
  ips: cluster.nodes.map((n) => n.ip),
  nodeStates: cluster.nodeStates,
  famPath: cluster.famPath,
  famSizeBytes: cluster.famSizeBytes,
  famSize: cluster.famSizeBytes.apply(formatSize),
  networkName: cluster.networkName,
  libvirtUri: cluster.libvirtUri,
  accelerator: domainType === "kvm" ? "kvm" : "tcg",
  publicKey: cluster.publicKey,
  /** Save it: pulumi stack output --show-secrets privateKey > ~/.ssh/fame-<stack> */
  privateKey: cluster.privateKey,
  sshConfig: cluster.sshConfig,
  sshCommands: cluster.sshCommands,
  imageKey: cluster.imageKey,
  imagePackages: cluster.imagePackages,
  envFile: cluster.envFile,
  librarianIni: cluster.librarianIni,
  librarianIniPath: cluster.librarianIniPath,
  ...(cluster.librarianDb ? { librarianDb: cluster.librarianDb } : {}),
  ...(cluster.librarianUnit ? { librarianUnit: cluster.librarianUnit } : {}),
  ...(cluster.librarianMonitorUrl ? { librarianMonitorUrl: cluster.librarianMonitorUrl } : {}),
};
