/**
 * Dynamic provider for one node's libvirt domain with the FAM attached over
 * IVSHMEM. Every setting is updated in place (redefine, then restart a running
 * node so it boots with the new definition); only the libvirt URI and the
 * domain name force a replacement.
 */
import * as pulumi from "@pulumi/pulumi";
import { sameValue } from "../lib/diff";
import * as preflight from "../lib/host/preflight";
import * as virsh from "../lib/host/virsh";
import { SCHEMA } from "../lib/schema";
import { cxlProblem, type DomainSpec, domainXml, parseDomainXml } from "../lib/xml";
import { type CheckFailure, defineProvider, type Undo } from "./contract";

/** fame:shutdownTimeout's default, for state recorded before the field existed (a number: serialized by value). */
const DEFAULT_SHUTDOWN_MS = SCHEMA.shutdownTimeout.default * 1000;

export interface DomainInputs extends DomainSpec {
  uri: string;
  /** Desired power state. */
  running: boolean;
  /** Graceful shutdown budget before a forced power-off, in milliseconds. */
  shutdownTimeoutMs: number;
}

export type DomainOutputs = DomainInputs;

/** Properties that live in the domain definition: changing one needs a restart. */
export const DEFINITION_KEYS = [
  "type",
  "memoryKiB",
  "vcpus",
  "kernel",
  "initrd",
  "cmdline",
  "disks",
  "network",
  "mac",
  "consoleLog",
  "fam",
  "cxl",
  "famezSocket",
  "owner",
] as const satisfies readonly (keyof DomainSpec)[];
const KEYS = ["uri", "name", ...DEFINITION_KEYS, "running", "shutdownTimeoutMs"] as const;
const REPLACE_KEYS = ["uri", "name"] as const;

function specOf(inputs: DomainInputs): DomainSpec {
  const { uri: _u, running: _r, shutdownTimeoutMs: _s, ...spec } = inputs;
  return spec;
}

/**
 * Defines the domain and brings it to the desired power state. `existed`:
 * whether libvirt already had it (a new one needs no UUID and is not running).
 * `undo`: where a create registers the removal of a domain it defined.
 */
async function converge(
  inputs: DomainInputs,
  restart: boolean,
  existed = true,
  undo?: Undo,
): Promise<void> {
  const { uri, name } = inputs;
  // `restart` means the definition changed: only then (or for a new domain) is it defined again.
  if (restart || !existed) {
    const uuid = existed ? await virsh.domainUuid(uri, name) : undefined;
    await virsh.defineDomain(uri, domainXml(specOf(inputs), uuid));
    // A domain this create defined is removed if its start fails; an adopted one stays.
    if (!existed) {
      undo?.push(`undefine domain ${name}`, async () => {
        await virsh.destroyDomain(uri, name);
        await virsh.undefineDomain(uri, name);
      });
    }
  }
  const state = existed ? await virsh.domainState(uri, name) : "shut off";
  // A paused domain is on too: a restart or a stop powers it off (stopDomain forces it).
  if (state !== undefined && state !== "shut off" && (restart || !inputs.running)) {
    await virsh.stopDomain(uri, name, inputs.shutdownTimeoutMs);
  }
  // Starts a stopped node, resumes a paused one: running means domstate "running".
  if (inputs.running) await virsh.startDomain(uri, name);
}

export const domainProvider = defineProvider<DomainInputs, DomainOutputs>({
  keys: KEYS,
  replaceKeys: REPLACE_KEYS,
  // Two domains may not share a name, a MAC or a disk (two QEMUs on one
  // overlay would corrupt it): a replacement keeping any of them deletes first.
  uniqueKeys: ["name", "mac", "disks"],
  // A node meant to run that is not running (powered off by a FAM resize whose
  // own update then failed or was not targeted, paused out of band) is
  // started or resumed by update.
  needsRepair: async (olds) =>
    olds.running === true && (await virsh.domainState(olds.uri, olds.name)) !== "running",
  async check(news) {
    // Unknown inputs are absent here, and failures about them are dropped.
    const failures: CheckFailure[] = [];
    const need = (property: string, ok: boolean, reason: string) => {
      if (!ok) failures.push({ property, reason });
    };
    need(
      "name",
      /^[A-Za-z0-9_.-]{1,64}$/.test(news.name ?? ""),
      `domain name ${JSON.stringify(news.name)} is not valid`,
    );
    need(
      "memoryKiB",
      Number.isSafeInteger(news.memoryKiB) && (news.memoryKiB ?? 0) > 0,
      "memoryKiB must be a positive integer",
    );
    need(
      "vcpus",
      Number.isSafeInteger(news.vcpus) && (news.vcpus ?? 0) > 0,
      "vcpus must be a positive integer",
    );
    need(
      "mac",
      /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(news.mac ?? ""),
      `MAC ${JSON.stringify(news.mac)} is not valid`,
    );
    need(
      "fam",
      Boolean(news.fam?.path?.startsWith("/")) && (news.fam?.sizeBytes ?? 0) > 0,
      "fam needs an absolute path and a size",
    );
    need("kernel", Boolean(news.kernel?.startsWith("/")), "kernel must be an absolute path");
    // FAM as CXL: checked once every part of it is known (unknown parts are absent here).
    if (news.cxl && news.fam) {
      const problem = cxlProblem(news.fam, news.cxl);
      need("cxl", problem === "", problem);
    }
    // QEMU runs on this host for local URIs: it must offer the IVSHMEM devices fame attaches.
    if (/^qemu:\/\/\/(system|session)/.test(news.uri ?? "")) {
      const missing = await preflight.missingTools(["qemu-system-x86_64"]);
      for (const reason of missing) failures.push({ property: "type", reason });
      const devices = [
        ...(news.cxl ? ["pxb-cxl", "cxl-rp", "cxl-type3"] : ["ivshmem-plain"]),
        ...(news.famezSocket ? ["ivshmem-doorbell"] : []),
      ];
      for (const device of missing.length > 0 ? [] : devices) {
        if (!(await preflight.qemuHasDevice(device))) {
          failures.push({
            property: "fam",
            reason: `this host's QEMU does not offer the ${device} device fame attaches FAM with: install Debian's qemu-system-x86${news.cxl ? " (7.2 or later for CXL)" : ""}`,
          });
        }
      }
    }
    return failures;
  },

  async create(inputs: DomainInputs, undo: Undo) {
    const existing = await virsh.domainXml(inputs.uri, inputs.name);
    if (existing !== undefined) {
      // Adopt only a domain fame made for this owner (e.g. left by an interrupted run).
      const owner = parseDomainXml(existing).owner;
      if (owner !== inputs.owner) {
        throw new Error(
          `libvirt domain ${inputs.name} already exists and is not managed by this fame stack (owner ${JSON.stringify(owner)}); remove it (virsh undefine ${inputs.name}) or choose another fame:hostbase`,
        );
      }
    }
    await converge(inputs, existing !== undefined, existing !== undefined, undo);
    return { id: inputs.name, outs: { ...inputs } satisfies DomainOutputs };
  },

  async read(id: string, props?: DomainOutputs) {
    const uri = props?.uri;
    if (!uri) throw new Error(`cannot read domain ${id}: its libvirt URI is unknown`);
    const xml = await virsh.domainXml(uri, id);
    if (xml === undefined) return {};
    const state = await virsh.domainState(uri, id);
    const outs = {
      ...parseDomainXml(xml),
      uri,
      running: state === "running",
      shutdownTimeoutMs: props?.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_MS,
    } satisfies DomainOutputs;
    return { id, props: outs };
  },

  async update(_id: string, _olds: DomainOutputs, news: DomainInputs) {
    // libvirt's own definition decides, not the recorded state: a failed
    // update may have left another one behind (e.g. a FAM size QEMU refused).
    const xml = await virsh.domainXml(news.uri, news.name);
    const actual = xml === undefined ? undefined : parseDomainXml(xml);
    const redefined =
      actual === undefined || DEFINITION_KEYS.some((k) => !sameValue(actual[k], news[k]));
    await converge(news, redefined, xml !== undefined);
    return { outs: { ...news } satisfies DomainOutputs };
  },

  async delete(id: string, props: DomainOutputs) {
    await virsh.stopDomain(props.uri, id, props.shutdownTimeoutMs);
    await virsh.undefineDomain(props.uri, id);
  },
});

export type DomainArgs = { [K in keyof DomainInputs]: pulumi.Input<DomainInputs[K]> };

/** A libvirt domain (one FAME node) as a Pulumi resource. */
export class Domain extends pulumi.dynamic.Resource {
  declare readonly name: pulumi.Output<string>;
  declare readonly mac: pulumi.Output<string>;
  declare readonly running: pulumi.Output<boolean>;
  declare readonly fam: pulumi.Output<{ path: string; sizeBytes: number }>;

  constructor(name: string, args: DomainArgs, opts?: pulumi.CustomResourceOptions) {
    super(domainProvider, name, { ...args }, opts, "fame", "Domain");
  }
}
