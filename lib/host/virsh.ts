/**
 * The one module that talks to libvirt. Every call is `virsh -c <uri> ...`
 * with an argument array; XML goes through a private temporary file. "Not found" comes back as
 * undefined/false, while "cannot connect" always throws, so a daemon outage
 * never looks like a deleted object.
 */
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { isHostError, run } from "./exec";

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

/** Runs a lookup; "not found" becomes undefined, every other failure is thrown. */
async function lookup(uri: string, args: readonly string[]): Promise<string | undefined> {
  try {
    return await virsh(uri, args);
  } catch (e) {
    if (isHostError(e, "not-found")) return undefined;
    throw e;
  }
}

/** Runs a state change that is already done when libvirt says so (e.g. "not running"). */
async function idempotent(uri: string, args: readonly string[], done: RegExp): Promise<void> {
  try {
    await virsh(uri, args);
  } catch (e) {
    if (isHostError(e) && (e.kind === "not-found" || done.test(e.stderr))) return;
    throw e;
  }
}

// ---------------------------------------------------------------- domains

/** Persistent definition of a domain, or undefined when there is none. */
export function domainXml(uri: string, name: string): Promise<string | undefined> {
  return lookup(uri, ["dumpxml", "--inactive", "--security-info", name]);
}

/** UUID of a defined domain; libvirt refuses to redefine a name without it. */
export async function domainUuid(uri: string, name: string): Promise<string | undefined> {
  return (await lookup(uri, ["domuuid", name]))?.trim() || undefined;
}

export async function domainState(uri: string, name: string): Promise<DomainState | undefined> {
  const out = await lookup(uri, ["domstate", name]);
  if (out === undefined) return undefined;
  const state = out.trim();
  return state === "running" || state === "shut off" || state === "paused" ? state : "other";
}

export async function defineDomain(uri: string, xml: string): Promise<void> {
  await withXmlFile(uri, "define", xml);
}

export async function startDomain(uri: string, name: string): Promise<void> {
  await idempotent(uri, ["start", name], /already active|already running/i);
}

/** Forced power-off; a no-op for a domain that is not running. */
export async function destroyDomain(uri: string, name: string): Promise<void> {
  await idempotent(uri, ["destroy", name], /not running|domain is not active/i);
}

export async function undefineDomain(uri: string, name: string): Promise<void> {
  await idempotent(uri, ["undefine", name], /no domain with matching/i);
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
    await idempotent(uri, ["shutdown", name], /not running|domain is not active/i);
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
  return lookup(uri, ["net-dumpxml", "--inactive", name]);
}

export async function networkInfo(uri: string, name: string): Promise<NetworkInfo | undefined> {
  const out = await lookup(uri, ["net-info", name]);
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

export async function startNetwork(uri: string, name: string): Promise<void> {
  await idempotent(uri, ["net-start", name], /already active/i);
}

export async function setNetworkAutostart(uri: string, name: string, on: boolean): Promise<void> {
  await virsh(uri, on ? ["net-autostart", name] : ["net-autostart", "--disable", name]);
}

export async function destroyNetwork(uri: string, name: string): Promise<void> {
  await idempotent(uri, ["net-destroy", name], /not active/i);
}

export async function undefineNetwork(uri: string, name: string): Promise<void> {
  await idempotent(uri, ["net-undefine", name], /not found/i);
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
