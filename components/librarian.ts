import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { LibrarianDb } from "../providers/librarianDb";
import { LibrarianMonitor } from "../providers/librarianMonitor";
import { LibrarianService } from "../providers/librarianService";

export interface LibrarianArgs {
  /** `<project>/<stack>`: names the systemd unit. */
  owner: string;
  /** Absolute artifact directory: holds librarian.db (and, in netns mode, the pid file and log). */
  dir: pulumi.Input<string>;
  /** The Librarian INI (lib/librarian.ts). */
  ini: string;
  /** tm-librarian tree on the host (fetched or configured). */
  tmLibrarian: string;
  /** TCP port. Default: 9093. */
  port?: number;
  /** Opt-in: allow rebuilding a database of another layout (all LFS files lost). Default: false. */
  reset?: boolean;
  /** Node subnet in CIDR form, the only peers allowed (systemd mode). */
  subnet: string;
  /** Node bridge, the only interface besides lo (systemd mode). */
  bridge: pulumi.Input<string>;
  /** How the service runs. Default: systemd. `netns` runs it supervised inside `netns` (tests). */
  mode?: "systemd" | "netns";
  /** Network namespace for mode netns. Default: none. */
  netns?: string;
  /** Resources the service waits for (the node network, so the bridge exists). Default: none. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /**
   * The monitoring server (tm-librarian's lmp.py) beside the Librarian, run
   * the same way (mode, netns) and listening on `host` (torms on the node
   * bridge) and `port`. Default: none.
   */
  monitor?: { host: string; port: number };
}

/**
 * The Librarian on torms: its database, built from the INI by the real
 * book_register and kept like FAM (retained on destroy, never rebuilt
 * silently), librarian.py serving it to the node network only, and, with
 * `monitor`, tm-librarian's monitoring pages over it (read-only).
 */
export class Librarian extends pulumi.ComponentResource {
  readonly dbPath: pulumi.Output<string>;
  readonly unit: pulumi.Output<string>;
  readonly port: number;
  /** The monitor's start page (`http://<host>:<port>/lmp/`), when it runs. */
  readonly monitorUrl: pulumi.Output<string> | undefined;
  /** The monitor's systemd unit (or supervisor name), when it runs. */
  readonly monitorUnit: pulumi.Output<string> | undefined;

  constructor(name: string, args: LibrarianArgs, opts?: pulumi.ComponentResourceOptions) {
    super("fame:librarian:Librarian", name, {}, opts);
    const port = args.port ?? 9093;
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new pulumi.ResourceError(`Librarian port ${port} must be a TCP port 1..65535`, this);
    const mode = args.mode ?? "systemd";
    if (mode === "netns" && !args.netns)
      throw new pulumi.ResourceError(
        "Librarian mode netns needs a network namespace (netns)",
        this,
      );
    const dbPath = pulumi.output(args.dir).apply((d) => path.posix.join(d, "librarian.db"));
    const db = new LibrarianDb(
      `${name}-db`,
      { path: dbPath, ini: args.ini, tmLibrarian: args.tmLibrarian, reset: args.reset ?? false },
      // User data like FAM: destroy leaves the file (the provider's delete keeps it too).
      { parent: this, retainOnDelete: true },
    );
    const service = new LibrarianService(
      `${name}-service`,
      {
        owner: args.owner,
        mode,
        netns: args.netns ?? "",
        stateDir: args.dir,
        tmLibrarian: args.tmLibrarian,
        db: db.path,
        dbGeneration: db.generation,
        port,
        subnet: args.subnet,
        bridge: args.bridge,
      },
      { parent: this, dependsOn: [db, ...(args.dependsOn ?? [])] },
    );
    const m = args.monitor;
    if (m && (!Number.isInteger(m.port) || m.port < 1 || m.port > 65535 || m.port === port))
      throw new pulumi.ResourceError(
        `Librarian monitor port ${m.port} must be a TCP port 1..65535 other than the Librarian's (${port})`,
        this,
      );
    const monitor = m
      ? new LibrarianMonitor(
          `${name}-monitor`,
          {
            owner: args.owner,
            mode,
            netns: args.netns ?? "",
            stateDir: args.dir,
            tmLibrarian: args.tmLibrarian,
            db: db.path,
            dbGeneration: db.generation,
            host: m.host,
            port: m.port,
            subnet: args.subnet,
            bridge: args.bridge,
          },
          // It binds the torms address, which the node network's bridge carries.
          { parent: this, dependsOn: [db, ...(args.dependsOn ?? [])] },
        )
      : undefined;
    this.dbPath = db.path;
    this.unit = service.unit;
    this.port = port;
    this.monitorUrl = monitor?.url;
    this.monitorUnit = monitor?.unit;
    this.registerOutputs({
      dbPath: this.dbPath,
      unit: this.unit,
      port,
      monitorUrl: this.monitorUrl,
      monitorUnit: this.monitorUnit,
    });
  }
}
