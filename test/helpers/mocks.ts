/**
 * Runs fame's Pulumi program (or a component) under pulumi.runtime.setMocks and
 * records every resource registration, its inputs and its options.
 */

import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { BOOT_INITRD_FILE } from "../../lib/bootinitrd";
import { BOOT_KERNEL_FILE } from "../../lib/bootkernel";
import { hostFacts, type ProgramHostFacts } from "../../lib/host/hostfacts";
import { librarianUnitName, monitorUnitName, monitorUrl } from "../../lib/lfs";

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

export interface MockRun {
  resources: Registered[];
  ofType(type: string): Registered[];
}

/** Outputs that providers compute (beyond echoing inputs), faked per resource type. */
const COMPUTED: Record<string, (inputs: Record<string, unknown>) => Record<string, unknown>> = {
  "pulumi-nodejs:dynamic/fame:LibrarianService": (i) => ({
    unit: librarianUnitName(String(i.owner)),
    running: true,
  }),
  "pulumi-nodejs:dynamic/fame:LibrarianMonitor": (i) => ({
    unit: monitorUnitName(String(i.owner)),
    running: true,
    url: monitorUrl(String(i.host), Number(i.port)),
  }),
  "pulumi-nodejs:dynamic/fame:SshKey": (i) => ({
    publicKey: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOCK ${i.comment}`,
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nMOCK\n-----END OPENSSH PRIVATE KEY-----\n",
  }),
  "pulumi-nodejs:dynamic/fame:GoldenImage": (i) => ({
    dir: `${i.cacheDir}/${i.key}`,
    qcow2: `${i.cacheDir}/${i.key}/golden.qcow2`,
    kernel: `${i.cacheDir}/${i.key}/vmlinuz`,
    initrd: `${i.cacheDir}/${i.key}/initrd.img`,
    packages: ["openssh-server 1:9.2p1-2", "systemd 252.39-1"],
    buildSeconds: 0,
    reused: true,
  }),
  "pulumi-nodejs:dynamic/fame:BootInitrd": (i) => ({
    path: `${String(i.source).replace(/\/[^/]*$/, "")}/${BOOT_INITRD_FILE}`,
    kernelRelease: "6.1.0-mock-amd64",
    modules: ["virtio_pci", "virtio_blk", "ext4"],
  }),
  "pulumi-nodejs:dynamic/fame:BootKernel": (i) => ({
    path: `${String(i.source).replace(/\/[^/]*$/, "")}/${BOOT_KERNEL_FILE}`,
    pvhEntry: 0x1000850,
  }),
};

export function mockRun(): MockRun & { mocks: pulumi.runtime.Mocks } {
  const resources: Registered[] = [];
  const mocks: pulumi.runtime.Mocks = {
    newResource(args) {
      resources.push({ type: args.type, name: args.name, inputs: args.inputs });
      // Dynamic providers return their inputs as outputs, as create does, plus what they compute.
      const computed = COMPUTED[args.type]?.(args.inputs) ?? {};
      return { id: `${args.name}-id`, state: { ...args.inputs, ...computed } };
    },
    call(args) {
      return args.inputs;
    },
  };
  return { resources, mocks, ofType: (type) => resources.filter((r) => r.type === type) };
}

/** Resolves an Output's value (mocks never leave values unknown outside preview). */
export function settle<T>(o: pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => {
    pulumi.output(o).apply((v) => {
      resolve(v as T);
      return v;
    });
  });
}

/** Clears every FAME_* variable (and http_proxy) for the duration of a test run. */
export function withCleanEnv(extra: Record<string, string> = {}): () => void {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) {
    if (k.startsWith("FAME_") || k.toLowerCase() === "http_proxy") delete process.env[k];
  }
  Object.assign(process.env, extra);
  return () => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  };
}

const INDEX = path.join(__dirname, "..", "..", "index.ts");

/** A stack's `fame:` keys (without the namespace): a value, or `{ secret }` as set with --secret. */
export type StackConfigValues = Record<string, string | { secret: string }>;

/** Sets the stack config the program sees, marking `{ secret }` values as set with --secret. */
function setStackConfig(config: StackConfigValues): void {
  const values: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [k, v] of Object.entries(config)) {
    values[`fame:${k}`] = typeof v === "string" ? v : v.secret;
    if (typeof v !== "string") secretKeys.push(`fame:${k}`);
  }
  pulumi.runtime.setAllConfig(values, secretKeys);
}

/**
 * The host the program sees under test: no vmx/svm, no /dev/kvm, 64 GiB RAM,
 * and QEMU running as a user of its own (uid 64999, in no group but its own),
 * judged by mode bits: the paths tests use are reachable wherever the
 * checkout is (never the real machine; the reachability tests pass their own user).
 */
export const TEST_HOST: ProgramHostFacts = {
  cpuinfo: "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse sse2\n",
  kvmDevice: false,
  memTotalKiB: 64 * 1024 * 1024,
  qemuUser: {
    system: { user: { name: "fame-test-qemu", uid: 64999, gids: [64999], self: false } },
    session: { user: { name: "fame-test-qemu", uid: 64999, gids: [64999], self: false } },
  },
};

/** Loads index.ts afresh with `host` as the program's host facts. */
function loadProgram(host: ProgramHostFacts): Record<string, unknown> {
  const read = hostFacts.read;
  hostFacts.read = () => ({ ...host });
  try {
    delete require.cache[require.resolve(INDEX)];
    return require(INDEX) as Record<string, unknown>;
  } finally {
    hostFacts.read = read;
  }
}

/** Runs the program expecting it to refuse; returns the error and what was registered. */
export async function runProgramRefused(
  config: StackConfigValues,
  env: Record<string, string> = {},
  host: ProgramHostFacts = TEST_HOST,
): Promise<{ error: Error; resources: Registered[] }> {
  const run = mockRun();
  await pulumi.runtime.setMocks(run.mocks, "fame", "test", false);
  setStackConfig(config);
  const restore = withCleanEnv(env);
  try {
    loadProgram(host);
  } catch (e) {
    return { error: e as Error, resources: run.resources };
  } finally {
    restore();
  }
  throw new Error(`the program accepted ${JSON.stringify(config)}`);
}

/**
 * Loads index.ts afresh with the given `fame:` config under mocks, the way the
 * language host runs it: inside the root Stack resource, whose outputs are the
 * module's exports (Pulumi's own warnings about them, such as an undefined
 * output, happen there). Returns the program's exports (as plain values), the
 * registrations, and every pulumi.log.warn meanwhile (without an engine it
 * writes through console.warn, still called, so a test's own capture sees it).
 */
export async function runProgram(
  config: StackConfigValues,
  env: Record<string, string> = {},
  stack = "test",
  host: ProgramHostFacts = TEST_HOST,
): Promise<
  MockRun & { exports: Record<string, unknown>; secretExports: string[]; warnings: string[] }
> {
  const run = mockRun();
  await pulumi.runtime.setMocks(run.mocks, "fame", stack, false);
  setStackConfig(config);
  const restore = withCleanEnv(env);
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...m: unknown[]) => {
    warnings.push(m.join(" "));
    warn(...m);
  };
  try {
    let mod: Record<string, unknown> = {};
    await pulumi.runtime.runInPulumiStack(async () => {
      mod = loadProgram(host);
      return mod;
    });
    const exports: Record<string, unknown> = {};
    const secretExports: string[] = [];
    for (const [k, v] of Object.entries(mod)) {
      exports[k] = await settle(v as pulumi.Input<unknown>);
      if (pulumi.Output.isInstance(v) && (await pulumi.isSecret(v))) secretExports.push(k);
    }
    return { ...run, exports, secretExports, warnings };
  } finally {
    console.warn = warn;
    restore();
  }
}
