/** Small validators shared by the providers' `check` (pure). */

export interface CheckFailure {
  property: string;
  reason: string;
}

/** No failure when `value` is an absolute path; otherwise one naming the property and value. */
export function absolutePath(property: string, value: unknown, what = "path"): CheckFailure[] {
  return typeof value === "string" && value.startsWith("/")
    ? []
    : [{ property, reason: `${what} ${JSON.stringify(value)} must be an absolute path` }];
}
