/**
 * AppArmor rules that let libvirt's per-domain QEMU profiles open the FAM file
 * (and the FAME-Z socket), which libvirt cannot see because they are passed
 * through qemu:commandline. They go into the local include of the
 * libvirt-qemu abstraction, one marked block per stack: the narrowest rule
 * that works, with confinement left on.
 */

/** Included by Debian's abstractions/libvirt-qemu into every QEMU domain profile. */
export const APPARMOR_LOCAL_FILE = "/etc/apparmor.d/local/abstractions/libvirt-qemu";

export interface AppArmorRule {
  path: string;
  /** AppArmor file permissions, e.g. "rw". */
  perms: string;
}

/** Quotes a path for a profile, escaping AppArmor's globbing and quoting characters. */
export function apparmorPath(p: string): string {
  return `"${p.replace(/[\\"*?[\]{}^]/g, (c) => `\\${c}`)}"`;
}

function markers(owner: string): { begin: string; end: string } {
  return {
    begin: `# BEGIN fame ${owner} (managed by fame; edits are overwritten)`,
    end: `# END fame ${owner}`,
  };
}

export function apparmorBlock(owner: string, rules: AppArmorRule[]): string {
  const { begin, end } = markers(owner);
  return [begin, ...rules.map((r) => `${apparmorPath(r.path)} ${r.perms},`), end].join("\n");
}

/** The file text with `owner`'s block replaced (or removed when `rules` is empty). */
export function withBlock(text: string, owner: string, rules: AppArmorRule[]): string {
  const { begin, end } = markers(owner);
  const lines = text.split("\n");
  const out: string[] = [];
  let inside = false;
  for (const line of lines) {
    if (line === begin) inside = true;
    else if (inside && line === end) inside = false;
    else if (!inside) out.push(line);
  }
  while (out.length > 0 && out.at(-1) === "") out.pop();
  if (rules.length > 0) out.push(apparmorBlock(owner, rules));
  return out.length > 0 ? `${out.join("\n")}\n` : "";
}

/** The rules of `owner`'s block in the file text. */
export function rulesIn(text: string, owner: string): AppArmorRule[] {
  const { begin, end } = markers(owner);
  const lines = text.split("\n");
  const start = lines.indexOf(begin);
  if (start < 0) return [];
  const rules: AppArmorRule[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line === end) break;
    const m = /^"((?:[^"\\]|\\.)*)" (\w+),$/.exec(line);
    if (m) rules.push({ path: (m[1] ?? "").replace(/\\(.)/g, "$1"), perms: m[2] ?? "" });
  }
  return rules;
}
