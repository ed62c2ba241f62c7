/**
 * Property-level diff shared by every provider: which keys changed, and which
 * of those force a replacement. Pure, so previews are tested without libvirt.
 */

export interface PropertyDiff {
  changes: boolean;
  /** Every key whose value differs. */
  changed: string[];
  /** Changed keys that cannot be updated in place. */
  replaces: string[];
  deleteBeforeReplace: boolean;
}

/** Deep equality for JSON-like values (state round-trips through JSON). */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * Compares `keys` of the old state and the new inputs. `replaceKeys` name
 * properties that identify the object (a new one must be made); when the
 * replacement reuses the same libvirt name, the old one must go first.
 */
export function diffProps<T extends object>(
  olds: Partial<T>,
  news: T,
  keys: readonly (keyof T & string)[],
  replaceKeys: readonly (keyof T & string)[],
  deleteBeforeReplace = true,
): PropertyDiff {
  const changed = keys.filter((k) => !sameValue(olds[k], news[k]));
  const replaces = changed.filter((k) => replaceKeys.includes(k));
  return {
    changes: changed.length > 0,
    changed,
    replaces,
    deleteBeforeReplace: replaces.length > 0 && deleteBeforeReplace,
  };
}
