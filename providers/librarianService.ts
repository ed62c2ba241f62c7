/**
 * Dynamic provider for librarian.py serving a stack's database on torms,
 * restarted on failure and stopped on delete. librarian.py has no bind
 * option and listens on every interface, so it is confined:
 *  - `systemd` (hosts with systemd): a unit per stack whose traffic systemd
 *    limits to the node subnet and the node bridge (IPAddressAllow/Deny,
 *    RestrictNetworkInterfaces), Restart=on-failure;
 *  - `netns` (tests, hosts without systemd): fame's supervisor runs it inside
 *    a network namespace that holds only the node network (the test sandbox),
 *    restarting it when it exits.
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as lib from "../lib/host/librarian";
import { librarianSystemdUnit } from "../lib/lfs";
import { type CheckFailure, defineProvider, type Undo } from "./contract";

export interface LibrarianServiceInputs {
  /** `<project>/<stack>`: names the unit. */
  owner: string;
  mode: "systemd" | "netns";
  /** Network namespace for mode netns. */
  netns: string;
  /** Pid file and log (mode netns), e.g. the artifact directory. */
  stateDir: string;
  tmLibrarian: string;
  db: string;
  /** The database file's identity (LibrarianDb generation): a rebuilt database restarts the service. */
  dbGeneration: string;
  port: number;
  /** Node subnet (CIDR) and bridge the Librarian may talk to (mode systemd). */
  subnet: string;
  bridge: string;
}

export interface LibrarianServiceOutputs extends LibrarianServiceInputs {
  unit: string;
  running: boolean;
}

const KEYS = [
  "owner",
  "mode",
  "netns",
  "stateDir",
  "tmLibrarian",
  "db",
  "dbGeneration",
  "port",
  "subnet",
  "bridge",
] as const;

function unitFor(i: LibrarianServiceInputs) {
  return librarianSystemdUnit({
    owner: i.owner,
    tmLibrarian: i.tmLibrarian,
    db: i.db,
    port: i.port,
    subnet: i.subnet,
    bridge: i.bridge,
  });
}

/**
 * Installs and starts the service. `undo` (create): where the removal of a
 * unit or supervisor this call brought into being is registered; one already
 * there (left by an interrupted run) is adopted and stays.
 */
async function start(i: LibrarianServiceInputs, undo?: Undo): Promise<LibrarianServiceOutputs> {
  const u = unitFor(i);
  if (i.mode === "systemd") {
    if (undo && !(await lib.exists(path.join(lib.SYSTEMD_DIR, u.name)))) {
      undo.push(`remove unit ${u.name}`, () => lib.removeUnit(u.name));
    }
    await lib.installUnit(u.name, u.content);
    return { ...i, unit: u.name, running: await lib.unitActive(u.name) };
  }
  if (undo && (await lib.supervisorPid(i.stateDir, "librarian")) === undefined) {
    undo.push(`stop the Librarian supervisor in ${i.stateDir}`, () =>
      lib.stopSupervised(i.stateDir, "librarian"),
    );
  }
  await lib.startSupervised({
    stateDir: i.stateDir,
    name: "librarian",
    netns: i.netns,
    command: lib.librarianCommand(i.tmLibrarian, i.db, i.port),
  });
  return { ...i, unit: u.name, running: true };
}

/** Whether the service runs now (the unit is active, or the supervisor is alive). */
async function isRunning(o: LibrarianServiceOutputs): Promise<boolean> {
  return o.mode === "systemd"
    ? lib.unitActive(o.unit)
    : (await lib.supervisorPid(o.stateDir, "librarian")) !== undefined;
}

async function stop(o: LibrarianServiceOutputs): Promise<void> {
  if (o.mode === "systemd") await lib.removeUnit(o.unit);
  else await lib.stopSupervised(o.stateDir, "librarian");
}

/**
 * Problems with how a torms service of the Librarian runs (`mode`, `netns`)
 * and its port, for the known inputs. `service` names the config key that
 * turned it on and what it runs, for the message on a host without systemd.
 */
export async function checkServiceMode(
  news: Partial<{ mode: string; netns: string; port: number }>,
  service: { key: string; what: string },
): Promise<CheckFailure[]> {
  const failures: CheckFailure[] = [];
  if (news.mode !== undefined) {
    if (news.mode !== "systemd" && news.mode !== "netns")
      failures.push({
        property: "mode",
        reason: `mode ${JSON.stringify(news.mode)} must be systemd or netns`,
      });
    if (news.mode === "systemd" && !(await lib.hasSystemd()))
      failures.push({
        property: "mode",
        reason: `${service.key} needs systemd on the host (it runs ${service.what} as a confined unit per stack); without systemd, set fame:librarianNetns to a network namespace whose only network is the node network`,
      });
    if (news.mode === "netns" && "netns" in news) {
      if (!news.netns)
        failures.push({ property: "netns", reason: "mode netns needs a network namespace" });
      else if (!(await lib.netnsExists(news.netns)))
        failures.push({
          property: "netns",
          reason: `network namespace ${JSON.stringify(news.netns)} does not exist (ip netns list; fame:librarianNetns)`,
        });
    }
  }
  if (!(Number.isInteger(news.port) && (news.port ?? 0) > 0 && (news.port ?? 0) < 65536))
    failures.push({ property: "port", reason: `port ${news.port} must be a TCP port` });
  return failures;
}

export const librarianServiceProvider = defineProvider<
  LibrarianServiceInputs,
  LibrarianServiceOutputs
>({
  keys: KEYS,
  replaceKeys: ["owner", "mode", "netns", "stateDir"],
  // One unit per stack, one listener per port: the old service goes first.
  uniqueKeys: ["owner", "port"],
  // A Librarian that is not running (found dead by refresh, or stopped out of
  // band since: asked here, so no refresh is needed) is started again.
  needsRepair: async (olds) => olds.running === false || !(await isRunning(olds)),
  async check(news) {
    // Unknown inputs (preview) are absent here; the contract drops failures about them.
    return checkServiceMode(news, { key: "fame:librarian", what: "the Librarian" });
  },
  async create(inputs: LibrarianServiceInputs, undo: Undo) {
    const outs = await start(inputs, undo);
    return { id: outs.unit, outs };
  },
  async read(id: string, props?: LibrarianServiceOutputs) {
    if (!props) return {};
    return { id, props: { ...props, running: await isRunning(props) } };
  },
  async update(_id: string, olds: LibrarianServiceOutputs, news: LibrarianServiceInputs) {
    // librarian.py reads its database at start: restart with the new inputs.
    await stop(olds);
    return { outs: await start(news) };
  },
  async delete(_id: string, props: LibrarianServiceOutputs) {
    await stop(props);
  },
});

export type LibrarianServiceArgs = {
  [K in keyof LibrarianServiceInputs]: pulumi.Input<LibrarianServiceInputs[K]>;
};

export class LibrarianService extends pulumi.dynamic.Resource {
  declare readonly unit: pulumi.Output<string>;
  declare readonly running: pulumi.Output<boolean>;

  constructor(name: string, args: LibrarianServiceArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      librarianServiceProvider,
      name,
      { ...args, unit: undefined, running: undefined },
      opts,
      "fame",
      "LibrarianService",
    );
  }
}
