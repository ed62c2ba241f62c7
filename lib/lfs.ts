/**
 * The Librarian File System (LFS) pieces fame adds when `fame:librarian` is on:
 * where tm-librarian comes from, what the node image gains (packages, fame's
 * adapter, tm-librarian's source, the /lfs unit) and the torms service's
 * names. Pure: file contents come in as arguments.
 */
import * as path from "node:path";
import type { DomainType } from "./accel";
import { type FameConfig, isGitSource } from "./config";
import { type ImageFile, imageCmdline } from "./image";

/** Where tm-librarian lives in the node image. */
export const NODE_TM_LIBRARIAN = "/opt/fame/tm-librarian";
/** fame's adapter (tm_fuse stand-ins on libfuse 2 and 3, launcher, fast paths, offsets tool) in the node image. */
export const NODE_LFS_DIR = "/opt/fame/lfs";
export const LFS_MOUNTPOINT = "/lfs";
/** Both libfuse versions under fame's adapter (fame:lfsFuse chooses at boot, so a change never rebuilds the image). */
export const LFS_PACKAGES = ["python3", "python3-fusepy", "fuse3", "python3-psutil", "pciutils"];
/** fame's adapter files (templates/lfs), installed in NODE_LFS_DIR. */
export const ADAPTER_FILES = [
  "tm_fuse.py",
  "fusepy3.py",
  "fame_lfs.py",
  "lfs_fast.py",
  "lfs_offsets.py",
] as const;

export type TmLibrarianSource =
  | { kind: "git"; url: string; commit: string }
  | { kind: "dir"; dir: string };

/** The configured source; a relative directory is taken from `projectDir`. */
export function tmLibrarianSource(
  source: string,
  commit: string,
  projectDir: string,
): TmLibrarianSource {
  if (isGitSource(source)) return { kind: "git", url: source, commit };
  return { kind: "dir", dir: path.resolve(projectDir, source) };
}

/** The kernel argument fame_lfs.py reads for its FUSE library when the unit names none. */
export const LFS_FUSE_ARG = "fame.lfs_fuse";

/**
 * fame's kernel arguments for /lfs: `fame.lfs_fuse=3` with fame:lfsFuse 3, none
 * for the default (libfuse 2), so the nodes of a stack that never chose keep
 * their command line.
 */
export function lfsBootArgs(config: Pick<FameConfig, "librarian" | "lfsFuse">): string[] {
  return config.librarian && config.lfsFuse === 3 ? [`${LFS_FUSE_ARG}=3`] : [];
}

/**
 * fame's own kernel arguments for every node of a stack (before the user's
 * fame:cmdline): the image's, then /lfs's. One function, so what the domains
 * boot and what the change report records as applied cannot drift apart.
 */
export function fameBootArgs(
  config: Pick<FameConfig, "suite" | "famMode" | "librarian" | "lfsFuse">,
  domainType: DomainType,
): string {
  return [imageCmdline(config.suite, config.famMode, domainType), ...lfsBootArgs(config)].join(" ");
}

/** A file of the tm-librarian tree, relative to its root. */
export interface SourceFile {
  rel: string;
  content: string;
  executable: boolean;
}

function unit(lines: string[]): string {
  return `${lines.join("\n")}\n`;
}

/** Waits (forever, by design: the unit restarts it) until torms accepts connections on the port. */
export const WAIT_SCRIPT = unit([
  "#!/usr/bin/python3",
  "# fame: wait until the Librarian on torms accepts TCP connections.",
  "import socket, sys, time",
  "host, port = sys.argv[1], int(sys.argv[2])",
  "while True:",
  "    try:",
  "        socket.create_connection((host, port), timeout=3).close()",
  "        break",
  "    except OSError as e:",
  "        print('waiting for the Librarian at %s:%d: %s' % (host, port, e), flush=True)",
  "        time.sleep(2)",
]);

/** The node unit: /lfs mounted at boot as node fame.node=<N>, after torms answers, restarted on failure. */
export function lfsUnit(port: number): string {
  return unit([
    "[Unit]",
    "Description=Librarian File System on fabric-attached memory (/lfs)",
    "Wants=network-online.target",
    "After=network-online.target",
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Type=simple",
    "TimeoutStartSec=infinity",
    `ExecStartPre=/usr/bin/python3 ${NODE_LFS_DIR}/fame-lfs-wait torms ${port}`,
    // A daemon that died leaves a dead FUSE mount ("Transport endpoint is not connected").
    `ExecStartPre=-/bin/umount -l ${LFS_MOUNTPOINT}`,
    `ExecStart=/usr/bin/python3 -P ${NODE_LFS_DIR}/fame_lfs.py --tm_librarian ${NODE_TM_LIBRARIAN} --hostname torms --port ${port} --mountpoint ${LFS_MOUNTPOINT}`,
    `ExecStopPost=-/bin/umount -l ${LFS_MOUNTPOINT}`,
    "Restart=on-failure",
    "RestartSec=3",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ]);
}

/**
 * What the node image gains with the Librarian on: packages, fame's adapter,
 * the tm-librarian tree and the unit (pulled in by multi-user.target through a
 * drop-in, so the image's customize hook stays the same).
 */
export function lfsImageExtras(args: {
  port: number;
  adapter: Record<(typeof ADAPTER_FILES)[number], string>;
  tmLibrarian: SourceFile[];
}): { packages: string[]; files: ImageFile[] } {
  const files: ImageFile[] = [
    ...ADAPTER_FILES.map((f) => ({
      path: `${NODE_LFS_DIR}/${f}`,
      content: args.adapter[f],
      mode: 0o755,
    })),
    { path: `${NODE_LFS_DIR}/fame-lfs-wait`, content: WAIT_SCRIPT, mode: 0o755 },
    ...args.tmLibrarian.map((f) => ({
      path: `${NODE_TM_LIBRARIAN}/${f.rel}`,
      content: f.content,
      mode: f.executable ? 0o755 : 0o644,
    })),
    { path: "/etc/systemd/system/fame-lfs.service", content: lfsUnit(args.port), mode: 0o644 },
    {
      path: "/etc/systemd/system/multi-user.target.d/fame-lfs.conf",
      content: unit(["[Unit]", "Wants=fame-lfs.service"]),
      mode: 0o644,
    },
    {
      path: "/usr/local/bin/lfs_offsets",
      content: unit(["#!/bin/sh", `exec /usr/bin/python3 -P ${NODE_LFS_DIR}/lfs_offsets.py "$@"`]),
      mode: 0o755,
    },
  ];
  return { packages: [...LFS_PACKAGES], files };
}

/** One argument of a systemd Exec line, taken literally (quotes, backslashes, specifiers, variables). */
export function systemdQuote(arg: string): string {
  if (/[\n\r\0]/.test(arg))
    throw new RangeError(`a unit argument cannot hold a line break: ${JSON.stringify(arg)}`);
  return `"${arg.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$")}"`;
}

/** systemd unit name of a stack's Librarian on torms. */
export function librarianUnitName(owner: string): string {
  return `fame-librarian-${owner.replace(/[^A-Za-z0-9_.-]/g, "-")}.service`;
}

/** The Librarian monitor's start page for its listener (torms address, port). */
export function monitorUrl(host: string, port: number): string {
  return `http://${host}:${port}/lmp/`;
}

/** systemd unit name of a stack's Librarian monitor (lmp.py) on torms. */
export function monitorUnitName(owner: string): string {
  return `fame-lmp-${owner.replace(/[^A-Za-z0-9_.-]/g, "-")}.service`;
}

/**
 * A torms service of the stack as a systemd unit: restarted on failure, and
 * confined to the node network: systemd drops every packet of the unit that
 * is not from or to the node subnet or localhost (IPAddressAllow/Deny), and
 * every packet on another interface than the node bridge and lo
 * (RestrictNetworkInterfaces).
 */
function confinedUnit(a: {
  description: string;
  execStart: string;
  subnet: string;
  bridge: string;
}): string {
  return unit([
    "[Unit]",
    `Description=${a.description}`,
    "After=network.target libvirtd.service",
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    `ExecStart=${a.execStart}`,
    "Restart=on-failure",
    "RestartSec=2",
    "IPAddressDeny=any",
    `IPAddressAllow=${a.subnet} localhost`,
    `RestrictNetworkInterfaces=lo ${a.bridge}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ]);
}

/**
 * The stack's Librarian as a systemd unit on torms. librarian.py listens on
 * every interface (it has no bind option): the unit is confined to the node
 * network (confinedUnit).
 */
export function librarianSystemdUnit(a: {
  owner: string;
  tmLibrarian: string;
  db: string;
  port: number;
  subnet: string;
  bridge: string;
}): { name: string; content: string } {
  const python = "/usr/bin/python3";
  return {
    name: librarianUnitName(a.owner),
    content: confinedUnit({
      description: `fame Librarian for ${a.owner} (LFS metadata, port ${a.port})`,
      execStart: `${python} ${systemdQuote(`${a.tmLibrarian}/src/librarian.py`)} --db_file ${systemdQuote(a.db)} --port ${a.port}`,
      subnet: a.subnet,
      bridge: a.bridge,
    }),
  };
}

/**
 * The stack's Librarian monitor (lmp.py through fame's launcher) as a systemd
 * unit on torms. `command` is its argv (an absolute executable first); it
 * binds the torms address, and the unit is confined like the Librarian's.
 */
export function monitorSystemdUnit(a: {
  owner: string;
  command: string[];
  url: string;
  subnet: string;
  bridge: string;
}): { name: string; content: string } {
  const [exe, ...args] = a.command;
  if (!exe?.startsWith("/")) throw new RangeError(`not an absolute executable: ${exe}`);
  return {
    name: monitorUnitName(a.owner),
    content: confinedUnit({
      description: `fame Librarian monitor for ${a.owner} (lmp.py, ${a.url})`,
      execStart: [exe, ...args.map(systemdQuote)].join(" "),
      subnet: a.subnet,
      bridge: a.bridge,
    }),
  };
}
