/**
 * The dynamic-provider contract, enforced in one place. Every fame provider
 * is made by `defineProvider`, so none of them can forget one of the rules the
 * Pulumi engine holds them to:
 *
 * - During a preview, any input computed from another resource's output is
 *   unknown and arrives in `check`/`diff` as the string `UNKNOWN` (also nested
 *   in objects and arrays). `check` validates only what is known: a failure
 *   about a property whose value is (or contains) an unknown is dropped, and
 *   the provider's own checker sees unknown properties removed, so it can
 *   neither fail nor throw on them. `diff` treats an unknown as a change.
 * - When the inputs show no change, `diff` asks the host for drift the
 *   recorded state cannot show (`needsRepair`), since the engine diffs
 *   without a refresh; a host it cannot ask fails the diff, naming the
 *   resource, rather than passing for "no change".
 * - `diff` always answers `changes` and lists `replaces`; a replacement is
 *   done delete-first when the new object would have the same id as the old
 *   one (both cannot exist at once), create-first otherwise.
 * - Every key that is not a replace key is updated in place, so a provider
 *   with in-place keys must have an `update` (a missing one makes the engine
 *   drop every output but `__provider`): checked when the provider is defined.
 * - A create that fails undoes what it made: the engine records nothing for
 *   it, so neither a later `up` nor `destroy` would know of it. Each create
 *   gets an `Undo` to register how to remove what it made (never what it
 *   adopted: an existing FAM file or disk is user data).
 * - In the engine's provider process, the first call of any method starts
 *   lib/host/exec's engine watchdog: a killed `pulumi up` leaves no provider
 *   (and no command of one) running.
 *
 * The engine serializes each provider object with its closures, so this
 * module captures only plain functions and data.
 */
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { sameValue } from "../lib/diff";
import { inDynamicProvider, watchEngine } from "../lib/host/exec";

/** Stop with the engine, once per process (a module's top level is not serialized: every call asks). */
function watch(): void {
  if (inDynamicProvider()) watchEngine();
}

/**
 * The `keep` of a file-backed object that outlives its name: the recorded
 * path, when `also` holds and the new path is in the same directory (a
 * directory change is a real move).
 */
export function keepPathInDir(
  olds: { path?: string | undefined },
  news: { path?: string | undefined },
  also: boolean,
): { path?: string } {
  const same =
    also &&
    olds.path !== undefined &&
    news.path !== undefined &&
    path.posix.dirname(olds.path) === path.posix.dirname(news.path);
  return same ? { path: olds.path } : {};
}

/** What the engine sends for a value that is not known during a preview. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** True when `v` is, or contains, an unknown value. */
export function containsUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (v !== null && typeof v === "object") return Object.values(v).some(containsUnknown);
  return false;
}

/** `news` with every property that is (or holds) an unknown removed. */
export function knownPart<T extends object>(news: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(news).filter(([, v]) => !containsUnknown(v)),
  ) as Partial<T>;
}

export interface CheckFailure {
  property: string;
  reason: string;
}

export interface ProviderSpec<I extends object, O extends object> {
  /** Keys compared by `diff` (inputs, or the keys of `project`'s view). */
  keys: readonly string[];
  /** Keys that identify the object: a change makes a new one. */
  replaceKeys: readonly string[];
  /**
   * Inputs no two live objects may share: the one the id is made from (a
   * path, a libvirt name), a bridge, a subnet. A replacement that keeps any of
   * them deletes the old object before making the new one.
   */
  uniqueKeys?: readonly string[];
  /**
   * Validates the known inputs (unknown properties are absent). Host
   * preflight belongs here too: preview runs it before any change.
   */
  check?(news: Partial<I>, olds: Partial<O>): Promise<CheckFailure[]> | CheckFailure[];
  /**
   * Inputs the object keeps from its recorded ones whatever the program now
   * asks: a node's disk stays in the file it was made in when the node is
   * renamed. Gets the recorded inputs (empty for a new object) and the known
   * part of the new ones; returns the keys to take from the recorded ones.
   * `check` applies it, so preview and diff see the kept values.
   */
  keep?(olds: Partial<I>, news: Partial<I>): Partial<I>;
  /**
   * What `diff` compares for `news` when it is not the inputs themselves
   * (a hash of secret content, a normalised order). Called only with fully
   * known inputs; a partly unknown one is compared key by key.
   */
  project?(news: I): Record<string, unknown>;
  /** The same view of the recorded state (default: the state itself). */
  projectOld?(olds: O): Record<string, unknown>;
  /**
   * Drift `update` repairs that the recorded state alone may not show (a
   * network stopped out of band; a node paused, or powered off by another
   * resource's update). Looks at the host: diff runs it in every preview and
   * up, refreshed or not, with the recorded state (always known). A host it
   * cannot ask (libvirtd down) fails the diff naming the resource, never
   * passes for "no change".
   */
  needsRepair?(olds: O): boolean | Promise<boolean>;
  /** `undo`: register each thing made here; on a throw they are removed, newest first. */
  create(inputs: I, undo: Undo): Promise<{ id: string; outs: O }>;
  read(id: string, props?: O): Promise<{ id?: string; props?: O }>;
  update?(id: string, olds: O, news: I): Promise<{ outs: O }>;
  delete(id: string, props: O): Promise<void>;
}

/** Compensations a create registers, run if it fails. */
export interface Undo {
  /** `what` names the step in the error should it fail ("undefine domain fam01"). */
  push(what: string, step: () => Promise<void>): void;
}

/**
 * Runs `body` with an undo stack. When it throws, every registered step runs,
 * newest first, and the original error is rethrown: a step that fails does
 * not stop the others and is appended to the error's message, never hiding
 * why the create failed.
 */
export async function withUndo<T>(body: (undo: Undo) => Promise<T>): Promise<T> {
  const steps: { what: string; step: () => Promise<void> }[] = [];
  try {
    return await body({
      push(what, step) {
        steps.push({ what, step });
      },
    });
  } catch (e) {
    const failed: string[] = [];
    for (const { what, step } of steps.reverse()) {
      try {
        await step();
      } catch (u) {
        failed.push(`${what}: ${u instanceof Error ? u.message : String(u)}`);
      }
    }
    if (failed.length === 0) throw e;
    const note = `; undoing the failed create also failed, remove by hand: ${failed.join("; ")}`;
    if (e instanceof Error) {
      e.message += note;
      throw e;
    }
    throw new Error(`${String(e)}${note}`);
  }
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
  /** Keys that differ (for tests and the change report). */
  changed: string[];
}

/** The diff rule every provider follows (pure; exported for tests). */
export function diffBySpec<I extends object, O extends object>(
  spec: Pick<ProviderSpec<I, O>, "keys" | "replaceKeys" | "uniqueKeys" | "project" | "projectOld">,
  olds: O,
  news: I,
  repair = false,
): DiffResult {
  const raw = news as Record<string, unknown>;
  // A projection of partly unknown inputs is unknown wherever it is not an input.
  const newsView: Record<string, unknown> = !spec.project
    ? raw
    : !containsUnknown(news)
      ? spec.project(news)
      : Object.fromEntries(spec.keys.map((k) => [k, k in raw ? raw[k] : UNKNOWN]));
  const oldsView = spec.projectOld ? spec.projectOld(olds) : (olds as Record<string, unknown>);
  const changed = spec.keys.filter(
    (k) => containsUnknown(newsView[k]) || !sameValue(oldsView[k], newsView[k]),
  );
  const replaces = changed.filter((k) => spec.replaceKeys.includes(k));
  // A unique input kept (or not yet known) means both cannot exist at once.
  const keepsUnique = (spec.uniqueKeys ?? []).some(
    (k) => !replaces.includes(k) || containsUnknown(raw[k]),
  );
  return {
    changes: changed.length > 0 || repair,
    replaces,
    deleteBeforeReplace: replaces.length > 0 && keepsUnique,
    changed,
  };
}

/** Runs `needsRepair`; a failure to look says which resource could not be checked. */
async function repairNeeded<O>(
  needsRepair: (olds: O) => boolean | Promise<boolean>,
  id: string,
  olds: O,
): Promise<boolean> {
  try {
    return await needsRepair(olds);
  } catch (e) {
    throw new Error(
      `cannot check ${id} for changes made outside fame (every preview and up compare it with the host): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

/**
 * Makes a provider object the engine can load from its serialized form. The
 * returned methods close over `spec` and this module's plain functions only.
 */
export function defineProvider<I extends object, O extends object>(
  spec: ProviderSpec<I, O>,
): pulumi.dynamic.ResourceProvider<I, O> {
  const inPlace = spec.keys.filter((k) => !spec.replaceKeys.includes(k));
  if (inPlace.length > 0 && !spec.update) {
    throw new Error(`provider with in-place keys (${inPlace.join(", ")}) must define update`);
  }
  for (const k of [...spec.replaceKeys, ...(spec.uniqueKeys ?? [])]) {
    if (!spec.keys.includes(k)) throw new Error(`${k} must be one of the diffed keys`);
  }
  const provider: pulumi.dynamic.ResourceProvider<I, O> = {
    // `olds`: the recorded inputs; none when the engine checks again for a replacement.
    async check(olds: I, news: I) {
      watch();
      const inputs = spec.keep ? { ...news, ...spec.keep(olds ?? {}, knownPart(news)) } : news;
      const unknownKeys = Object.keys(inputs).filter((k) =>
        containsUnknown((inputs as Record<string, unknown>)[k]),
      );
      const failures = spec.check
        ? await spec.check(knownPart(inputs), (olds ?? {}) as unknown as Partial<O>)
        : [];
      return {
        inputs,
        failures: failures.filter((f) => !unknownKeys.includes(f.property.split(".")[0] ?? "")),
      };
    },
    // The engine passes the recorded outputs as `olds` (typed as inputs by the SDK).
    async diff(id: string, olds: O, news: I) {
      watch();
      let d = diffBySpec(spec, olds, news);
      // The host is asked only when the inputs alone show no change.
      if (!d.changes && spec.needsRepair && (await repairNeeded(spec.needsRepair, id, olds))) {
        d = diffBySpec(spec, olds, news, true);
      }
      return {
        changes: d.changes,
        replaces: d.replaces,
        deleteBeforeReplace: d.deleteBeforeReplace,
      };
    },
    create: (inputs: I) => {
      watch();
      return withUndo((undo) => spec.create(inputs, undo));
    },
    read: (id: string, props?: O) => {
      watch();
      return spec.read(id, props);
    },
    delete: (id: string, props: O) => {
      watch();
      return spec.delete(id, props);
    },
  };
  if (spec.update) {
    const update = spec.update;
    provider.update = (id: string, olds: O, news: I) => {
      watch();
      return update(id, olds, news);
    };
  }
  return provider;
}
