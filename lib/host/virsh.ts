/**
 * The one module that talks to libvirt. Every call is `virsh -c <uri> ...`
 * with an argument array; XML goes through a private temporary file. "Not found" comes back as
 * undefined/false, and only once libvirt's own list confirms the name is absent; "cannot
 * connect" and every other failure throw, so a daemon outage, a denied or failed lookup
 * never looks like a deleted object.
 */
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { type HostError, hostError, isHostError, run } from "./exec";

export type DomainState = "running" | "shut off" | "paused" | "other";

export interface NetworkInfo {
  active: boolean;
  autostart: boolean;
}

export function virsh(uri: string, args: readonly string[]): Promise<string> {
  return run("virsh", ["-q", "-c", uri, ...args]);
}

/** Runs `virsh <command> <file>` with `xml` in a private temporary file. */
async function withXmlFile(uri: string, command: string, xml: string): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "fame-virsh-"));
  try {
    const file = path.join(dir, "object.xml");
    await fs.writeFile(file, xml, { mode: 0o600 });
    await virsh(uri, [command, file]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

type ObjectKind = "domain" | "network";

/**
 * Confirms a "not found" failure `e` of a command on `kind` `name`: virsh
 * prints "failed to get domain|network" for lookups that failed for other
 * reasons too (access denied, internal error), so libvirt's list decides.
 * Throws (never not-found, `e`'s stderr kept) when the list still holds the
 * name or cannot be read.
 */
async function confirmAbsent(
  uri: string,
  e: HostError,
  kind: ObjectKind,
  name: string,
): Promise<void> {
  const listArgs = [kind === "domain" ? "list" : "net-list", "--all", "--name"];
  let names: string[];
  try {
    names = (await virsh(uri, listArgs)).split("\n").map((l) => l.trim());
  } catch (le) {
    throw hostError(
      isHostError(le, "unreachable") ? "unreachable" : "other",
      e.command,
      e.stderr,
      `${e.message}; cannot confirm that ${kind} ${name} is gone: ${le instanceof Error ? le.message : String(le)}`,
    );
  }
  if (names.includes(name)) {
    throw hostError(
      "other",
      e.command,
      e.stderr,
      `${e.message}; libvirt still lists ${kind} ${name}, so this is a failed lookup, not a deleted ${kind}`,
    );
  }
}

/**
 * Runs a lookup of `kind` `name`; a confirmed "not found" becomes undefined,
 * every other failure is thrown.
 */
async function lookup(
  uri: string,
  kind: ObjectKind,
  name: string,
  args: readonly string[],
): Promise<string | undefined> {
  try {
    return await virsh(uri, args);
  } catch (e) {
    if (!isHostError(e, "not-found")) throw e;
    await confirmAbsent(uri, e, kind, name);
    return undefined;
  }
}

/**
 * Runs a state change of `kind` `name` that is already done when libvirt says
 * so (e.g. "not running"), or when the object is confirmed gone.
 */
async function idempotent(
  uri: string,
  kind: ObjectKind,
  name: string,
  args: readonly string[],
  done: RegExp,
): Promise<void> {
  try {
    await virsh(uri, args);
  } catch (e) {
    if (!isHostError(e)) throw e;
    if (e.kind === "not-found") return confirmAbsent(uri, e, kind, name);
    if (done.test(e.stderr)) return;
    throw e;
  }
}

// ---------------------------------------------------------------- domains

/** Persistent definition of a domain, or undefined when there is none. */
export function domainXml(uri: string, name: string): Promise<string | undefined> {
  return lookup(uri, "domain", name, ["dumpxml", "--inactive", "--security-info", name]);
}

/** UUID of a defined domain; libvirt refuses to redefine a name without it. */
export async function domainUuid(uri: string, name: string): Promise<string | undefined> {
  return (await lookup(uri, "domain", name, ["domuuid", name]))?.trim() || undefined;
}

export async function domainState(uri: string, name: string): Promise<DomainState | undefined> {
  const out = await lookup(uri, "domain", name, ["domstate", name]);
  if (out === undefined) return undefined;
  const state = out.trim();
  return state === "running" || state === "shut off" || state === "paused" ? state : "other";
}

export async function defineDomain(uri: string, xml: string): Promise<void> {
  await withXmlFile(uri, "define", xml);
}

/**
 * Brings a domain to domstate "running": starts it, or resumes it when it is
 * paused (`virsh start` calls a paused domain "already active", which is not
 * running). Throws when it is in any other state or gone.
 */
export async function startDomain(uri: string, name: string): Promise<void> {
  try {
    await virsh(uri, ["start", name]);
    return;
  } catch (e) {
    if (!isHostError(e) || !/already active|already running/i.test(e.stderr)) throw e;
  }
  const state = (await lookup(uri, "domain", name, ["domstate", name]))?.trim();
  if (state === "running") return;
  if (state === "paused") {
    await virsh(uri, ["resume", name]);
    return;
  }
  throw new Error(
    `libvirt domain ${name} is ${state === undefined ? "gone" : `"${state}"`}, not running, after virsh start`,
  );
}

/** Forced power-off; a no-op for a domain that is not running. */
export async function destroyDomain(uri: string, name: string): Promise<void> {
  await idempotent(uri, "domain", name, ["destroy", name], /not running|domain is not active/i);
}

export async function undefineDomain(uri: string, name: string): Promise<void> {
  await idempotent(uri, "domain", name, ["undefine", name], /no domain with matching/i);
}

/**
 * Graceful stop: ACPI shutdown, then a forced power-off once `timeoutMs` has
 * passed without the guest powering off.
 */
export async function stopDomain(uri: string, name: string, timeoutMs: number): Promise<void> {
  if ((await domainState(uri, name)) !== "running") {
    await destroyDomain(uri, name);
    return;
  }
  if (timeoutMs > 0) {
    await idempotent(uri, "domain", name, ["shutdown", name], /not running|domain is not active/i);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const state = await domainState(uri, name);
      if (state === undefined || state === "shut off") return;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  await destroyDomain(uri, name);
}

// ---------------------------------------------------------------- networks

export function networkXml(uri: string, name: string): Promise<string | undefined> {
  return lookup(uri, "network", name, ["net-dumpxml", "--inactive", name]);
}

export async function networkInfo(uri: string, name: string): Promise<NetworkInfo | undefined> {
  const out = await lookup(uri, "network", name, ["net-info", name]);
  if (out === undefined) return undefined;
  const field = (label: string) =>
    new RegExp(`^${label}:\\s*(.*)$`, "mi").exec(out)?.[1]?.trim() ?? "";
  return {
    active: field("Active") === "yes",
    autostart: field("Autostart") === "yes",
  };
}

export async function listNetworks(uri: string): Promise<string[]> {
  const out = await virsh(uri, ["net-list", "--all", "--name"]);
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

export async function defineNetwork(uri: string, xml: string): Promise<void> {
  await withXmlFile(uri, "net-define", xml);
}

/** Starts a network; one already active is done, a missing one is an error. */
export async function startNetwork(uri: string, name: string): Promise<void> {
  try {
    await virsh(uri, ["net-start", name]);
  } catch (e) {
    if (!isHostError(e) || !/already active/i.test(e.stderr)) throw e;
  }
}

export async function setNetworkAutostart(uri: string, name: string, on: boolean): Promise<void> {
  await virsh(uri, on ? ["net-autostart", name] : ["net-autostart", "--disable", name]);
}

export async function destroyNetwork(uri: string, name: string): Promise<void> {
  await idempotent(uri, "network", name, ["net-destroy", name], /not active/i);
}

export async function undefineNetwork(uri: string, name: string): Promise<void> {
  await idempotent(uri, "network", name, ["net-undefine", name], /not found/i);
}

/**
 * Live + persistent edit of one section of a network (no restart), e.g.
 * ("add", "ip-dhcp-host", "<host .../>"). `--live` only when the network runs.
 */
export async function updateNetwork(
  uri: string,
  name: string,
  command: "add" | "delete" | "modify",
  section: "ip-dhcp-host" | "dns-host",
  xml: string,
  live: boolean,
): Promise<void> {
  const flags = live ? ["--live", "--config"] : ["--config"];
  await virsh(uri, ["net-update", name, command, section, xml.trim(), ...flags]);
}
