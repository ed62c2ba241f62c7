/** Wording of the bench's comparison column: says which way a ratio goes, never "0.9x faster". */

function compare(
  ours: number,
  theirs: number,
  digits: number,
  better: string,
  worse: string,
  same: string,
): string {
  const r = theirs >= ours ? theirs / ours : ours / theirs;
  if (r.toFixed(digits) === (1).toFixed(digits)) return same;
  return `${r.toFixed(digits)}x ${theirs >= ours ? better : worse}`;
}

/** `ours` and `theirs` are durations (smaller is better). */
export function speedRatio(ours: number, theirs: number): string {
  return compare(ours, theirs, 1, "faster", "slower", "same speed");
}

/** `ours` and `theirs` are sizes in bytes (smaller is better). */
export function sizeRatio(ours: number, theirs: number): string {
  return compare(ours, theirs, 0, "smaller", "larger", "same size");
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median, min and max of a bench's runs. */
export function stat(values: number[]): Stat {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  const median =
    v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
  return { median, min: v[0] as number, max: v.at(-1) as number, n: v.length };
}
