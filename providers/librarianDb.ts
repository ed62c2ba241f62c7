/**
 * Dynamic provider for the Librarian's database on torms: built from fame's
 * INI by tm-librarian's real book_register.py. The database is user data like
 * the FAM file: an existing one with the INI's layout is adopted untouched,
 * one with another layout is never rebuilt silently (check refuses, in
 * preview, saying how many files would be lost, unless `reset` is opted
 * into), and delete keeps the file.
 */
import * as fs from "node:fs/promises";
import * as pulumi from "@pulumi/pulumi";
import * as lib from "../lib/host/librarian";
import { type CheckFailure, defineProvider, type Undo } from "./contract";

export interface LibrarianDbInputs {
  /** Absolute path of the database file. */
  path: string;
  /** The INI (lib/librarian.ts librarianIni). */
  ini: string;
  /** tm-librarian tree on the host (src/book_register.py). */
  tmLibrarian: string;
  /** Opt-in: a database of another layout may be rebuilt (all LFS files lost). */
  reset: boolean;
}

export interface LibrarianDbOutputs extends LibrarianDbInputs {
  /** Facts read from the database after create/update. */
  info: lib.DbInfo;
  /** The file's identity; a rebuild changes it, so the service serving it restarts. */
  generation: string;
}

async function checkInputs(news: Partial<LibrarianDbInputs>): Promise<CheckFailure[]> {
  const failures: CheckFailure[] = [];
  // Unknown inputs (preview) are absent here; the contract drops failures about them.
  if (news.path !== undefined && !news.path.startsWith("/"))
    failures.push({
      property: "path",
      reason: `database path ${JSON.stringify(news.path)} must be absolute`,
    });
  if (news.ini === undefined || news.tmLibrarian === undefined || failures.length > 0)
    return failures;
  const verdict = await lib.checkIni(news.tmLibrarian, news.ini);
  if (verdict !== undefined) {
    failures.push({
      property: "ini",
      reason: `tm-librarian's book_register rejects fame's Librarian INI (${verdict}):\n${news.ini}`,
    });
    return failures;
  }
  if (news.path === undefined) return failures;
  const info = await lib.dbInfo(news.path);
  if (info && !lib.dbMatchesIni(info, news.ini) && news.reset !== true) {
    const l = lib.iniLayout(news.ini);
    failures.push({
      property: "ini",
      reason: `the Librarian database ${news.path} holds ${info.nodes} node(s), ${info.nvm_bytes_total} bytes of books of ${info.book_size_bytes}; this configuration needs ${l?.nodes} node(s), ${l?.nvmBytesTotal} bytes of books of ${l?.bookBytes}, i.e. a new database, which would lose ${lib.lossMessage(info)}. Refused: keep fame:famSize and fame:nodes, or set fame:librarianReset true to rebuild it (every file under /lfs is lost)`,
    });
  }
  return failures;
}

/** `undo` (create): where the removal of a database built where there was none is registered. */
async function ensure(inputs: LibrarianDbInputs, undo?: Undo): Promise<LibrarianDbOutputs> {
  const info = await lib.dbInfo(inputs.path);
  if (info && lib.dbMatchesIni(info, inputs.ini))
    return { ...inputs, info, generation: await lib.dbGeneration(inputs.path) };
  if (info && !inputs.reset)
    throw new Error(
      `the Librarian database ${inputs.path} has another layout; refusing to rebuild it (${lib.lossMessage(info)} would be lost) without fame:librarianReset`,
    );
  // An existing database (adopted, or rebuilt on the reset opt-in) is never removed.
  if (!info) {
    undo?.push(`remove new Librarian database ${inputs.path}`, () =>
      fs.rm(inputs.path, { force: true }),
    );
  }
  const built = await lib.buildDb(inputs.tmLibrarian, inputs.ini, inputs.path);
  return { ...inputs, info: built, generation: await lib.dbGeneration(inputs.path) };
}

export const librarianDbProvider = defineProvider<LibrarianDbInputs, LibrarianDbOutputs>({
  keys: ["path", "ini", "tmLibrarian", "reset"],
  // A new INI layout is an in-place rebuild (check allowed it: reset), a new path another database.
  replaceKeys: ["path"],
  uniqueKeys: ["path"],
  check: checkInputs,
  async create(inputs: LibrarianDbInputs, undo: Undo) {
    return { id: inputs.path, outs: await ensure(inputs, undo) };
  },
  async read(id: string, props?: LibrarianDbOutputs) {
    const info = await lib.dbInfo(id);
    if (!info) return {};
    return {
      id,
      props: {
        ...(props as LibrarianDbOutputs),
        path: id,
        info,
        generation: await lib.dbGeneration(id),
      },
    };
  },
  async update(_id: string, _olds: LibrarianDbOutputs, news: LibrarianDbInputs) {
    return { outs: await ensure(news) };
  },
  async delete() {
    // User data: the database stays (a later `up` adopts it); remove it by hand to start over.
  },
});

export type LibrarianDbArgs = {
  [K in keyof LibrarianDbInputs]: pulumi.Input<LibrarianDbInputs[K]>;
};

export class LibrarianDb extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly info: pulumi.Output<lib.DbInfo>;
  declare readonly generation: pulumi.Output<string>;

  constructor(name: string, args: LibrarianDbArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      librarianDbProvider,
      name,
      { ...args, info: undefined, generation: undefined },
      opts,
      "fame",
      "LibrarianDb",
    );
  }
}
