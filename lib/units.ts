/** Byte-size parsing and formatting with binary units (K, M, G, T = powers of 1024). */

const UNITS: Record<string, number> = {
  "": 1,
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40,
};

export const KiB = 2 ** 10;
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
export const TiB = 2 ** 40;

/** Parses "16G", "512M", "1T", "16GiB", "17179869184". Returns undefined when malformed. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) return undefined;
  const value = Number(m[1]) * (UNITS[(m[2] ?? "").toUpperCase()] ?? Number.NaN);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Formats bytes with the largest binary unit that divides them exactly: 17179869184 -> "16G". */
export function formatSize(bytes: number): string {
  for (const unit of ["T", "G", "M", "K"]) {
    const scale = UNITS[unit] as number;
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  return `${bytes}`;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
