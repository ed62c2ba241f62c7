/**
 * Dynamic provider for the libvirt NAT network that joins the nodes. Node
 * hosts (static DHCP lease + DNS name) are edited live with `net-update`, so
 * adding or removing nodes never restarts the network.
 */
import * as pulumi from "@pulumi/pulumi";
import { sameValue } from "../lib/diff";
import * as preflight from "../lib/host/preflight";
import * as virsh from "../lib/host/virsh";
import {
  dhcpHostXml,
  dnsHostXml,
  type NetworkHost,
  type NetworkSpec,
  networkXml,
  parseNetworkXml,
} from "../lib/xml";
import { type CheckFailure, defineProvider, type Undo } from "./contract";

export interface NetworkInputs extends NetworkSpec {
  uri: string;
  autostart: boolean;
}

export interface NetworkOutputs extends NetworkInputs {
  /** Whether the network is running (always true after create/update). */
  active: boolean;
}

const KEYS = [
  "uri",
  "name",
  "bridge",
  "ip",
  "netmask",
  "hostNames",
  "hosts",
  "autostart",
  "owner",
] as const;
const REPLACE_KEYS = ["uri", "name", "bridge", "ip", "netmask", "hostNames", "owner"] as const;

/** The spec libvirt holds, normalised for comparison (hosts in MAC order). */
function normalise(spec: NetworkSpec): NetworkSpec {
  return {
    ...spec,
    hosts: [...spec.hosts].sort((a, b) => a.mac.localeCompare(b.mac)),
  };
}

/**
 * Makes libvirt's node entries match `want`, live: DHCP leases by MAC and DNS
 * names by IP, each converged on its own, so a run interrupted between the two
 * `net-update` calls of a host (a lease without its name, a name without its
 * lease) is repaired instead of failing. Returns the number of edits.
 */
async function syncHosts(
  uri: string,
  name: string,
  have: NetworkHost[],
  want: NetworkHost[],
  live: boolean,
): Promise<number> {
  const edit = (command: "add" | "delete", section: "ip-dhcp-host" | "dns-host", xml: string) =>
    virsh.updateNetwork(uri, name, command, section, xml, live);
  const leases = new Map(have.filter((h) => h.mac).map((h) => [h.mac.toLowerCase(), h]));
  const names = new Map(
    have.map((h) => [h.ip, h.dns ?? [h.name]] as const).filter(([, n]) => n.length > 0),
  );
  const wantByMac = new Map(want.map((w) => [w.mac.toLowerCase(), w]));
  const wantByIp = new Map(want.map((w) => [w.ip, w]));
  const sameLease = (h: NetworkHost | undefined, w: NetworkHost | undefined) =>
    h !== undefined && w !== undefined && h.name === w.name && h.ip === w.ip;
  const sameNames = (n: readonly string[] | undefined, w: NetworkHost | undefined) =>
    n !== undefined && w !== undefined && sameValue(n, [w.name]);
  let edits = 0;
  for (const [mac, h] of leases) {
    if (sameLease(h, wantByMac.get(mac))) continue;
    await edit("delete", "ip-dhcp-host", dhcpHostXml(h));
    edits++;
  }
  for (const [ip, n] of names) {
    if (sameNames(n, wantByIp.get(ip))) continue;
    await edit("delete", "dns-host", dnsHostXml(ip, [...n]));
    edits++;
  }
  for (const w of want) {
    if (!sameLease(leases.get(w.mac.toLowerCase()), w)) {
      await edit("add", "ip-dhcp-host", dhcpHostXml(w));
      edits++;
    }
    if (!sameNames(names.get(w.ip), w)) {
      await edit("add", "dns-host", dnsHostXml(w.ip, [w.name]));
      edits++;
    }
  }
  return edits;
}

async function ensureRunning(uri: string, name: string, autostart: boolean): Promise<boolean> {
  const info = await virsh.networkInfo(uri, name);
  if (!info?.active) await virsh.startNetwork(uri, name);
  if (info?.autostart !== autostart) await virsh.setNetworkAutostart(uri, name, autostart);
  return true;
}

function specOf(inputs: NetworkInputs): NetworkSpec {
  const { name, bridge, ip, netmask, hostNames, hosts, owner } = inputs;
  return { name, bridge, ip, netmask, hostNames, hosts, owner };
}

export const networkProvider = defineProvider<NetworkInputs, NetworkOutputs>({
  keys: KEYS,
  replaceKeys: REPLACE_KEYS,
  // Two networks cannot share a name, a bridge or a subnet: replace in place.
  uniqueKeys: ["name", "bridge", "ip"],
  // Hosts compare in MAC order, whatever order libvirt lists them in.
  project: (news) => ({ ...news, hosts: normalise(news).hosts }),
  projectOld: (olds) => ({ ...olds, hosts: normalise(olds).hosts }),
  // A network stopped (or its autostart changed) out of band is repaired by
  // update: libvirt is asked, so no refresh is needed first.
  needsRepair: async (olds) => {
    if (olds.active === false) return true;
    const info = await virsh.networkInfo(olds.uri, olds.name);
    return info?.active !== true || info.autostart !== olds.autostart;
  },
  async check(news) {
    const failures: CheckFailure[] = [];
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(news.bridge ?? "")) {
      failures.push({
        property: "bridge",
        reason: `bridge name ${JSON.stringify(news.bridge)} must be 1..15 characters of A-Z, a-z, 0-9, '_', '.', '-'`,
      });
    }
    const hosts = news.hosts ?? [];
    const macs = new Set(hosts.map((h) => h.mac.toLowerCase()));
    const ips = new Set(hosts.map((h) => h.ip));
    if (macs.size !== hosts.length || ips.size !== hosts.length) {
      failures.push({ property: "hosts", reason: "node MACs and IPs must be unique" });
    }
    // Preflight: libvirt reachable, bridge and subnet not taken by another network.
    const tools = await preflight.missingTools(["virsh"]);
    const { uri, name, bridge, ip, netmask } = news;
    if (
      uri === undefined ||
      name === undefined ||
      bridge === undefined ||
      ip === undefined ||
      netmask === undefined
    ) {
      return failures;
    }
    const conflicts =
      tools.length > 0
        ? tools
        : await preflight.networkConflicts(uri, {
            name,
            bridge,
            ip,
            netmask,
            ...(news.owner !== undefined ? { owner: news.owner } : {}),
          });
    for (const reason of conflicts) failures.push({ property: "name", reason });
    return failures;
  },

  async create(inputs: NetworkInputs, undo: Undo) {
    const existing = await virsh.networkXml(inputs.uri, inputs.name);
    if (existing !== undefined) {
      // Adopt a network left by an interrupted run, but only if it is the one we would make.
      const have = parseNetworkXml(existing);
      const want = specOf(inputs);
      if (have.owner !== inputs.owner) {
        throw new Error(
          `libvirt network ${inputs.name} already exists and belongs to ${have.owner ? `fame stack ${have.owner}` : "something other than fame"}, not ${inputs.owner}; choose another fame:hostbase (or remove that network)`,
        );
      }
      const { hosts: _h, ...haveShape } = have;
      const { hosts: _w, ...wantShape } = want;
      if (!sameValue(haveShape, wantShape)) {
        throw new Error(
          `libvirt network ${inputs.name} already exists with a different shape (bridge ${have.bridge}, address ${have.ip}/${have.netmask}); remove it (virsh net-destroy/net-undefine ${inputs.name}) or choose another fame:hostbase`,
        );
      }
      const info = await virsh.networkInfo(inputs.uri, inputs.name);
      await syncHosts(inputs.uri, inputs.name, have.hosts, want.hosts, info?.active === true);
    } else {
      const { uri, name } = inputs;
      await virsh.defineNetwork(uri, networkXml(specOf(inputs)));
      // Only a network this create defined is removed if starting it fails.
      undo.push(`undefine network ${name}`, async () => {
        await virsh.destroyNetwork(uri, name);
        await virsh.undefineNetwork(uri, name);
      });
    }
    const active = await ensureRunning(inputs.uri, inputs.name, inputs.autostart);
    return { id: inputs.name, outs: { ...inputs, active } satisfies NetworkOutputs };
  },

  async read(id: string, props?: NetworkOutputs) {
    const uri = props?.uri;
    if (!uri) throw new Error(`cannot read network ${id}: its libvirt URI is unknown`);
    const xml = await virsh.networkXml(uri, id);
    const info = await virsh.networkInfo(uri, id);
    if (xml === undefined || info === undefined) return {};
    const spec = parseNetworkXml(xml);
    const outs = {
      ...spec,
      uri,
      autostart: info.autostart,
      active: info.active,
    } satisfies NetworkOutputs;
    return { id, props: outs };
  },

  async update(_id: string, _olds: NetworkOutputs, news: NetworkInputs) {
    // Sync against what libvirt really holds, not the recorded state, so drift is repaired too.
    const xml = await virsh.networkXml(news.uri, news.name);
    if (xml === undefined) {
      await virsh.defineNetwork(news.uri, networkXml(specOf(news)));
    } else {
      const info = await virsh.networkInfo(news.uri, news.name);
      await syncHosts(
        news.uri,
        news.name,
        parseNetworkXml(xml).hosts,
        news.hosts,
        info?.active === true,
      );
    }
    const active = await ensureRunning(news.uri, news.name, news.autostart);
    return { outs: { ...news, active } satisfies NetworkOutputs };
  },

  async delete(id: string, props: NetworkOutputs) {
    await virsh.destroyNetwork(props.uri, id);
    await virsh.undefineNetwork(props.uri, id);
  },
});

export type NetworkArgs = { [K in keyof NetworkInputs]: pulumi.Input<NetworkInputs[K]> };

/** A libvirt NAT network as a Pulumi resource. */
export class Network extends pulumi.dynamic.Resource {
  declare readonly name: pulumi.Output<string>;
  declare readonly bridge: pulumi.Output<string>;
  declare readonly ip: pulumi.Output<string>;
  declare readonly hosts: pulumi.Output<NetworkHost[]>;
  declare readonly active: pulumi.Output<boolean>;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.CustomResourceOptions) {
    super(networkProvider, name, { ...args, active: undefined }, opts, "fame", "Network");
  }
}
