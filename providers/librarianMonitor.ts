/**
 * Dynamic provider for tm-librarian's monitoring server (lmp.py, a Flask app)
 * on torms, run through fame's launcher (templates/torms/fame_lmp.py): it
 * reads a stack's Librarian database read-only and serves its pages (global
 * memory and books, nodes, interleave groups, shelves and their books) as
 * HTML, and as JSON to `Accept: application/json;version=1.0`. It listens
 * on the torms address only, and runs confined like the Librarian
 * (providers/librarianService.ts): a systemd unit limited to the node subnet
 * and bridge, or fame's supervisor inside the node network's namespace.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as lib from "../lib/host/librarian";
import { monitorSystemdUnit, monitorUrl } from "../lib/lfs";
import { defineProvider, type Undo } from "./contract";
import { checkServiceMode } from "./librarianService";

export interface LibrarianMonitorInputs {
  /** `<project>/<stack>`: names the unit. */
  owner: string;
  mode: "systemd" | "netns";
  /** Network namespace for mode netns. */
  netns: string;
  /** Pid file, log (mode netns) and lmp.py's FIFO, e.g. the artifact directory. */
  stateDir: string;
  tmLibrarian: string;
  db: string;
  /** The database file's identity (LibrarianDb generation): lmp.py keeps the file open, so a rebuilt one restarts it. */
  dbGeneration: string;
  /** Address to listen on: torms on the node bridge. */
  host: string;
  port: number;
  /** Node subnet (CIDR) and bridge the monitor may talk to (mode systemd). */
  subnet: string;
  bridge: string;
}

export interface LibrarianMonitorOutputs extends LibrarianMonitorInputs {
  unit: string;
  running: boolean;
  /** The monitor's start page. */
  url: string;
}

const KEYS = [
  "owner",
  "mode",
  "netns",
  "stateDir",
  "tmLibrarian",
  "db",
  "dbGeneration",
  "host",
  "port",
  "subnet",
  "bridge",
] as const;

function command(i: LibrarianMonitorInputs): string[] {
  return lib.monitorCommand({
    tmLibrarian: i.tmLibrarian,
    db: i.db,
    host: i.host,
    port: i.port,
    fifo: lib.monitorFifo(i.stateDir),
  });
}

function unitFor(i: LibrarianMonitorInputs) {
  return monitorSystemdUnit({
    owner: i.owner,
    command: command(i),
    url: monitorUrl(i.host, i.port),
    subnet: i.subnet,
    bridge: i.bridge,
  });
}

/**
 * Installs and starts the monitor. `undo` (create): where the removal of a
 * unit or supervisor this call brought into being is registered; one already
 * there (left by an interrupted run) is adopted and stays.
 */
async function start(i: LibrarianMonitorInputs, undo?: Undo): Promise<LibrarianMonitorOutputs> {
  const u = unitFor(i);
  const url = monitorUrl(i.host, i.port);
  if (i.mode === "systemd") {
    if (undo && !(await lib.exists(path.join(lib.SYSTEMD_DIR, u.name)))) {
      undo.push(`remove unit ${u.name}`, () => lib.removeUnit(u.name));
    }
    await lib.installUnit(u.name, u.content);
    return { ...i, unit: u.name, running: await lib.unitActive(u.name), url };
  }
  if (undo && (await lib.supervisorPid(i.stateDir, "lmp")) === undefined) {
    undo.push(`stop the Librarian monitor's supervisor in ${i.stateDir}`, () =>
      lib.stopSupervised(i.stateDir, "lmp"),
    );
  }
  await lib.startSupervised({
    stateDir: i.stateDir,
    name: "lmp",
    netns: i.netns,
    command: command(i),
  });
  return { ...i, unit: u.name, running: true, url };
}

async function isRunning(o: LibrarianMonitorOutputs): Promise<boolean> {
  return o.mode === "systemd"
    ? lib.unitActive(o.unit)
    : (await lib.supervisorPid(o.stateDir, "lmp")) !== undefined;
}

async function stop(o: LibrarianMonitorOutputs): Promise<void> {
  if (o.mode === "systemd") await lib.removeUnit(o.unit);
  else await lib.stopSupervised(o.stateDir, "lmp");
  // lmp.py's FIFO is the monitor's own (never the database beside it).
  const fifo = lib.monitorFifo(o.stateDir);
  if ((await fs.lstat(fifo).catch(() => undefined))?.isFIFO()) await fs.rm(fifo);
}

export const librarianMonitorProvider = defineProvider<
  LibrarianMonitorInputs,
  LibrarianMonitorOutputs
>({
  keys: KEYS,
  replaceKeys: ["owner", "mode", "netns", "stateDir"],
  // One unit per stack, one listener per address and port: the old monitor goes first.
  uniqueKeys: ["owner", "port"],
  // A monitor that is not running (found dead, or stopped out of band) is started again.
  needsRepair: async (olds) => olds.running === false || !(await isRunning(olds)),
  async check(news) {
    // Unknown inputs (preview) are absent here; the contract drops failures about them.
    const failures = await checkServiceMode(news, {
      key: "fame:librarianMonitor",
      what: "the Librarian's monitor",
    });
    if (!(await lib.pythonHas("flask")))
      failures.push({
        property: "mode",
        reason: `fame:librarianMonitor needs Flask for ${lib.PYTHON} on the host (lmp.py is a Flask app): apt-get install python3-flask (scripts/host-setup.sh installs it), or set fame:librarianMonitor false`,
      });
    if (news.host !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(news.host))
      failures.push({ property: "host", reason: `host ${news.host} must be an IPv4 address` });
    if (news.tmLibrarian !== undefined) {
      for (const f of ["src/lmp.py", "templates/show_global.html"]) {
        if (!(await lib.exists(path.join(news.tmLibrarian, f))))
          failures.push({
            property: "tmLibrarian",
            reason: `${news.tmLibrarian} has no ${f}: the Librarian's monitor needs tm-librarian's lmp.py and its templates (or set fame:librarianMonitor false)`,
          });
      }
    }
    return failures;
  },
  async create(inputs: LibrarianMonitorInputs, undo: Undo) {
    const outs = await start(inputs, undo);
    return { id: outs.unit, outs };
  },
  async read(id: string, props?: LibrarianMonitorOutputs) {
    if (!props) return {};
    return { id, props: { ...props, running: await isRunning(props) } };
  },
  async update(_id: string, olds: LibrarianMonitorOutputs, news: LibrarianMonitorInputs) {
    // lmp.py binds its address and opens the database once: restart with the new inputs.
    await stop(olds);
    return { outs: await start(news) };
  },
  async delete(_id: string, props: LibrarianMonitorOutputs) {
    await stop(props);
  },
});

export type LibrarianMonitorArgs = {
  [K in keyof LibrarianMonitorInputs]: pulumi.Input<LibrarianMonitorInputs[K]>;
};

export class LibrarianMonitor extends pulumi.dynamic.Resource {
  declare readonly unit: pulumi.Output<string>;
  declare readonly running: pulumi.Output<boolean>;
  declare readonly url: pulumi.Output<string>;

  constructor(name: string, args: LibrarianMonitorArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      librarianMonitorProvider,
      name,
      { ...args, unit: undefined, running: undefined, url: undefined },
      opts,
      "fame",
      "LibrarianMonitor",
    );
  }
}
