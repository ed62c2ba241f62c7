/**
 * Stack configuration: resolution (stack value, else FAME_* variable, else the
 * schema default) and validation. Pure: host facts come in as arguments, so
 * the same rules serve the program, the tests and the preview.
 */
import * as path from "node:path";
import { httpUrlProblem, redactUserinfo } from "./checks";
import { bookLayout } from "./librarian";
import { type KeySpec, PLAIN_KEYS, type PlainKey, SCHEMA } from "./schema";
import { formatSize, GiB, isPowerOfTwo, parseSize, TiB } from "./units";

export type Accel = "auto" | "kvm" | "tcg";
/** How nodes see FAM: an IVSHMEM PCI BAR (i440fx) or a CXL type-3 memory device (q35). */
export type FamMode = "ivshmem" | "cxl";
export const FAM_MODES: readonly FamMode[] = ["ivshmem", "cxl"];
/** The Debian release of the golden image (fame:suite). */
export type Suite = "bookworm" | "trixie";
export const SUITES: readonly Suite[] = ["bookworm", "trixie"];
/** A new stack's release when fame:suite is unset. */
export const NEW_STACK_SUITE: Suite = "trixie";
/** The release of every stack fame applied before it had fame:suite. */
export const LEGACY_SUITE: Suite = "bookworm";

/**
 * What the stack's last applied record (<dir>/applied.json) says about its
 * release: none (a new stack), a record (its `suite`, absent in a record
 * written before fame:suite existed), or a record that cannot be read.
 */
export type SuiteHistory =
  | { record: "none" }
  | { record: "applied"; suite?: Suite }
  | { record: "unreadable" };

/**
 * The release when neither fame:suite nor FAME_SUITE is set, and why. A stack
 * keeps the release it was applied with, so an upgrade of fame never replaces
 * its disks: a record without `suite` (or one that cannot be read: every
 * record before this key was) means bookworm; only a stack without a record is
 * new and gets trixie.
 */
export function defaultSuite(history: SuiteHistory): { suite: Suite; why: string } {
  const unset = "fame:suite unset";
  if (history.record === "none")
    return {
      suite: NEW_STACK_SUITE,
      why: `${unset}: a new stack (no applied.json) gets ${NEW_STACK_SUITE}`,
    };
  if (history.record === "applied" && history.suite)
    return {
      suite: history.suite,
      why: `${unset}: the release this stack was last applied with (applied.json)`,
    };
  const upgrade = `; set fame:suite ${NEW_STACK_SUITE} to upgrade (every node's disk is replaced)`;
  return history.record === "applied"
    ? {
        suite: LEGACY_SUITE,
        why: `${unset}: this stack was applied before fame had the key (its applied.json names no release), so its nodes keep ${LEGACY_SUITE}${upgrade}`,
      }
    : {
        suite: LEGACY_SUITE,
        why: `${unset}: applied.json cannot be read, so fame keeps ${LEGACY_SUITE}, the release of every stack applied before the key existed; set fame:suite to say which release this stack runs`,
      };
}

/** Validated, typed configuration. */
export interface FameConfig {
  nodes: number;
  /** 1-based numbers of the nodes that should run. */
  running: number[];
  shutdownTimeoutSeconds: number;
  famAllowShrink: boolean;
  dir: string;
  famPath: string;
  famSizeBytes: number;
  /** How nodes see FAM: IVSHMEM PCI BAR or CXL type-3 device. */
  famMode: FamMode;
  famDeleteOnDestroy: boolean;
  /** QEMU populates the whole FAM at each node's start (prealloc=on). */
  famPrealloc: boolean;
  /** Debian release of the golden image. */
  suite: Suite;
  vcpus: number;
  vdramKiB: number;
  vfsGbytes: number;
  user: string;
  mirror: string;
  proxy: string;
  l4fame: string;
  kernel: string;
  hostbase: string;
  octets123: string;
  libvirtUri: string;
  accel: Accel;
  famezSocket: string;
  imageCache: string;
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
  verbose: boolean;
  /** Run the Librarian File System (Librarian on torms, /lfs on the nodes). */
  librarian: boolean;
  /** tm-librarian: a git URL or a directory (relative: to the project directory). */
  librarianSource: string;
  /** Commit fetched from a git librarianSource. */
  librarianCommit: string;
  librarianPort: number;
  /** Run the Librarian supervised in this network namespace instead of a systemd unit ("" = systemd). */
  librarianNetns: string;
  /** Opt-in: a change that needs a new Librarian database may wipe it. */
  librarianReset: boolean;
  /** Run tm-librarian's monitoring server (lmp.py) on torms (default: with the Librarian). */
  librarianMonitor: boolean;
  librarianMonitorPort: number;
  /** The libfuse /lfs mounts through on the nodes: 2 or 3 (fame's adapter on either; templates/lfs/fusepy3.py). */
  lfsFuse: 2 | 3;
}

/** Where a resolved value came from, for messages and for env.sh. */
export type Source = "stack" | "env" | "default" | "computed";

export interface RawValue {
  value: string;
  source: Source;
  /** The environment variable that supplied the value, when source is "env". */
  envVar?: string;
}

export type RawConfig = Record<PlainKey, RawValue>;

export const MIN_VDRAM_KIB = 786432;
export const MAX_NODES = 253;
export const MIN_FAM_BYTES = GiB;
export const WARN_FAM_BYTES = 256 * GiB;
export const MAX_FAM_BYTES = TiB;
/** book_register places at most 80 nodes (8 enclosures x 10 nodes, an assert in FRDnode). */
export const MAX_LIBRARIAN_NODES = 80;
/** book_register wants books per node a multiple of 4 (one per media controller), so at least 4. */
export const MIN_BOOKS_PER_NODE = 4;

/** A librarianSource that is a URL (fetched with git) rather than a directory. */
export function isGitSource(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source.trim());
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `invalid fame configuration (nothing was changed):\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

function specDefault(spec: KeySpec): string | undefined {
  return spec.default === undefined ? undefined : String(spec.default);
}

/** fame:dir when unset: one directory per project and stack. */
export function defaultDir(ctx: { project: string; stack: string }): string {
  return `/var/lib/fame/${ctx.project}-${ctx.stack}`;
}

/**
 * Resolves every key. A value the stack sets always wins (also one equal to
 * the default, also ""); a FAME_* variable only fills a key the stack does not
 * set; then the schema default. Pulumi.yaml therefore declares no defaults
 * (the CLI would inject them into every stack, making "unset" and "set to the
 * default" indistinguishable): the program applies them from lib/schema.ts.
 */
export function resolveRaw(
  get: (key: PlainKey) => string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  ctx: { project: string; stack: string },
): RawConfig {
  const out = {} as RawConfig;
  for (const key of PLAIN_KEYS) {
    const spec: KeySpec = SCHEMA[key];
    const stackValue = get(key);
    const def = specDefault(spec);
    const fromEnv = (spec.env ?? [])
      .map((name) => ({ name, value: env[name] }))
      .find((e) => e.value !== undefined && e.value !== "");
    if (stackValue !== undefined) {
      out[key] = { value: stackValue, source: "stack" };
    } else if (fromEnv?.value !== undefined) {
      out[key] = { value: fromEnv.value, source: "env", envVar: fromEnv.name };
    } else if (def !== undefined) {
      out[key] = { value: def, source: "default" };
    } else {
      out[key] = { value: "", source: "computed" };
    }
  }
  if (out.dir.value === "") {
    out.dir = { value: defaultDir(ctx), source: "computed" };
  }
  if (out.famPath.value === "") {
    out.famPath = { value: path.posix.join(out.dir.value, "FAM"), source: "computed" };
  }
  // The monitor comes with the Librarian unless the stack says otherwise.
  if (out.librarianMonitor.source === "computed") {
    out.librarianMonitor = { value: out.librarian.value, source: "computed" };
  }
  return out;
}

/** Facts about the host that some rules need; absent facts skip those rules. */
export interface HostFacts {
  /** Total host RAM in KiB, for the nodes x DRAM warning and fame:famPrealloc's limit. */
  memTotalKiB?: number;
}

export interface Validated {
  config: FameConfig;
  warnings: string[];
  /** Which Debian release the nodes run, and why (said in the change report). */
  suiteReason: string;
}

const HOSTBASE_RE = /^[a-z][a-z0-9-]{0,7}$/;
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+$/;
/** qemu or qemu+unix, no host, /system or /session, at most a socket= query. */
const LOCAL_URI_RE = /^qemu(\+unix)?:\/\/\/(system|session)(\?socket=\/[^\s&]*)?$/;

/** A libvirt URI that reaches the QEMU driver on this host (no remote transport, no host name). */
export function isLocalQemuUri(uri: string): boolean {
  return LOCAL_URI_RE.test(uri);
}
const UNSAFE_PATH_RE = /[\0\n\r]/;
/** Characters no configured path may hold (C0 controls and DEL): no tool's syntax survives them. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** A value as messages and logs show it: a URL's credentials are replaced by ***. */
export function shownValue(value: string): string {
  return JSON.stringify(redactUserinfo(value));
}

function describe(key: PlainKey, raw: RawValue): string {
  const origin = raw.source === "env" ? ` (from ${raw.envVar})` : "";
  return `fame:${key} = ${shownValue(raw.value)}${origin}`;
}

/**
 * The stack's whole config as the SDK hands it to the program: "namespace:key"
 * -> value (every namespace), and the keys set with `pulumi config set --secret`.
 */
export interface StackConfig {
  values: Readonly<Record<string, string>>;
  secretKeys: readonly string[];
}

/** The namespace of fame's keys (the project name). */
export const NAMESPACE = "fame";

/** "fame:config:nodes" (the language host's older spelling) -> "fame:nodes". */
function cleanKey(key: string): string {
  return key.replace(/^([^:]+):config:/, "$1:");
}

/** Edit distance with adjacent transpositions (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => i + j),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known key an unknown one most likely meant: the one whose FAME_* variable
 * it names, else the closest by edit distance ignoring case, `_` and `-` (close:
 * at most 2 edits or a third of the name, or one name containing the other).
 */
export function closestKey(
  name: string,
  schema: Readonly<Record<string, KeySpec>> = SCHEMA,
): string | undefined {
  const keys = Object.keys(schema);
  const byEnv = keys.find((k) =>
    schema[k]?.env?.some((e) => e.toLowerCase() === name.toLowerCase()),
  );
  if (byEnv) return byEnv;
  const fold = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const n = fold(name);
  let best: { key: string; d: number } | undefined;
  for (const key of keys) {
    const k = fold(key);
    const contained = Math.min(k.length, n.length) >= 4 && (k.includes(n) || n.includes(k));
    const d = editDistance(n, k);
    if ((d <= Math.max(2, Math.floor(n.length / 3)) || contained) && (!best || d < best.d)) {
      best = { key, d };
    }
  }
  return best?.key;
}

/**
 * Problems with the stack's `fame:` keys themselves, before their values: a key
 * the schema lacks (a typo would otherwise leave the default in force without a
 * word), a key set with --secret that fame would write to plain files and
 * outputs, and a secret key (the password) stored in plain text. Keys of other
 * namespaces belong to Pulumi or providers and are left alone. Secret values are
 * never repeated in a message.
 */
export function stackKeyProblems(
  stack: StackConfig,
  schema: Readonly<Record<string, KeySpec>> = SCHEMA,
): string[] {
  const problems: string[] = [];
  const secret = new Set(stack.secretKeys.map(cleanKey));
  const prefix = `${NAMESPACE}:`;
  for (const [fullKey, value] of Object.entries(stack.values)) {
    const key = cleanKey(fullKey);
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    const isSecret = secret.has(key);
    const spec = Object.hasOwn(schema, name) ? schema[name] : undefined;
    const shown = isSecret ? `${key} (a secret)` : `${key} = ${JSON.stringify(value)}`;
    if (!spec) {
      const near = closestKey(name, schema);
      problems.push(
        `${shown}: unknown key, fame does not read it${near ? `; did you mean ${prefix}${near}?` : ""} (the keys are listed in README.md, Configuration; remove this one with \`pulumi config rm ${key}\`)`,
      );
    } else if (isSecret && !spec.secret && !spec.mayBeSecret) {
      problems.push(
        `${key} is set as a secret, but fame writes it to plain files, resource inputs and outputs, so it would not stay one: set it again without --secret (\`pulumi config set ${key} <value>\`)`,
      );
    } else if (!isSecret && spec.secret) {
      problems.push(
        `${key} is stored in plain text in the stack's config file, but it must be a secret: set it again with \`pulumi config set --secret ${key} <value>\``,
      );
    }
  }
  return problems;
}

/**
 * Validates resolved values (and, given the stack's config, its keys); throws
 * one ConfigError listing every problem. `history` decides the release when
 * fame:suite is unset (absent: a new stack).
 */
export function validateConfig(
  raw: RawConfig,
  host: HostFacts = {},
  stack?: StackConfig,
  history: SuiteHistory = { record: "none" },
): Validated {
  const problems: string[] = stack ? stackKeyProblems(stack) : [];
  const warnings: string[] = [];
  const bad = (key: PlainKey, rule: string) => problems.push(`${describe(key, raw[key])}: ${rule}`);

  const int = (key: PlainKey, min: number, max: number, rule?: string): number => {
    const text = raw[key].value.trim();
    const n = /^[+-]?\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n)) {
      bad(key, `must be an integer${rule ? ` (${rule})` : ""}`);
      return Number.NaN;
    }
    if (n < min || n > max) bad(key, rule ?? `must be between ${min} and ${max}`);
    return n;
  };
  const bool = (key: PlainKey): boolean => {
    const text = raw[key].value.trim().toLowerCase();
    if (["true", "yes", "1", "on"].includes(text)) return true;
    if (["false", "no", "0", "off", ""].includes(text)) return false;
    bad(key, "must be true or false");
    return false;
  };
  const absPath = (key: PlainKey, optional: boolean): string => {
    const value = raw[key].value;
    if (value === "" && optional) return "";
    if (!path.posix.isAbsolute(value)) bad(key, "must be an absolute path");
    else if (CONTROL_RE.test(value))
      bad(key, "must not contain control characters (NUL, newline, tab, ...)");
    else if (value.includes('"'))
      bad(
        key,
        "must not contain a double quote: apt, through which mmdebstrap builds the golden image, and libvirt's AppArmor helper, which confines the nodes' disks, kernel and initrd, cannot take one in a path",
      );
    else if (value.endsWith("/") && value !== "/") bad(key, "must name a file, not end with '/'");
    return value === "" ? "" : path.posix.normalize(value);
  };
  const url = (key: PlainKey, optional: boolean): string => {
    const value = raw[key].value.trim();
    if (value === "" && optional) return "";
    const problem = httpUrlProblem(value);
    if (problem) bad(key, problem);
    return value;
  };

  const nodes = int("nodes", 1, MAX_NODES, `must be an integer from 1 to ${MAX_NODES}`);

  const famSizeBytes = parseSize(raw.famSize.value) ?? Number.NaN;
  if (Number.isNaN(famSizeBytes)) {
    bad("famSize", "must be a size such as 16G (units K, M, G, T)");
  } else if (!isPowerOfTwo(famSizeBytes)) {
    bad("famSize", "must be a power of two (1G, 2G, 4G, ... 256G)");
  } else if (famSizeBytes < MIN_FAM_BYTES) {
    bad("famSize", "must be at least 1G");
  } else if (famSizeBytes > MAX_FAM_BYTES) {
    bad("famSize", "must be at most 1T");
  } else if (famSizeBytes > WARN_FAM_BYTES) {
    warnings.push(
      `fame:famSize = ${formatSize(famSizeBytes)} is above 256G, the largest size FAME is known to work with`,
    );
  }

  const famMode = raw.famMode.value.trim() as FamMode;
  if (!FAM_MODES.includes(famMode)) bad("famMode", `must be one of ${FAM_MODES.join(", ")}`);

  const suiteText = raw.suite.value.trim();
  let suite: Suite;
  let suiteReason: string;
  if (raw.suite.source === "computed") {
    ({ suite, why: suiteReason } = defaultSuite(history));
  } else {
    suite = suiteText as Suite;
    suiteReason = raw.suite.source === "env" ? `from ${raw.suite.envVar}` : "fame:suite";
    if (!SUITES.includes(suite))
      bad("suite", `must be one of ${SUITES.join(", ")} (the Debian release of the golden image)`);
  }

  const vcpus = int("vcpus", 1, 64);
  const vdramKiB = int(
    "vdram",
    MIN_VDRAM_KIB,
    64 * 1024 * 1024,
    `must be an integer number of KiB from ${MIN_VDRAM_KIB} to 67108864 (64 GiB)`,
  );
  if (
    host.memTotalKiB !== undefined &&
    Number.isSafeInteger(nodes) &&
    Number.isSafeInteger(vdramKiB) &&
    nodes * vdramKiB > host.memTotalKiB
  ) {
    warnings.push(
      `fame:nodes x fame:vdram = ${nodes} x ${vdramKiB} KiB exceeds this host's ${host.memTotalKiB} KiB of RAM`,
    );
  }
  const vfsGbytes = int("vfsGbytes", 2, 2048);

  const user = raw.user.value;
  if (!USER_RE.test(user)) {
    bad("user", "must be a Linux user name: lower-case letter or _, then letters, digits, _ or -");
  } else if (user === "root") {
    bad("user", "must not be root (the node user is the unprivileged account)");
  }

  const mirror = url("mirror", false);
  const proxy = url("proxy", true);
  const l4fame = url("l4fame", true);
  const kernel = raw.kernel.value;
  if (!PACKAGE_RE.test(kernel)) bad("kernel", "must be a Debian package name");

  const hostbase = raw.hostbase.value;
  if (!HOSTBASE_RE.test(hostbase)) {
    bad(
      "hostbase",
      "must be 1 to 8 characters, start with a lower-case letter and contain only a-z, 0-9 and '-' (it names the bridge br_<hostbase>, and Linux limits interface names)",
    );
  }

  const octets123 = raw.octets123.value.trim();
  const parts = octets123.split(".");
  if (parts.length !== 3 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) {
    bad("octets123", "must be exactly three dot-separated octets 0..255, such as 192.168.42");
  } else {
    const first = Number(parts[0]);
    if (first === 0 || first === 127 || first >= 224) {
      bad("octets123", "must not be in 0.0.0.0/8, 127.0.0.0/8 (loopback) or 224.0.0.0/3");
    } else if (!isPrivate(parts.map(Number))) {
      warnings.push(
        `fame:octets123 = ${octets123} is not a private (RFC 1918) range; nodes will shadow public addresses`,
      );
    }
  }

  const libvirtUri = raw.libvirtUri.value.trim();
  if (!isLocalQemuUri(libvirtUri)) {
    bad(
      "libvirtUri",
      "must be a local QEMU URI: qemu:///system or qemu:///session, optionally with ?socket=<path>; the FAM file, node disks, seed disks, AppArmor rule, image cache and accelerator probe are all on this host, so remote libvirt is not supported",
    );
  }

  const accel = raw.accel.value.trim() as Accel;
  if (!["auto", "kvm", "tcg"].includes(accel)) bad("accel", "must be one of auto, kvm, tcg");

  const before = problems.length;
  const dir = absPath("dir", false);
  // A famPath computed from a bad dir is not a second problem.
  const famPath =
    raw.famPath.source === "computed" && problems.length > before
      ? raw.famPath.value
      : absPath("famPath", false);
  const famezSocket = absPath("famezSocket", true);
  const imageCache = absPath("imageCache", false);
  const bootProblems = problems.length;
  const kernelPath = absPath("kernelPath", true);
  const initrdPath = absPath("initrdPath", true);
  if (problems.length === bootProblems && (kernelPath === "") !== (initrdPath === "")) {
    bad(
      initrdPath === "" ? "initrdPath" : "kernelPath",
      "kernelPath and initrdPath must be set together",
    );
  }
  const cmdline = raw.cmdline.value;
  if (UNSAFE_PATH_RE.test(cmdline)) bad("cmdline", "must be one line");

  const famDeleteOnDestroy = bool("famDeleteOnDestroy");
  const famAllowShrink = bool("famAllowShrink");
  const famPrealloc = bool("famPrealloc");
  // Preallocated FAM lives in the host's page cache: a FAM larger than RAM would thrash or be reclaimed.
  if (famPrealloc && host.memTotalKiB !== undefined && Number.isSafeInteger(famSizeBytes)) {
    const famKiB = famSizeBytes / 1024;
    if (famKiB >= host.memTotalKiB) {
      bad(
        "famPrealloc",
        `needs the whole FAM (fame:famSize = ${formatSize(famSizeBytes)}) in host memory, and this host has ${host.memTotalKiB} KiB of RAM: use a smaller fame:famSize or set fame:famPrealloc false`,
      );
    } else if (
      Number.isSafeInteger(nodes) &&
      Number.isSafeInteger(vdramKiB) &&
      famKiB + nodes * vdramKiB > host.memTotalKiB
    ) {
      warnings.push(
        `fame:famPrealloc holds the whole FAM (${formatSize(famSizeBytes)}) in host memory beside fame:nodes x fame:vdram = ${nodes} x ${vdramKiB} KiB: together more than this host's ${host.memTotalKiB} KiB of RAM`,
      );
    }
  }
  const shutdownTimeoutSeconds = int("shutdownTimeout", 0, 3600);
  const running = parseRunning(raw.running.value, nodes, hostbase, (rule) => bad("running", rule));
  const verbose = bool("verbose");

  const librarian = bool("librarian");
  const librarianReset = bool("librarianReset");
  const librarianPort = int("librarianPort", 1024, 65535, "must be a TCP port from 1024 to 65535");
  const librarianSource = raw.librarianSource.value.trim();
  const librarianCommit = raw.librarianCommit.value.trim().toLowerCase();
  const librarianNetns = raw.librarianNetns.value.trim();
  // Computed from fame:librarian, already judged there.
  const librarianMonitor =
    raw.librarianMonitor.source === "computed" ? librarian : bool("librarianMonitor");
  const librarianMonitorPort = int(
    "librarianMonitorPort",
    1024,
    65535,
    "must be a TCP port from 1024 to 65535",
  );
  if (librarianMonitor && !librarian)
    bad(
      "librarianMonitor",
      "must be false (or unset) while fame:librarian is off: the monitor shows the Librarian's database",
    );
  if (librarianMonitor && librarianMonitorPort === librarianPort)
    bad(
      "librarianMonitorPort",
      `must differ from fame:librarianPort (${librarianPort}): both listen on torms`,
    );
  const lfsFuse = int("lfsFuse", 2, 3, "must be 2 (libfuse 2) or 3 (libfuse 3)");
  if (!librarian && lfsFuse === 3)
    bad(
      "lfsFuse",
      "must be 2 (or unset) while fame:librarian is off: it chooses how nodes mount /lfs",
    );
  // ip-netns names: one path component under /run/netns.
  if (librarianNetns !== "" && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(librarianNetns))
    bad(
      "librarianNetns",
      "must be a network namespace name (ip netns): 1..64 of A-Z a-z 0-9 _ . -, not starting with . or -",
    );
  if (librarian) {
    if (Number.isSafeInteger(nodes) && nodes > MAX_LIBRARIAN_NODES) {
      bad(
        "nodes",
        `must be at most ${MAX_LIBRARIAN_NODES} while fame:librarian is on (the Librarian places at most ${MAX_LIBRARIAN_NODES} nodes)`,
      );
    } else if (Number.isSafeInteger(nodes) && Number.isFinite(famSizeBytes)) {
      const l = bookLayout(famSizeBytes, nodes);
      if (l.booksPerNode < MIN_BOOKS_PER_NODE) {
        bad(
          "famSize",
          `gives each of ${nodes} nodes ${l.booksPerNode} Librarian book(s) of ${formatSize(l.bookBytes)}; with fame:librarian on every node needs at least ${MIN_BOOKS_PER_NODE} (a larger famSize or fewer nodes)`,
        );
      }
    }
    if (librarianSource === "") {
      bad("librarianSource", "must be a git URL or a directory holding tm-librarian");
    } else if (isGitSource(librarianSource)) {
      let ok = false;
      try {
        const u = new URL(librarianSource);
        ok = ["http:", "https:", "git:", "ssh:", "file:"].includes(u.protocol);
      } catch {
        ok = false;
      }
      if (!ok || /[\s\0]/.test(librarianSource))
        bad(
          "librarianSource",
          "must be an http(s)://, git://, ssh:// or file:// git URL, or a directory",
        );
      if (!/^[0-9a-f]{40}$/.test(librarianCommit)) {
        bad(
          "librarianCommit",
          "must be a full commit id of 40 hex digits (a branch, tag or short id could move or be ambiguous)",
        );
      }
    } else if (UNSAFE_PATH_RE.test(librarianSource)) {
      bad("librarianSource", "must not contain NUL or newline characters");
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    config: {
      nodes,
      running,
      shutdownTimeoutSeconds,
      famAllowShrink,
      dir,
      famPath,
      famSizeBytes,
      famMode,
      famDeleteOnDestroy,
      famPrealloc,
      suite,
      vcpus,
      vdramKiB,
      vfsGbytes,
      user,
      mirror,
      proxy,
      l4fame,
      kernel,
      hostbase,
      octets123,
      libvirtUri,
      accel,
      famezSocket,
      imageCache,
      kernelPath,
      initrdPath,
      cmdline,
      verbose,
      librarian,
      librarianSource,
      librarianCommit,
      librarianPort,
      librarianNetns,
      librarianReset,
      librarianMonitor,
      librarianMonitorPort,
      lfsFuse: lfsFuse === 3 ? 3 : 2,
    },
    warnings,
    suiteReason,
  };
}

/**
 * "all", "none", or a list of node numbers or names -> sorted node numbers.
 * Names and numbers outside the cluster are refused (a typo must not stop nothing).
 */
export function parseRunning(
  value: string,
  nodes: number,
  hostbase: string,
  bad: (rule: string) => void,
): number[] {
  const text = value.trim().toLowerCase();
  const all = Array.from({ length: Number.isSafeInteger(nodes) ? nodes : 0 }, (_, i) => i + 1);
  if (text === "all") return all;
  if (text === "none" || text === "") return [];
  const picked = new Set<number>();
  for (const item of text.split(",").map((s) => s.trim())) {
    const digits = item.startsWith(hostbase) ? item.slice(hostbase.length) : item;
    const n = /^\d{1,3}$/.test(digits) ? Number(digits) : Number.NaN;
    if (!all.includes(n)) {
      bad(
        `must be all, none, or a comma-separated list of node numbers 1..${all.length} or names ${hostbase}01..; ${JSON.stringify(item)} is not a node of this cluster`,
      );
      return [];
    }
    picked.add(n);
  }
  return [...picked].sort((a, b) => a - b);
}

function isPrivate([a, b]: number[]): boolean {
  return a === 10 || (a === 172 && (b ?? 0) >= 16 && (b ?? 0) <= 31) || (a === 192 && b === 168);
}
